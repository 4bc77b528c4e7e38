"""Metric functions on hand-worked cases, and the shipped test set itself."""

from __future__ import annotations

import json

from conftest import SEED, TESTSET

from bot.evaluation import contains_answer, evidence_rank, fold, load_testset, metrics


def row(**kw):
    base = {"gold_answers": ["x"], "refused": False, "correct": True, "citation_hit": True,
            "evidence_rank": 1, "latency_ms": 10.0, "type": "t"}
    base.update(kw)
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
        row(latency_ms=10),  # answerable, right, rank 1
        row(correct=False, citation_hit=False, evidence_rank=3, latency_ms=20),
        row(refused=True, correct=False, citation_hit=False, evidence_rank=None, latency_ms=30),
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
    assert m["latency_p50_ms"] == 30.0 and m["latency_max_ms"] == 50.0


def test_shipped_test_set_is_large_varied_and_grounded() -> None:
    items = load_testset(TESTSET)
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
