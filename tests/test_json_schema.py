"""docs/json.md against what the code emits: every documented field is present with
its documented type, and no undocumented field appears (ask --json, with the real
guided answerer, and eval --predictions)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ROOT

from bot.answers import BELOW_THRESHOLD, REFUSALS
from bot.cli import cli

DOC = ROOT / "docs" / "json.md"
# documented type word -> Python types
BASIC: dict[str, tuple[type, ...]] = {"string": (str,), "bool": (bool,), "int": (int,),
                                      "number": (int, float), "object": (dict,)}


def tables() -> dict[str, dict[str, str]]:
    """{table name: {field: type}} from docs/json.md: a table follows a heading (named
    by the command in it: "ask", "eval") or a line "A **name**"."""
    out: dict[str, dict[str, str]] = {}
    name = ""
    for line in DOC.read_text("utf-8").splitlines():
        heading = re.match(r"## .*?\(`(\w+)", line)
        bold = re.match(r"An? \*\*(\w+)\*\*", line)
        if heading or bold:
            name = (heading or bold).group(1)  # type: ignore[union-attr]
            out[name] = {}
        row = re.match(r"\| `([\w@]+)` \| ([^|]+) \|", line)
        if row and name:
            out[name][row.group(1)] = row.group(2).strip()
    return out


def check(value: Any, kind: str, schema: dict[str, dict[str, str]], where: str) -> None:
    if kind.endswith(" or null"):
        if value is None:
            return
        kind = kind[: -len(" or null")]
    if kind.startswith("list of "):
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            check(item, kind[len("list of "):], schema, f"{where}[{i}]")
        return
    if kind in BASIC:
        is_bool = isinstance(value, bool)  # a bool is an int to Python, not to JSON
        assert isinstance(value, BASIC[kind]) and (kind == "bool") == is_bool, \
            f"{where}: {value!r} is not {kind}"
        return
    assert kind in schema, f"{where}: docs/json.md has no table for {kind!r}"
    check_object(value, schema[kind], schema, where)


def check_object(obj: Any, fields: dict[str, str], schema: dict[str, dict[str, str]],
                 where: str) -> None:
    assert isinstance(obj, dict), where
    assert set(obj) == set(fields), (f"{where}: undocumented {sorted(set(obj) - set(fields))}, "
                                     f"missing {sorted(set(fields) - set(obj))}")
    for key, kind in fields.items():
        check(obj[key], kind, schema, f"{where}.{key}")


@pytest.mark.slow
def test_ask_json_matches_docs_json_md(real_home: Path) -> None:
    schema = tables()
    assert {"ask", "quote", "citation", "span", "eval", "retrieved"} <= set(schema)
    asked = ["霍城县江苏医院综合病房大楼总投资多少?", "霍城县的总人口是多少?",
             "这篇文章的作者是谁?"]
    result = CliRunner().invoke(cli, ["ask", "--json"], input="\n".join(asked) + "\n",
                                env={"QABOT_HOME": str(real_home)})
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[0]["refused"] is False and rows[1]["refused"] is True
    for i, row in enumerate(rows):
        check_object(row, schema["ask"], schema, f"answer {i}")
    # a quote's offsets are where its text stands in the document
    seed = (ROOT / "seeds" / "000_122f56e846ff3a80.txt").read_text("utf-8")
    quote = rows[0]["quotes"][0]
    assert quote["text"].strip("…") in seed[quote["start"]:quote["end"]]
    assert rows[0]["mode"] == "guided" and "log-odds" in rows[0]["support_scale"]
    # the decision says what the score was compared with, and agrees with the outcome
    answered, refused, about_doc = (r["decision"] for r in rows)
    assert answered["score"] >= answered["threshold"] and not answered["refused"]
    assert refused["refused"] and refused["reason"] in REFUSALS
    if refused["reason"] == BELOW_THRESHOLD:
        assert refused["score"] < refused["threshold"]
    assert answered["reason"] is None
    assert about_doc["threshold"] is None and about_doc["scale"] == rows[2]["support_scale"]


@pytest.mark.slow
def test_eval_predictions_match_docs_json_md(real_home: Path, tmp_path: Path) -> None:
    schema = tables()
    testset = tmp_path / "set.jsonl"
    testset.write_text(
        json.dumps({"id": "a", "question": "霍城县江苏医院综合病房大楼总投资多少?",
                    "answers": ["1.4亿元"], "type": "number"}, ensure_ascii=False) + "\n"
        + json.dumps({"id": "b", "question": "霍城县的总人口是多少?", "answers": []},
                     ensure_ascii=False) + "\n", "utf-8")
    predictions = tmp_path / "pred.jsonl"
    result = CliRunner().invoke(cli, ["eval", str(testset), "--predictions", str(predictions)],
                                env={"QABOT_HOME": str(real_home)})
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in predictions.read_text("utf-8").splitlines()]
    fields = {**schema["ask"], **schema["eval"]}
    for i, row in enumerate(rows):
        check_object(row, fields, schema, f"prediction {i}")
