"""Prompt templates from ``prompts/NAME.LANG.md``, checked against their declared variables."""

from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path

from bot.errors import ConfigError

_DECLARED = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=32)
def load(folder: Path, name: str, lang: str) -> str:
    """The template body of ``NAME.LANG.md`` (falling back to English)."""
    path = folder / f"{name}.{lang}.md"
    if not path.is_file():
        path = folder / f"{name}.en.md"
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"Prompt {path} is missing ({exc.strerror}). Restore prompts/ from "
                          "the repository.") from exc
    header, sep, body = text.partition("\n---\n")
    if not sep:
        raise ConfigError(f"Prompt {path} needs a '---' line between its comments and body.")
    declared = set()
    for line in header.splitlines():
        if line.lower().startswith("# variables:"):
            declared = set(_DECLARED.findall(line))
    used = {field for _, field, _, _ in string.Formatter().parse(body) if field}
    if used != declared:
        raise ConfigError(f"Prompt {path} uses {sorted(used)} but declares {sorted(declared)} "
                          "in its '# variables:' line. Make them agree.")
    return body.strip()


def render(folder: Path, name: str, lang: str, **values: str) -> str:
    return load(folder, name, lang).format(**values)
