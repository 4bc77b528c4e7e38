"""Answers from the trained reader (``answer.reader = trained``; opt-in, see
docs/benchmarks.md for why the rule answerer stays the default).

The retrieved passages are read by ``bot.reader.Reader``; the span with the largest
margin over "not here" wins, across windows and passages. Then:

* short answer: the span itself (punctuation at its edges dropped);
* quote: the sentence that holds the span, cut to its clauses around the span when it
  is longer than ``QUOTE_CHARS`` (a leading/trailing "…" says so), cited ``[n]``;
  ``evidence`` keeps the exact source offsets of both;
* refusal: when no reading's margin reaches ``answer.reader_threshold``, the
  documents "do not contain" the answer and the passages are offered as related.

Follow-ups: when the chat has history and the question was not rewritten (no
pronoun to resolve, 「第一批学员有多少人?」 after a question about 天华民乐团), the
engine also retrieves for the question with the previous turn's topic
(``Query.contextual``); both readings are scored and the reader's margins decide.

Kept from the rule answerer: questions about the document itself (its author, date,
title) are answered from the metadata the loader read (``ExtractiveAnswerer``'s
metadata rule), and the refusal's shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from bot import tokens
from bot.answering import ExtractiveAnswerer, Query, citation_of
from bot.answers import Answer, Citation, Evidence, Mode, Quote
from bot.chunking import split_sentences, unwrap
from bot.config import AnswerSettings
from bot.reader import Reader, Span
from bot.store import Index

# A quoted sentence longer than this is cut to the clauses around the span. A
# presentation choice (a Telegram line, a terminal line and a half), not tuned on any
# evaluation set.
QUOTE_CHARS = 80
_CLAUSE_END = re.compile(r"[，,；;：:、]")
_EDGE_PUNCT = " \t\n，,。.；;：:、！!？?\"'“”‘’（）()「」『』《》【】"


@dataclass(frozen=True)
class Reading:
    """One question form read over one passage list, and its best span."""

    question: str
    passages: Sequence[Document]
    span: Span | None


class ReaderAnswerer:
    """Question + passages -> ``Answer`` via the trained reader."""

    def __init__(self, index: Index, settings: AnswerSettings,
                 reader: Reader | None = None) -> None:
        self.index = index
        self.settings = settings
        self.rules = ExtractiveAnswerer(index, settings)  # metadata answers, refusal shape
        self._reader = reader

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = Reader()
        return self._reader

    def __call__(self, inputs: dict[str, Any]) -> Answer:
        return self.answer(inputs["query"], inputs["passages"],
                           inputs.get("context_passages") or ())

    def refusal(self, query: Query, passages: Sequence[Document]) -> Answer:
        return self.rules.refusal(query, passages)

    def read(self, question: str, passages: Sequence[Document]) -> Reading:
        texts = [p.page_content for p in passages[:self.settings.reader_passages]]
        spans = self.reader.read(question, texts)
        return Reading(question, passages, spans[0] if spans else None)

    def answer(self, query: Query, passages: Sequence[Document],
               context_passages: Sequence[Document] = ()) -> Answer:
        pool = [citation_of(i + 1, p) for i, p in enumerate(passages)]
        about_doc = self.rules._metadata_answer(query, passages, pool)
        if about_doc is not None:
            return about_doc
        readings = [self.read(query.standalone, passages)] if passages else []
        if query.contextual and context_passages:
            readings.append(self.read(query.contextual, context_passages))
        scored = [r for r in readings if r.span is not None]
        if not scored:
            return self._refused(query, passages, 0.0)
        best = max(scored, key=lambda r: r.span.score if r.span else -1e9)
        assert best.span is not None
        if best.span.score < self.settings.reader_threshold:
            return self._refused(query, best.passages, best.span.score)
        return self._compose(query, best, best.span)

    def _refused(self, query: Query, passages: Sequence[Document], score: float) -> Answer:
        out = self.rules.refusal(query, passages)
        out.support = score
        out.mode = Mode.READER
        out.evidence = Evidence(reader_score=round(score, 4))
        return out

    def _compose(self, query: Query, reading: Reading, span: Span) -> Answer:
        doc = reading.passages[span.passage]
        text = doc.page_content
        start, end = _trim(text, span.start, span.end)
        short = text[start:end]
        sentence = next(((s.start, s.end) for s in split_sentences(text)
                         if s.start <= start < s.end), (start, end))
        q_start, q_end = _clip(text, sentence, (start, end), QUOTE_CHARS)
        quote = unwrap(text[q_start:q_end].strip())
        if q_start > sentence[0]:
            quote = "…" + quote
        if q_end < sentence[1]:
            quote += "…"
        c = citation_of(1, doc)
        citation = Citation(1, c.source, c.chunk_id, c.start, c.end, c.text, c.score)
        related = [citation_of(i, p) for i, p in enumerate(
            (p for k, p in enumerate(reading.passages) if k != span.passage), start=2)]
        # the short answer gets a line of its own unless it is the whole quote
        apart = bool(short) and tokens.normalize(short) != tokens.normalize(quote.strip("…"))
        base = int(doc.metadata.get("start", 0))
        standalone = reading.question if reading.question != query.standalone \
            else query.standalone
        return Answer(
            question=query.question, short_answer=short or None,
            short_cite=1 if apart else None, quotes=[Quote(quote, (1,))],
            refused=False, citations=[citation], related=related,
            standalone_query=standalone, support=span.score, mode=Mode.READER,
            evidence=Evidence(source=c.source, start=base + q_start, end=base + q_end,
                              text=text[q_start:q_end], span_start=base + start,
                              span_end=base + end, reader_score=round(span.score, 4)),
        )


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
