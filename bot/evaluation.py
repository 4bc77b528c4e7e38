"""Test sets in, scored predictions and metrics out.

The test set formats (the project's JSON Lines, SQuAD/CMRC JSON) are read by
bot/testsets.py. A retrieved or cited passage is *relevant* when it contains the
evidence (after folding width, case and whitespace), or, for a SQuAD-style set, when
it comes from the question's gold context.

Metrics (in [0, 1] unless stated; "answerable" = has gold answers):

* accuracy: answerable questions whose answer text contains a gold answer after folding;
  a refusal counts as wrong.
* em, f1: CMRC 2018's scorer on the short answer (the cited sentence when there is no
  short answer): lower case, its punctuation list removed, Chinese split into
  characters, F1 from the longest common substring, best over the gold answers.
* citation_hit: answerable questions with at least one relevant cited passage.
  citation_precision: share of cited passages that are relevant, averaged over answered
  answerable questions.
* refusal_precision / refusal_recall: unanswerable questions are the positives;
  false_refusal_rate: answerable questions refused.
* hit@1/3/5, mrr@10, ndcg@10: the top 10 of the retriever alone (not the answerer),
  binary relevance; nDCG's ideal ranking puts every relevant chunk of the index first.
* latency p50 / p95 / max: milliseconds per question, whole answer path.
"""

from __future__ import annotations

import contextlib
import math
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bot import tokens
from bot.answers import Answer, Evidence
from bot.engine import Engine, turn_of
from bot.errors import QuestionError
from bot.retrieval import HybridRetriever
from bot.sessions import Turn

# re-exported: callers read test sets through this module (they live in bot/testsets.py)
from bot.testsets import Item as Item
from bot.testsets import TestSet as TestSet
from bot.testsets import load_testset as load_testset


# ----- scoring helpers ------------------------------------------------------------------
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


# CMRC 2018's official punctuation list (its scorer removes these and nothing else)
_CMRC_PUNCT = set("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』") | {"……"}
_CJK_CHAR = re.compile(r"[\u4e00-\u9fa5]")
_WORD = re.compile(r"\d+(?:\.\d+)+|\w+|[^\w\s]")


def cmrc_tokens(text: str, *, drop_punct: bool = True) -> list[str]:
    """CMRC's mixed segmentation: Chinese characters one by one, other runs as words
    (the official script uses nltk.word_tokenize; a regex that keeps decimals such as
    1.4 whole, as nltk does, stands in for it)."""
    out: list[str] = []
    run = ""
    for ch in str(text).lower().strip():
        if drop_punct and ch in _CMRC_PUNCT:
            continue
        if _CJK_CHAR.match(ch) or ch in _CMRC_PUNCT:
            out += _WORD.findall(run)
            run = ""
            out.append(ch)
        else:
            run += ch
    return out + _WORD.findall(run)


def cmrc_em(prediction: str, answers: Sequence[str]) -> float:
    def strip(t: str) -> str:
        return "".join(c for c in str(t).lower().strip() if c not in _CMRC_PUNCT)

    return float(any(strip(prediction) == strip(a) for a in answers))


def cmrc_f1(prediction: str, answers: Sequence[str]) -> float:
    best = 0.0
    pred = cmrc_tokens(prediction)
    for answer in answers:
        gold = cmrc_tokens(answer)
        common = _longest_common_substring(gold, pred)
        if common:
            p, r = common / len(pred), common / len(gold)
            best = max(best, 2 * p * r / (p + r))
    return best


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    best = 0
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            cur = row[j]
            row[j] = prev + 1 if x == y else 0
            best = max(best, row[j])
            prev = cur
    return best


def _dcg(relevances: Sequence[bool]) -> float:
    return sum(1 / math.log2(i + 2) for i, rel in enumerate(relevances) if rel)


# ----- running ------------------------------------------------------------------------------
def relevant(item: Item, source: str, text: str) -> bool:
    """A passage is relevant when it comes from the item's gold context (SQuAD-style) or
    contains its evidence (after folding)."""
    if item.context is not None:
        return source == item.context
    target = fold(item.evidence)
    return bool(target) and target in fold(text)


