"""``answer.answerer = none``: extractive answers with citations, and honest refusals,
from rules alone (no reader, no LLM).

Every sentence of the retrieved passages is scored by its features
(bot/features.py: coverage, local coverage, dense similarity, answer type, rank).

The best sentence is quoted with what it needs to be read alone: the sentence before
it when it points back (因此…, 此战…, 他…), and for open questions (what, why, which)
the one after it, where such answers often run on. Adjacent sentences are quoted as
one passage, cited as ``[n]``. When the question asks for an amount, count,
percentage, date or name, the matching span closest to the question's words in the
best sentence becomes the short answer, shown first.

Refusal: ``support`` measures, in absolute terms, how well the best sentence (with its
document's title) covers the question (term and bigram coverage plus dense similarity
for questions in the documents' script; dense similarity alone for the others, against
``answer.cross_lingual_threshold``). When the question asks for an attribute
(「…的负责人是谁」) its passage never names, support is cut by a fixed penalty. Below
``answer.refusal_threshold``, or when an amount, count or percentage is asked and the
evidence holds none, the answer says the documents do not contain it and lists the
closest passages as "related" instead of citing them. Both thresholds are calibrated by
``train/calibrate_refusal.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document

from bot import tokens
from bot.answerers.contract import Corpus, Query
from bot.answerers.metadata import metadata_answer
from bot.answers import (
    ANOTHER_ROW,
    BELOW_THRESHOLD,
    NOTHING_TO_READ,
    WRONG_TYPE,
    Answer,
    Citation,
    Evidence,
    Mode,
    Quote,
    citation_of,
)
from bot.chunking import KIND_TABLE
from bot.config import AnswerSettings
from bot.facts import asked_cell, is_another_row
from bot.features import (
    FEATURES,
    Candidate,
    question_type,
    score_sentences,
    score_weights,
    short_answer,
)
from bot.sentences import unwrap

# "X的Y是多少 / 叫什么 / 是谁": Y is the attribute asked about. Evidence that never
# mentions Y (or a span of the asked type that implies it) does not answer the question.
_ATTRIBUTE = re.compile(r"的([^的，,。？?！!、\s]{1,6}?)(?:是|有|为|叫)(?:多少|几|什么|谁|哪)")
_TYPES_IMPLYING_ATTRIBUTE = {"percent"}


_NOT_FOUND_ZH = "文档中没有找到这个问题的答案。"
_NOT_FOUND_EN = "The documents do not contain an answer to this question."

class ExtractiveAnswerer:
    """Question + passages -> ``Answer``; see the module docstring for the method."""

    def __init__(self, corpus: Corpus, settings: AnswerSettings) -> None:
        self.corpus = corpus
        self.settings = settings
        self.weights = score_weights(settings.scorer)

    def __call__(self, inputs: dict[str, Any]) -> Answer:
        """The chain step: {"query", "passages", ...} -> Answer."""
        return self.answer(inputs["query"], inputs["passages"])

    def answer(self, query: Query, passages: Sequence[Document]) -> Answer:
        english = not tokens.is_mostly_cjk(query.question)
        qtype = question_type(query.question) or (
            question_type(query.standalone) if query.standalone != query.question else None)
        citations_pool = [citation_of(i + 1, p) for i, p in enumerate(passages)]
        about_doc = metadata_answer(self.corpus, query, passages, citations_pool)
        if about_doc is not None:
            return about_doc
        scored = self.candidates(query, passages, qtype)
        if not scored:
            return self._refusal(query, citations_pool, english, 0.0,
                                 threshold=self.settings.refusal_threshold,
                                 reason=NOTHING_TO_READ)
        best = max(scored, key=lambda s: s.score)
        support, typed_ok = self._support(query, qtype, best, passages)
        # the threshold of the evidence the best sentence has: lexical + dense in the
        # question's script, dense alone across scripts
        threshold = (self.settings.refusal_threshold if best.features["same_script"]
                     else self.settings.cross_lingual_threshold)
        if support < threshold or not typed_ok:
            return self._refusal(query, citations_pool, english, support, typed_ok,
                                 threshold, BELOW_THRESHOLD if support < threshold
                                 else WRONG_TYPE)
        row = passages[best.passage].metadata
        if is_another_row(query.question, best.text, row):
            return self._refusal(query, citations_pool, english, support, typed_ok,
                                 threshold, ANOTHER_ROW)

        chosen = _context(best, scored, open_question=not qtype,
                          limit=self.settings.max_sentences)
        # then other sentences nearly as good as the best (lists, several facts), for
        # open questions only: an amount or a date is one value in one sentence
        if not qtype:
            for cand in sorted(scored, key=lambda s: -s.score)[1:]:
                if len(chosen) >= self.settings.max_sentences:
                    break
                nearly = cand.score >= best.score - 0.08 and cand.support >= best.support * 0.85
                if nearly and not _overlaps(cand, chosen):
                    chosen.append(cand)
        # documents in the order their first passage was retrieved, sentences in text order
        first: dict[str, int] = {}
        for s in chosen:
            first[s.source] = min(first.get(s.source, s.passage), s.passage)
        chosen.sort(key=lambda s: (first[s.source], s.start))

        numbering: dict[int, int] = {}
        for s in chosen:
            numbering.setdefault(s.passage, len(numbering) + 1)
        citations = []
        for p_index, n in numbering.items():
            c = citations_pool[p_index]
            citations.append(dataclasses.replace(c, n=n))
        short = (short_answer(qtype, best.text, query, self.corpus.segmenter) if qtype
                 else None)
        if passages[best.passage].metadata.get("kind") == KIND_TABLE:
            # the column the question names (a follow-up names it in its rewritten form)
            cell = asked_cell(best.text, f"{query.question} {query.standalone}")
            if cell is not None and best.text[cell[0]:cell[1]].strip():
                short = best.text[cell[0]:cell[1]].strip()
        # consecutive sentences read as one quote, as they stand in the document
        quotes = [Quote(_quote(run, passages),
                        tuple(dict.fromkeys(numbering[s.passage] for s in run)),
                        source=run[0].source, start=run[0].start, end=run[-1].end)
                  for run in _runs(chosen)]
        related = [dataclasses.replace(c, n=i) for i, c in enumerate(
            (c for k, c in enumerate(citations_pool) if k not in numbering),
            start=len(citations) + 1)]
        return Answer(
            question=query.question, short_answer=short, quotes=quotes,
            short_cite=numbering[best.passage] if short else None,
            refused=False, citations=citations, related=related,
            standalone_query=query.standalone, support=support, mode=Mode.EXTRACTIVE,
            threshold=threshold,
            evidence=Evidence(source=best.source, start=best.start, end=best.end,
                              text=best.text, features=best.features),
        )

    def candidates(self, query: Query, passages: Sequence[Document], qtype: str | None
                   ) -> list[Candidate]:
        """Every sentence of the passages, once, with its features and score."""
        return score_sentences(self.corpus, self.weights, query, passages, qtype)

    def _support(self, query: Query, qtype: str | None, best: Candidate,
                 passages: Sequence[Document]) -> tuple[float, bool]:
        """(support after the missing-attribute penalty, whether the asked-for kind of
        value is there at all). A best sentence in another script than the question's is
        compared with cross_lingual_threshold: only the dense side can vouch for it."""
        support = best.support
        if self._attribute_missing(query.question, qtype, passages[best.passage]):
            # the evidence never names what was asked ("…的负责人是谁"): it may still
            # imply it ("杨昊是足球运动员" for 职业), so demand a much stronger match
            support -= FEATURES.missing_attribute_penalty
        # asked for an amount, count or percentage and the evidence holds none (not
        # dates: "高二的时候" or "清朝末年" answer a when-question without digits)
        typed_ok = not (qtype in ("money", "count", "percent") and best.features["typed"] < 0)
        return support, typed_ok

    def _attribute_missing(self, question: str, qtype: str | None, passage: Document) -> bool:
        """Whether the question asks for an attribute ("X的Y是谁/多少") that
        ``passage`` never names."""
        attribute = _ATTRIBUTE.search(question)
        if not attribute or qtype in _TYPES_IMPLYING_ATTRIBUTE:
            return False
        wanted = self.corpus.segmenter.content_terms(attribute.group(1)) or [attribute.group(1)]
        text = tokens.normalize(passage.page_content)
        return not any(tokens.normalize(t) in text for t in wanted)

    def refusal(self, query: Query, passages: Sequence[Document]) -> Answer:
        """The "documents do not say" answer, with the passages offered as related."""
        return self._refusal(query, [citation_of(i + 1, p) for i, p in enumerate(passages)],
                             not tokens.is_mostly_cjk(query.question), 0.0)

    def _refusal(self, query: Query, pool: list[Citation], english: bool,
                 support: float, typed_ok: bool = True,
                 threshold: float | None = None,
                 reason: str = NOTHING_TO_READ) -> Answer:
        return Answer(
            question=query.question, text=_NOT_FOUND_EN if english else _NOT_FOUND_ZH,
            short_answer=None, refused=True, citations=[], related=pool,
            standalone_query=query.standalone, support=support, mode=Mode.EXTRACTIVE,
            threshold=threshold, refusal_reason=reason, evidence=Evidence(typed_ok=typed_ok),
        )


# A sentence that opens by pointing back (因此…, 此战…, 在此背景下…, 他…) means little
# without the one before it.
_POINTS_BACK = re.compile(r"^(?:因此|因而|所以|于是|故此|此后|其后|随后|之后|后来|然而|但是?|不过"
                          r"|同时|此外|另外|并且|而且|在此|这|此|该|其|他|她|它|本)")


def _context(best: Candidate, scored: Sequence[Candidate], *, open_question: bool,
             limit: int) -> list[Candidate]:
    """The best sentence with what it needs to be read on its own: the sentence before
    it when it points back, the one after it for open questions (what is X, why, which
    ones), whose answers often run on into the next sentence; ``limit`` sentences in
    all, the one before first."""
    def adjacent(before: bool) -> Candidate | None:
        return next((c for c in scored if c.source == best.source and (
            best.start - 4 <= c.end <= best.start if before
            else best.end <= c.start <= best.end + 4)), None)

    chosen = [best]
    previous = adjacent(before=True) if _POINTS_BACK.match(best.text) else None
    if previous is not None and len(chosen) < limit:
        chosen.insert(0, previous)
    following = adjacent(before=False) if open_question else None
    if following is not None and len(chosen) < limit:
        chosen.append(following)
    return chosen


_LATIN_END = re.compile(r"[A-Za-z0-9.,;:!?)\"']$|^[A-Za-z0-9(\"']")


def _runs(chosen: Sequence[Candidate]) -> list[list[Candidate]]:
    """``chosen`` (in document order) cut into runs of adjacent sentences."""
    runs: list[list[Candidate]] = []
    for s in chosen:
        last = runs[-1][-1] if runs else None
        if last is not None and last.source == s.source and 0 <= s.start - last.end <= 4:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


def _quote(run: Sequence[Candidate], passages: Sequence[Document]) -> str:
    """The text of a run of adjacent sentences, with what stands between them."""
    text = run[0].text
    for prev, s in itertools.pairwise(run):
        doc = passages[s.passage]
        if KIND_TABLE in (doc.metadata.get("kind"), passages[prev.passage].metadata.get("kind")):
            text += "; " + s.text  # two rows of a table: facts, not text to slice between
            continue
        base = int(doc.metadata.get("start", 0))
        gap = doc.page_content[prev.end - base:s.start - base] if prev.end >= base else ""
        if not gap.strip():  # a line break between them is layout, not text
            gap = " " if _LATIN_END.search(text) and _LATIN_END.match(s.text) else ""
        text += gap + s.text
    return unwrap(text)


def _overlaps(cand: Candidate, chosen: list[Candidate]) -> bool:
    return any(cand.source == c.source and cand.start < c.end and c.start < cand.end
               for c in chosen)
