"""Refusal-threshold calibration: answer a labelled set with the thresholds off, then
choose the threshold that makes the most right decisions under a cap on answerable
questions refused. Used by the scripts that fit or choose a threshold
(``python -m train.combiner``, ``train.calibrate_refusal``, ``train.calibrate_reader``)
and by ``bench.embedders``, which calibrates each embedder before comparing them. It
lives in the lab, not in the shipped package: nothing on the answer path calibrates."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

from bot import tokens
from bot.engine import Engine
from bot.evaluation import Item, contains_answer


def collect_support(engine: Engine, items: Sequence[Item]) -> list[dict[str, Any]]:
    """Answer every item with the thresholds off and keep what calibration needs.

    The engine must be built with ``answer.refusal_threshold`` and
    ``answer.cross_lingual_threshold`` far below any support (e.g. -100); the rule
    refusals (no amount where one is asked, asked-for attribute never mentioned) stay.
    """
    rows = []
    for item in items:
        a = engine.answer(item.question, history=list(item.history))
        rows.append({
            "id": item.id, "answerable": item.answerable,
            "cjk": tokens.is_mostly_cjk(item.question),
            "rule_refused": a.refused, "support": a.support,
            "right_if_answered": item.answerable and not a.refused
            and contains_answer(a.answer, item.answers),
        })
    return rows


def decisions(rows: Sequence[dict[str, Any]], threshold: float) -> tuple[int, int]:
    """(right decisions, answerable questions refused) at ``threshold``."""
    good = false_refusals = 0
    for r in rows:
        refused = r["rule_refused"] or r["support"] < threshold
        if r["answerable"]:
            good += (not refused) and r["right_if_answered"]
            false_refusals += refused
        else:
            good += refused
    return good, false_refusals


def choose_threshold(rows: Sequence[dict[str, Any]], max_false_refusals: float, *,
                     only_right: bool = False) -> float:
    """Most right decisions with at most that share of answerable questions refused;
    among equally good thresholds, the middle one (farthest from both kinds of error).
    With ``only_right`` the share counts only the answerable questions that would be
    answered right: refusing one the bot would answer wrongly costs nothing, since
    "not found" beats a wrong answer with a citation."""
    if not rows:
        return float("nan")
    values: list[float] = sorted({float(r["support"]) for r in rows})
    cuts = [values[0] - 0.05, *((a + b) / 2 for a, b in itertools.pairwise(values)),
            values[-1] + 0.05]
    charged = [r for r in rows if r["answerable"] and (r["right_if_answered"] or not only_right)]
    total = len(charged) or 1
    ok = []
    for t in cuts:
        refused = sum(1 for r in charged if r["rule_refused"] or r["support"] < t)
        if refused / total <= max_false_refusals:
            ok.append((decisions(rows, t)[0], t))
    if not ok:
        return cuts[0]
    best = max(good for good, _ in ok)
    winners = [t for good, t in ok if good == best]
    return winners[len(winners) // 2]


def cross_validate(rows: Sequence[dict[str, Any]], max_false_refusals: float,
                   folds: int = 5, seed: int = 0) -> tuple[int, int]:
    """Right decisions on held-out folds when thresholds are chosen on the rest."""
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    parts = [shuffled[i::folds] for i in range(folds)]
    good = total = 0
    for i, held in enumerate(parts):
        train = [r for j, part in enumerate(parts) if j != i for r in part]
        for cjk in (True, False):
            t = choose_threshold([r for r in train if r["cjk"] == cjk], max_false_refusals)
            test = [r for r in held if r["cjk"] == cjk]
            good += decisions(test, t)[0]
            total += len(test)
    return good, total