class Scorer:
    """Counts the relevant chunks the index holds for an item (nDCG's ideal ranking)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._all: list[tuple[str, str]] | None = None  # (source, text) of every chunk

    def relevant_total(self, item: Item) -> int:
        if item.context is not None:
            entry = self.engine.index.manifest.get("files", {}).get(item.context, {})
            return len(entry.get("chunks", []))
        if self._all is None:
            got = self.engine.index.all_chunks()
            self._all = [(d.metadata.get("source", ""), d.page_content) for d in got]
        return sum(relevant(item, s, t) for s, t in self._all)


def run(engine: Engine, items: Sequence[Item], *,
        on_result: Callable[[dict[str, Any]], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one prediction per item: the ``ask --json`` fields, what was retrieved, and
    every per-item score."""
    deep = HybridRetriever(index=engine.index, settings=engine.settings.retrieval, k=10)
    scorer = Scorer(engine)
    chat = _Chat(engine)
    for item in items:
        started = time.perf_counter()
        try:
            result = chat.answer(item)
        except QuestionError as exc:  # e.g. an empty question in the set: scored as refused
            result = Answer(question=item.question, short_answer=None,
                            refused=True, citations=[], standalone_query=item.question,
                            evidence=Evidence(error=str(exc)))
        latency = (time.perf_counter() - started) * 1000
        retrieved = deep.search(result.standalone_query) if result.standalone_query.strip() \
            else []
        rel = [relevant(item, str(d.metadata.get("source", "")), d.page_content)
               for d in retrieved]
        rank = rel.index(True) + 1 if True in rel else None
        cited = [relevant(item, c.source, c.text) for c in result.citations]
        row: dict[str, Any] = {
            "id": item.id, "type": item.type, **result.to_dict(),
            "retrieved": [{"chunk_id": d.id, "source": d.metadata.get("source"),
                           "score": d.metadata["score"], "relevant": r,
                           "text": d.page_content} for d, r in zip(retrieved, rel, strict=True)],
            "latency_ms": round(latency, 1),
            "gold_answers": item.answers, "evidence": item.evidence,
        }
        if item.answerable:
            predicted = result.short_answer or result.evidence.text
            ideal = _dcg([True] * min(10, max(scorer.relevant_total(item), 1)))
            row.update({
                "correct": not result.refused and contains_answer(result.answer, item.answers),
                "em": 0.0 if result.refused else cmrc_em(predicted, item.answers),
                "f1": 0.0 if result.refused else round(cmrc_f1(predicted, item.answers), 4),
                "citation_hit": any(cited),
                "citation_precision": (sum(cited) / len(cited)) if cited else None,
                "evidence_rank": rank, "rr": 1 / rank if rank else 0.0,
                "ndcg@10": round(_dcg(rel) / ideal, 4),
            })
        else:  # answer and retrieval scores do not apply: same keys, no values
            row.update({"correct": result.refused, "em": None, "f1": None,
                        "citation_hit": None, "citation_precision": None,
                        "evidence_rank": None, "rr": None, "ndcg@10": None})
        if on_result:
            on_result(row)
        yield row


