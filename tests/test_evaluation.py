"""Metric functions on hand-worked cases, and the shipped test set itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SEED, TESTSET

from bot.errors import QabotError
from bot.evaluation import (
    by_type,
    cmrc_em,
    cmrc_f1,
    cmrc_tokens,
    contains_answer,
    evidence_rank,
    fold,
    load_testset,
    metrics,
)


def row(**kw):
    base = {"gold_answers": ["x"], "refused": False, "correct": True, "citation_hit": True,
            "citation_precision": 1.0, "evidence_rank": 1, "rr": 1.0, "ndcg@10": 1.0,
            "em": 1.0, "f1": 1.0, "latency_ms": 10.0, "type": "t", "answer": "x"}
    base.update(kw)
    if not base["gold_answers"]:
        for key in ("citation_hit", "citation_precision", "rr", "ndcg@10", "em", "f1"):
            base.pop(key)
    return base


def test_answer_matching_folds_width_case_and_spaces() -> None:
    assert fold("１.４ 亿元 ABC") == "1.4亿元abc"
    assert contains_answer("总投资 1.4亿元。", ["1.4亿元"])
    assert contains_answer("共计ＡＢＣ计划", ["abc计划"])
    assert not contains_answer("1.5亿元", ["1.4亿元"])
    assert not contains_answer("anything", [""])


def test_evidence_rank_is_one_based_and_none_when_absent() -> None:
    assert evidence_rank(["a", "bc d", "x"], "cd") == 2
    assert evidence_rank(["a"], "zz") is None


def test_metrics_hand_worked() -> None:
    rows = [
        row(latency_ms=10, answer="ab"),  # answerable, right, rank 1
        row(correct=False, citation_hit=False, citation_precision=0.5, evidence_rank=3,
            rr=1 / 3, **{"ndcg@10": 0.5}, em=0.0, f1=0.5, latency_ms=20, answer="abcd"),
        row(refused=True, correct=False, citation_hit=False, citation_precision=None,
            evidence_rank=None, rr=0.0, **{"ndcg@10": 0.0}, em=0.0, f1=0.0, latency_ms=30),
        row(gold_answers=[], refused=True, correct=True, evidence_rank=None, latency_ms=40),
        row(gold_answers=[], refused=False, correct=False, evidence_rank=None, latency_ms=50),
    ]
    m = metrics(rows)
    assert m["accuracy"] == round(1 / 3, 4)
    assert m["citation_hit"] == round(1 / 3, 4)
    assert m["refusal_precision"] == 0.5  # 2 refusals, 1 right
    assert m["refusal_recall"] == 0.5  # 2 unanswerable, 1 refused
    assert m["false_refusal_rate"] == round(1 / 3, 4)
    assert (m["hit@1"], m["hit@3"], m["hit@5"]) == (round(1 / 3, 4), round(2 / 3, 4),
                                                    round(2 / 3, 4))
    assert m["mrr@10"] == round((1 + 1 / 3) / 3, 4)
    assert m["ndcg@10"] == 0.5 and m["em"] == round(1 / 3, 4) and m["f1"] == 0.5
    assert m["citation_precision"] == 0.75  # mean over the two answered answerable items
    assert m["latency_p50_ms"] == 30.0 and m["latency_max_ms"] == 50.0
    assert m["answer_chars_p50"] == 3.0  # answers given to answerable questions: 2 and 4
    assert "ingest_seconds" not in m
    assert metrics(rows, ingest_seconds=1.234)["ingest_seconds"] == 1.23


def test_shipped_test_set_is_large_varied_and_grounded() -> None:
    items = load_testset(TESTSET).items
    seed = SEED.read_text("utf-8")
    assert len(items) >= 60
    assert len({i.id for i in items}) == len(items)
    assert sum(not i.answerable for i in items) >= 8
    assert sum(bool(i.history) for i in items) >= 4
    types = {i.type for i in items}
    assert {"number", "date", "name", "list", "paraphrase", "english", "followup",
            "unanswerable"} <= types
    for i in items:
        if i.answerable:
            assert i.evidence in seed, i.id
            assert all(a in seed for a in i.answers), i.id
    raw = [json.loads(line) for line in TESTSET.read_text("utf-8").splitlines()]
    assert all(set(r) <= {"id", "type", "question", "answers", "evidence", "history"} for r in raw)


# ----- CMRC 2018 scorer, hand-worked ------------------------------------------------------
def test_cmrc_tokens_split_chinese_by_character_and_keep_english_words() -> None:
    assert cmrc_tokens("Nexon开发，2V2模式！") == ["nexon", "开", "发", "2v2", "模", "式"]
    assert cmrc_tokens("总投资1.4亿元") == ["总", "投", "资", "1.4", "亿", "元"]
    assert cmrc_tokens("《伊犁将军》") == ["伊", "犁", "将", "军"]
    assert cmrc_tokens("a-b", drop_punct=False) == ["a", "-", "b"]


def test_cmrc_em_ignores_case_and_its_punctuation_list_only() -> None:
    assert cmrc_em("《汉家公主》", ["汉家公主"]) == 1.0
    assert cmrc_em("Nexon", ["nexon"]) == 1.0
    assert cmrc_em("1.4亿元", ["1.4亿元。"]) == 1.0
    # '.' and ',' are not on CMRC's list: they count
    assert cmrc_em("1,4亿元", ["14亿元"]) == 0.0
    assert cmrc_em("9个", ["8个", "9个"]) == 1.0


def test_cmrc_f1_uses_the_longest_common_substring() -> None:
    # pred 总 投 资 1.4 亿 元 (6 tokens), gold 1.4 亿 元 (3): common run 3, p=1/2, r=1
    assert cmrc_f1("总投资1.4亿元", ["1.4亿元"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    # "霍城县江苏医院" vs "江苏医院大楼": common substring 江苏医院 (4); p=4/6, r=4/7
    p, r = 4 / 6, 4 / 7
    assert cmrc_f1("江苏医院大楼", ["霍城县江苏医院"]) == pytest.approx(2 * p * r / (p + r))
    # not a subsequence: 江医 shares no run longer than 1 with 江苏医院 -> p=1/2, r=1/4
    assert cmrc_f1("江医", ["江苏医院"]) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert cmrc_f1("完全无关", ["nexon"]) == 0.0
    # mixed Chinese and English, best over gold answers
    assert cmrc_f1("韩国Nexon开发", ["Nexon", "韩国nexon"]) == pytest.approx(
        2 * (3 / 5) * 1 / (3 / 5 + 1))


# ----- formats ---------------------------------------------------------------------------------
SQUAD = {"version": "v1", "data": [{"title": "标题甲", "paragraphs": [
    {"id": "P1", "context": "甲乙丙。丁戊己。",
     "qas": [{"id": "Q1", "question": "甲后面是什么?", "answers": [
         {"text": "乙丙", "answer_start": 1}, {"text": "乙丙", "answer_start": 1}]}]},
    {"context": "第二段。", "qas": [{"id": "Q2", "question": "第二?", "answers": []}]},
]}]}


def test_format_is_detected_by_content(tmp_path: Path) -> None:
    squad = tmp_path / "weird name.txt"
    squad.write_text(json.dumps(SQUAD, ensure_ascii=False), "utf-8")
    data = load_testset(squad)
    assert data.format == "squad" and [i.id for i in data.items] == ["Q1", "Q2"]
    q1 = data.items[0]
    assert q1.answers == ["乙丙"] and q1.context == "weird-name/P1"
    assert data.items[1].context == "weird-name/0-1" and not data.items[1].answerable
    doc = data.contexts[0]
    assert doc.source == "weird-name/P1" and doc.text == "标题甲\n甲乙丙。丁戊己。\n"
    assert doc.meta == {"title": "标题甲"}
    jsonl = tmp_path / "set.json"  # extension does not matter either
    jsonl.write_text('{"question": "q", "answers": ["a"]}\n', "utf-8")
    assert load_testset(jsonl).format == "jsonl"


def test_malformed_sets_say_what_is_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), "utf-8")
    with pytest.raises(QabotError, match=r"paragraphs\[0\]\.context must be a string; it is "
                                         "missing"):
        load_testset(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", "utf-8")
    with pytest.raises(QabotError, match="holds no questions"):
        load_testset(empty)


def test_by_type_says_which_types_have_answerable_questions_and_the_charts_draw() -> None:
    from bot.report import write_report

    rows = [row(type="number"), row(type="number", correct=False, f1=0.0, em=0.0),
            row(gold_answers=[], type="unanswerable", refused=True, correct=True)]
    types = by_type(rows)
    assert types["number"]["answerable"] == 2 and types["number"]["n"] == 2
    assert types["unanswerable"]["answerable"] == 0 and types["unanswerable"]["correct"] == 1.0
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as out:
        written = write_report(Path(out), metrics=metrics(rows), types=types, failures=[],
                               rows=rows, about={"testset": "t"})
        assert {p.name for p in written} >= {"by_type.png", "latency.png"}
