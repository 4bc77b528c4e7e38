"""Run a test set through the answer path and score it.

Test-set format (JSON Lines), one question per line::

    {"id": "num-01", "question": "...", "answers": ["1.4亿元"], "evidence": "...",
     "history": ["earlier question", ...], "type": "number"}

``answers: []`` marks a question the documents cannot answer. ``history`` and
``type`` are optional.

Metrics (all in [0, 1] unless stated):

* accuracy: share of answerable questions whose answer text contains a gold answer
  after normalisation (NFKC width folding, case, whitespace removed); refused = wrong.
* citation_hit: share of answerable questions where a cited passage contains the
  evidence (normalised the same way).
* refusal_precision / refusal_recall: over unanswerable questions as positives.
  false_refusal_rate: share of answerable questions refused.
* hit@1, hit@3, hit@5, mrr@10: rank of the first retrieved chunk (top 10, independent
  of the answerer) that contains the evidence; answerable questions only.
* latency p50 / p95 / max in milliseconds, per question, whole answer path.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import tokens
from bot.engine import Engine
from bot.errors import QabotError
from bot.retrieval import HybridRetriever


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    answers: list[str]
    evidence: str
    history: list[str]
    type: str

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def load_testset(path: Path) -> list[Item]:
    items = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QabotError(f"Cannot read test set {path}: {exc}. Give a UTF-8 JSONL file.") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append(Item(
                id=str(row.get("id", n)), question=str(row["question"]),
                answers=[str(a) for a in row.get("answers", [])],
                evidence=str(row.get("evidence", "")),
                history=[str(h) for h in row.get("history") or []],
                type=str(row.get("type", "unlabelled")),
            ))
        except (ValueError, KeyError, TypeError) as exc:
            raise QabotError(f"{path} line {n} is not a test item ({exc}). Each line needs "
                             'at least {"question": ..., "answers": [...]}.') from exc
    if not items:
        raise QabotError(f"{path} holds no questions.")
    return items


def fold(text: str) -> str:
    """Normalisation for answer matching: width, case and all whitespace."""
    return "".join(tokens.normalize(text).split())


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    folded = fold(text)
    return any(fold(a) and fold(a) in folded for a in answers)


def evidence_rank(passages: Sequence[str], evidence: str) -> int | None:
    target = fold(evidence)
    for rank, text in enumerate(passages, 1):
        if target and target in fold(text):
            return rank
    return None


def run(engine: Engine, items: Sequence[Item], *,
        on_result: Callable[[dict[str, Any]], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one prediction per item: the ``ask --json`` fields plus per-item scores."""
    deep = HybridRetriever(index=engine.index, settings=engine.settings.retrieval, k=10)
    for item in items:
        started = time.perf_counter()
        result = engine.answer(item.question, history=item.history)
        latency = (time.perf_counter() - started) * 1000
        retrieved = deep.search(result.standalone_query)
        rank = evidence_rank([d.page_content for d in retrieved], item.evidence)
        cited = [c.text for c in result.citations]
        row = {"id": item.id, "type": item.type, **result.to_dict(),
               "retrieved": [{"chunk_id": d.id, "score": d.metadata["score"]} for d in retrieved],
               "latency_ms": round(latency, 1),
               "gold_answers": item.answers, "evidence": item.evidence,
               "correct": (not result.refused and contains_answer(result.answer, item.answers))
               if item.answerable else result.refused,
               "citation_hit": bool(item.answerable and not result.refused
                                    and evidence_rank(cited, item.evidence)),
               "evidence_rank": rank}
        if on_result:
            on_result(row)
        yield row


def metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    answerable = [r for r in rows if r["gold_answers"]]
    unanswerable = [r for r in rows if not r["gold_answers"]]
    refused = [r for r in rows if r["refused"]]
    ranks = [r["evidence_rank"] for r in answerable]
    lat = sorted(r["latency_ms"] for r in rows)

    def share(n: int, d: int) -> float:
        return round(n / d, 4) if d else 0.0

    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "accuracy": share(sum(r["correct"] for r in answerable), len(answerable)),
        "citation_hit": share(sum(r["citation_hit"] for r in answerable), len(answerable)),
        "refusal_precision": share(sum(1 for r in refused if not r["gold_answers"]), len(refused)),
        "refusal_recall": share(sum(r["refused"] for r in unanswerable), len(unanswerable)),
        "false_refusal_rate": share(sum(r["refused"] for r in answerable), len(answerable)),
        "hit@1": share(sum(1 for k in ranks if k and k <= 1), len(ranks)),
        "hit@3": share(sum(1 for k in ranks if k and k <= 3), len(ranks)),
        "hit@5": share(sum(1 for k in ranks if k and k <= 5), len(ranks)),
        "mrr@10": round(sum(1 / k for k in ranks if k) / len(ranks), 4) if ranks else 0.0,
        "latency_p50_ms": round(_percentile(lat, 50), 1),
        "latency_p95_ms": round(_percentile(lat, 95), 1),
        "latency_max_ms": round(lat[-1], 1) if lat else 0.0,
    }


def by_type(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["type"], []).append(r)
    return {t: {"n": len(g), "correct": round(sum(r["correct"] for r in g) / len(g), 4)}
            for t, g in sorted(groups.items())}


def _percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1])


# ----- refusal calibration ---------------------------------------------------------
def collect_support(engine: Engine, items: Sequence[Item]) -> list[dict[str, Any]]:
    """Answer every item with the thresholds off and keep what calibration needs.

    The engine must be built with ``answer.refusal_threshold`` and
    ``answer.cross_lingual_threshold`` far below any support (e.g. -100); the rule
    refusals (no amount where one is asked, asked-for attribute never mentioned) stay.
    """
    rows = []
    for item in items:
        a = engine.answer(item.question, history=item.history)
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


def choose_threshold(rows: Sequence[dict[str, Any]], max_false_refusals: float) -> float:
    """Most right decisions with at most that share of answerable questions refused;
    among equally good thresholds, the middle one (farthest from both kinds of error)."""
    if not rows:
        return float("nan")
    values = sorted({r["support"] for r in rows})
    cuts = [values[0] - 0.05, *((a + b) / 2 for a, b in itertools.pairwise(values)),
            values[-1] + 0.05]
    answerable = sum(r["answerable"] for r in rows) or 1
    scored = [(decisions(rows, t), t) for t in cuts]
    ok = [(good, t) for (good, fr), t in scored if fr / answerable <= max_false_refusals]
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
