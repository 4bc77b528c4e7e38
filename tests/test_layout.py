"""The code stays in rooms a reader can hold in their head: no module under bot/ over
``MODULE_LINES`` lines, no class over ``CLASS_LINES`` (#28; the limits are the issue's).
A module that outgrows them is split by concern, not trimmed of comments."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

MODULE_LINES = 450
CLASS_LINES = 200


def _modules() -> list[Path]:
    return sorted((ROOT / "bot").rglob("*.py"))


def test_no_module_under_bot_is_over_the_limit() -> None:
    over = {str(p.relative_to(ROOT)): n for p in _modules()
            if (n := len(p.read_text("utf-8").splitlines())) > MODULE_LINES}
    assert not over, over


def test_no_class_under_bot_is_over_the_limit() -> None:
    over = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > CLASS_LINES:
                    over[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert not over, over