class _Chat:
    """The conversation an item with ``history`` belongs to, answered as a user's chat
    is: each earlier question answered in turn and kept with its answer (the subject a
    follow-up resolves against, the answer it should not repeat), in memory, so an
    evaluation writes nothing to the sessions store. A set whose items follow one
    another (each item's history is the previous item's history and question) is
    answered once per turn; any other item replays its history first (not scored)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.asked: list[str] = []
        self.turns: list[Turn] = []

    def answer(self, item: Item) -> Answer:
        if not item.history:
            return self.engine.answer(item.question)
        if self.asked != list(item.history):
            self.asked, self.turns = [], []
            for question in item.history:
                with contextlib.suppress(QuestionError):  # kept as a turn all the same
                    self._turn(question)
        return self._turn(item.question)

    def _turn(self, question: str) -> Answer:
        self.asked.append(question)
        limit = self.engine.settings.session.history_turns
        try:
            result = self.engine.respond(question, self.turns[-limit:] if limit else [])
        except QuestionError:
            self.turns.append(Turn(question=question, standalone=question, answer=""))
            raise
        self.turns.append(turn_of(question, result))
        return result


# What each metric in metrics() means: shown in report.md, so a reader of a report
# needs no docstring. None (n/a) means the metric has no question to be measured on.
METRIC_DEFINITIONS = {
    "questions": "questions evaluated",
    "answerable": "questions with a gold answer",
    "unanswerable": "questions the documents cannot answer (the bot should refuse)",
    "accuracy": "answerable questions answered (not refused) with a gold answer contained "
                "in the answer text",
    "em": "CMRC exact match of the short answer (or the quoted sentence) with a gold "
          "answer, mean over answerable questions (refusals score 0)",
    "f1": "CMRC character F1 of the short answer with the best gold answer, mean over "
          "answerable questions (refusals score 0)",
    "citation_hit": "answerable questions whose cited passages include a relevant one",
    "citation_precision": "share of cited passages that are relevant, mean over answered "
                          "answerable questions",
    "refusal_precision": "refusals that were right (the question was unanswerable)",
    "refusal_recall": "unanswerable questions refused",
    "false_refusal_rate": "answerable questions refused",
    "hit@1": "answerable questions with a relevant passage retrieved first",
    "hit@3": "... within the top 3",
    "hit@5": "... within the top 5",
    "mrr@10": "mean reciprocal rank of the first relevant passage in the top 10",
    "ndcg@10": "normalised discounted cumulative gain of the top 10 retrieved passages",
    "answer_chars_p50": "median length in characters of the answers to answerable questions",
    "latency_p50_ms": "median wall time to answer one question, milliseconds",
    "latency_p95_ms": "95th percentile of the same",
    "latency_max_ms": "slowest question",
    "ingest_seconds": "time to index the test set's contexts (--ingest-contexts)",
    "correct": "right decisions: answerable questions answered right plus unanswerable "
               "ones refused, over all questions of the type",
}


def metrics(rows: Sequence[dict[str, Any]], *, ingest_seconds: float | None = None
            ) -> dict[str, float | None]:
    answerable = [r for r in rows if r["gold_answers"]]
    unanswerable = [r for r in rows if not r["gold_answers"]]
    refused = [r for r in rows if r["refused"]]
    ranks = [r["evidence_rank"] for r in answerable]
    precisions = [r["citation_precision"] for r in answerable
                  if r.get("citation_precision") is not None]
    lat = sorted(r["latency_ms"] for r in rows)
    lengths = sorted(len(r["answer"]) for r in answerable if not r["refused"])

    def share(n: float, d: int) -> float | None:
        return round(n / d, 4) if d else None  # n/a: no question to measure it on

    out: dict[str, float | None] = {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "accuracy": share(sum(r["correct"] for r in answerable), len(answerable)),
        "em": share(sum(r["em"] for r in answerable), len(answerable)),
        "f1": share(sum(r["f1"] for r in answerable), len(answerable)),
        "citation_hit": share(sum(r["citation_hit"] for r in answerable), len(answerable)),
        "citation_precision": share(sum(precisions), len(precisions)),
        "refusal_precision": share(sum(1 for r in refused if not r["gold_answers"]),
                                   len(refused)),
        "refusal_recall": share(sum(r["refused"] for r in unanswerable), len(unanswerable)),
        "false_refusal_rate": share(sum(r["refused"] for r in answerable), len(answerable)),
        "hit@1": share(sum(1 for k in ranks if k and k <= 1), len(ranks)),
        "hit@3": share(sum(1 for k in ranks if k and k <= 3), len(ranks)),
        "hit@5": share(sum(1 for k in ranks if k and k <= 5), len(ranks)),
        "mrr@10": share(sum(r["rr"] for r in answerable), len(answerable)),
        "ndcg@10": share(sum(r["ndcg@10"] for r in answerable), len(answerable)),
        # accuracy rewards long answers ("contains a gold answer"): show what it cost
        "answer_chars_p50": round(percentile(lengths, 50), 1) if lengths else None,
        "latency_p50_ms": round(percentile(lat, 50), 1) if lat else None,
        "latency_p95_ms": round(percentile(lat, 95), 1) if lat else None,
        "latency_max_ms": round(lat[-1], 1) if lat else None,
    }
    if ingest_seconds is not None:
        out["ingest_seconds"] = round(ingest_seconds, 2)
    return out


QUALITY = ("accuracy", "em", "f1", "citation_hit", "citation_precision", "hit@1", "hit@3",
           "hit@5", "mrr@10", "ndcg@10")


def by_type(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per question type: count, right decisions (answers or refusals), and the
    answerable-only quality metrics."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["type"], []).append(r)
    out = {}
    for t, group in sorted(groups.items()):
        m = metrics(group)
        right = sum(r["correct"] for r in group) / len(group)
        out[t] = {"n": len(group), "correct": round(right, 4),
                  # the quality metrics below do not apply to a type with none
                  "answerable": sum(1 for r in group if r["gold_answers"]),
                  **{k: m[k] for k in ("accuracy", "f1", "citation_hit", "hit@5")}}
    return out


def worst(rows: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The failures most worth reading: wrong answers with the evidence retrieved low or
    not at all come first."""
    wrong = [r for r in rows if not r["correct"]]
    return sorted(wrong, key=lambda r: (-(r["evidence_rank"] or 99), r["id"]))[:n]


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1])
