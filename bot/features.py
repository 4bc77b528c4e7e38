"""The features of a candidate sentence, and the score that ranks them.

Given a question and the retrieved passages, ``score_sentences`` scores every sentence
of every passage by

* lexical coverage: idf-weighted share of the question's terms the sentence holds,
  plus the share of the question's character bigrams (catches paraphrase and jieba
  segmentation differences). A document's title counts as part of each of its
  sentences, and a term found only elsewhere in the document's retrieved text counts
  for part of its weight: "它的面积约为0.3平方公里" answers "乍都节公园的面积" in the
  document about 乍都节公园;
* local coverage: the same share with idf computed over the candidate sentences, so
  the words that single one sentence out (面积) outweigh the topic every sentence shares;
* dense similarity of the sentence's stored vector to the question's vector, relative
  to the best sentence (so the scale of each embedder does not matter);
* answer type (``question_type``): a question asking 多少钱 / how many / 哪一年 / 叫什么
  wants a sentence that holds an amount, a count (in the asked unit, for 「多少亩」), a
  date or a quoted name it does not already state (``typed_spans``);
* the passage's retrieval rank, and a penalty for site chrome.

Each candidate also carries ``support``: in absolute terms, how well it (with its
document's title) covers the question (term and bigram coverage plus dense similarity
for questions in its script; dense similarity alone for the others). The rule
answerer (bot/answerers/rules.py) quotes and refuses by these; the guided answerer
(bot/answerers/guided.py) has the reader read the best of them.

The hand-set numbers are ``FEATURES``; the weights that add the features up are
``HAND_WEIGHTS`` or the learned bot/models/scorer.json (``answer.scorer``).
"""
from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from bot import tokens
from bot.answerers.contract import Corpus, Query
from bot.chunking import (
    KIND_BOILERPLATE,
    KIND_HEADER,
    sentence_id,
    unit_offsets,
    units,
)
from bot.errors import ScorerError

# 33,700 / 1.601 / 三十
_NUM = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|[一二两三四五六七八九十百千万零〇]+)"
_AMOUNT = rf"{_NUM}(?:\s?[至到~～–-]\s?{_NUM})?"  # 15至20
_UNITS = (r"人次|场次|平方公里|平方千米|平方米|公里|千米|厘米|公分|毫米|公尺|英尺|英寸|英里"
          r"|公顷|公斤|千克|小时|分钟|个月|周年"
          r"|km²|km|cm|mm|kg|m²|m|ft|个|名|人|项|次|场|所|户|批|家|位|亩|张|条|村|栋|座|期|米|吨"
          r"|岁|年|天|日|秒|部|本|首|集|届|层|种|只|头|匹|辆|台|架|艘|枚|颗|块|篇|件|份|间"
          r"|卷|册|章|节|分|倍|度|克")
PATTERNS: dict[str, re.Pattern[str]] = {
    "money": re.compile(rf"(?:近|约)?{_AMOUNT}(?:余|多)?(?:万|亿|千)?(?:余|多)?"
                        rf"(?:美元|港元|港币|欧元|日元|英镑|元|人民币)(?:以上)?"
                        # $499, €1,200, 45 EUR, 30 dollars
                        rf"|[$€£¥]\s?{_NUM}|{_NUM}\s?(?:USD|EUR|GBP|CNY|RMB|dollars?|euros?"
                        rf"|pounds?|yuan)\b"),
    "percent": re.compile(rf"{_NUM}\s*%(?:以上)?|百分之[一二三四五六七八九十百\d]+"),
    # a number with a unit (182cm, 1.601 km²) or a magnitude (5000万)
    "count": re.compile(rf"(?:近|约)?{_AMOUNT}(?:余|多)?(?:(?:万|千|百)?(?:余|多)?\s?(?:{_UNITS})"
                        rf"(?![a-z])|[万亿](?:余|多)?(?![元美港欧日英]))", re.I),
    "date": re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{4}年(?:\d{1,2}月)?(?:\d{1,2}日)?"
                       r"|(?:今年|去年|明年)?\d{1,2}月(?:\d{1,2}日)?"),
    "name": re.compile(r"“([^”]{2,40})”|《([^》]{1,40})》|「([^」]{1,40})」|\"([^\"]{2,40})\""),
}
# A Markdown heading on its own line (.md files, and .docx headings as loaded): it names
# a section, it does not state a fact, so it scores as a document's title line does
# ("Is there a parking space?" was answered 「## 第三条 租金」 over a lease). DRCD and
# CMRC, which the sentence scores were fitted on, hold no such line.
_HEADING = re.compile(r"#{1,6}\s[^\n]*")
_ASKED_UNIT = re.compile(rf"(?:多少|几)\s?({_UNITS})(?![a-z])", re.I)
_QTYPE: list[tuple[str, re.Pattern[str]]] = [
    ("percent", re.compile(r"比例|百分之|百分比|多少%|percent|proportion|share of", re.I)),
    ("money", re.compile(
        r"多少钱|多少资金|多少援疆资金|多少经费|(投资|资金|金额|价值|经费|花费|耗资|捐赠).{0,6}(多少|几)"
        r"|(多少|几).{0,4}(资金|投资|经费|元)|how much (money|was invested|did .* cost)"
        r"|invest|\bcost|\bworth|\bfund"
        # a price or a fee: 「售价是多少」, "what is the price"
        r"|(价格|售价|价钱|定价|票价|收费|费用).{0,4}(多少|几)|\bprices?\b|\bpriced\b|\bfees?\b",
        re.I)),
    ("date", re.compile(r"哪一年|哪年|什么时候|何时|哪天|哪一天|日期|什么时间|几月|几号"
                        r"|\bwhen\b|what year|which year|what date|\bdate\b", re.I)),
    ("count", re.compile(rf"多少|几(?:{_UNITS}|\s)|多长|多远|how many|how long|how far", re.I)),
    ("name", re.compile(r"叫什么|什么名字|名称"
                        r"|什么.{0,4}?(计划|活动|乐团|讲堂|班|称号|荣誉|奖|工程|项目|作品|机构|基地|节目|组织)"
                        r"|被评为什么|获评了?什么|评为什么|what is the name|\bcalled\b|\bnamed\b"
                        r"|what (orchestra|plan|program|title|award|honou?r)", re.I)),
]
@dataclass(frozen=True)
class FeatureParams:
    """The hand-set numbers that shape a candidate sentence's features and rule support
    (``ExtractiveAnswerer.candidates``). They were set by hand in earlier sessions while
    looking at the seed test set and CMRC trial; the fitted models read features made
    with them (bot/models/scorer.json, combiner.json), so changing any value is a new
    ``FEATURES_VERSION``, and those files refuse to load until refitted
    (``python -m train.scorer``, ``python -m train.combiner``)."""

    # share of the follow-up context's words in ``lexical`` (the question's own: the rest)
    context_share: float = 0.25
    # ``dense_rel`` is 1 at the best cosine among the candidates and falls by this much
    # per unit of cosine (0 at 0.2 below the best)
    dense_slope: float = 5.0
    # a sentence without a stored vector counts as this far below the best cosine
    dense_unseen: float = 0.2
    # ``typed`` when the question asks for a kind of value the sentence does not hold
    typed_miss: float = -0.5
    # penalties already on the score's scale: site chrome or a bare title line, and a
    # sentence adding fewer than ``echo_min_new`` characters to the question
    chrome_penalty: float = -0.3
    echo_penalty: float = -0.3
    echo_min_new: int = 4
    # rule support: words vs Han bigrams in its lexical part, and dense similarity's
    # scale and zero (the cosine at which it stops adding support; any constant works:
    # a shift here is a shift of answer.refusal_threshold, train/calibrate_refusal.py)
    support_words_share: float = 0.6
    support_dense_scale: float = 2.0
    dense_zero: float = 0.85
    # a question word found only elsewhere in the sentence's document counts this much
    surrounding_credit: float = 0.6
    # support taken away when the asked-for attribute (「X的Y是多少」's Y) is never named
    missing_attribute_penalty: float = 0.45


FEATURES = FeatureParams()
# Bump on any change to FEATURES or to how ``candidates`` computes a feature.
FEATURES_VERSION = 1
# How a candidate sentence's features add up to its score (which sentence is quoted).
# "hand": set by hand in earlier sessions while looking at the seed test set and CMRC
# trial, so figures on those two are regression checks. "learned": fitted on DRCD
# training articles and chosen on the reader's DRCD validation articles by
# `python -m train.scorer` (bot/models/scorer.json says how; the default, as on DRCD
# validation it ties with "hand" and its figures on the test sets are then estimates);
# answer.scorer picks.
# chrome and echo are penalties already on the score's scale (FEATURES, or 0).
HAND_WEIGHTS = {"lexical": 0.30, "lex_local": 0.30, "bigram": 0.10, "dense_rel": 0.20,
                "typed": 0.12, "rank_prior": 0.05, "chrome": 1.0, "echo": 1.0}
SCORE_FEATURES = tuple(HAND_WEIGHTS)
SCORER_PATH = Path(__file__).parent / "models" / "scorer.json"


def check_features_version(data: dict[str, Any], path: Path) -> None:
    """A fitted model file must say it was fitted on this ``FEATURES_VERSION``: a model
    fitted on other features would load and silently score wrong."""
    found = data.get("features_version")
    if found != FEATURES_VERSION:
        raise ValueError(f"it was fitted on sentence features version {found}, this code "
                         f"computes version {FEATURES_VERSION}; refit it")


def score_weights(kind: str, path: Path = SCORER_PATH) -> dict[str, float]:
    """The sentence-score weights for ``answer.scorer``."""
    if kind == "hand":
        return dict(HAND_WEIGHTS)
    try:
        data = json.loads(path.read_text("utf-8"))
        check_features_version(data, path)
        weights = data["weights"]
        return {k: float(weights[k]) for k in SCORE_FEATURES}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScorerError(f"Cannot load the learned sentence-score weights {path}: {exc}. "
                          "Reinstall qabot (pip install -e .) or set answer.scorer = "
                          "hand.") from exc


@dataclass
class Candidate:
    """One candidate sentence: where it is, its score (which sentence is quoted), its
    support (whether the documents speak to the question at all) and their inputs."""

    passage: int
    source: str
    start: int  # offsets in the source document
    end: int
    text: str
    score: float
    support: float
    features: dict[str, float]  # rounded, for Evidence and reports
    raw: dict[str, float]  # the score's inputs, unrounded (train/scorer.py fits on them)


def question_type(text: str) -> str | None:
    for name, pattern in _QTYPE:
        if pattern.search(text):
            return name
    return None


def score_sentences(corpus: Corpus, weights: dict[str, float], query: Query,
                    passages: Sequence[Document], qtype: str | None) -> list[Candidate]:
    """Every sentence of ``passages``, once, with its features and its score under the
    sentence-score ``weights`` (``score_weights``; train/scorer.py fits them on these
    features)."""
    f = FEATURES
    terms = corpus.segmenter.content_terms
    focus = terms(query.question)
    context = [t for t in terms(query.standalone) if t not in focus]
    idf = {t: corpus.idf(t) for t in focus + context}
    focus_bigrams = sorted(_bigrams(query.question))
    qvec = np.asarray(corpus.embeddings.embed_query(query.standalone), dtype=np.float32)

    sentences: list[tuple[int, str, int, int, str, str]] = []
    for p_index, doc in enumerate(passages):
        source = str(doc.metadata.get("source", ""))
        for span in units(doc.page_content, str(doc.metadata.get("kind", ""))):
            text = doc.page_content[span.start:span.end]
            start, end = unit_offsets(doc.metadata, span)
            sentences.append((p_index, source, start, end, text,
                              sentence_id(source, text)))
    vectors = corpus.sentence_vectors([s[5] for s in sentences])
    dense = {
        sid: float(np.dot(vec, qvec) / ((np.linalg.norm(vec) * np.linalg.norm(qvec)) or 1))
        for sid, vec in vectors.items()
    }
    top_dense = max(dense.values(), default=0.0)
    q_norm = tokens.normalize(query.question)
    q_script_cjk = tokens.is_mostly_cjk(query.question)
    # A document's title scopes every sentence in it, and the rest of its retrieved
    # text is the sentence's surroundings: "它的面积约为0.3平方公里" answers
    # "乍都节公园的面积" in the document about 乍都节公园 without naming it.
    titles: dict[str, str] = {}
    surroundings: dict[str, str] = {}
    for doc in passages:
        source = str(doc.metadata.get("source", ""))
        titles[source] = tokens.normalize(str(doc.metadata.get("title") or ""))
        surroundings[source] = " ".join(filter(None, (
            surroundings.get(source), tokens.normalize(doc.page_content))))

    seen: set[tuple[str, int, int]] = set()
    unique: list[tuple[int, str, int, int, str, str, str, str]] = []
    for sentence in sentences:
        if sentence[1:4] not in seen:  # overlapping chunks repeat sentences
            seen.add(sentence[1:4])
            norm = tokens.normalize(sentence[4])
            # a table row is read with its caption (the line that introduced it)
            caption = tokens.normalize(str(
                passages[sentence[0]].metadata.get("caption") or ""))
            unique.append((*sentence, norm,
                           norm + " \n" + titles[sentence[1]] + " \n" + caption))
    # Which of the question's words single a sentence out among the candidates: the
    # topic is in most of them, 面积 in one. idf over the corpus cannot see that;
    # idf over the candidate sentences can.
    local = _local_idf(focus, [u[7] for u in unique])
    out: list[Candidate] = []
    for p_index, source, start, end, text, sid, norm, titled in unique:
        lex_local = _coverage(focus, titled, local)
        lex_focus = _coverage(focus, titled, idf, surroundings[source])
        lex_context = _coverage(context, titled, idf) if context else 0.0
        lexical = lex_focus if not context else \
            (1 - f.context_share) * lex_focus + f.context_share * lex_context
        bigram = _coverage(focus_bigrams, titled, {}, surroundings[source])
        cos = dense.get(sid, top_dense - f.dense_unseen)
        dense_rel = max(0.0, 1.0 + f.dense_slope * (cos - top_dense))
        typed = 0.0
        if qtype:
            typed = 1.0 if typed_spans(qtype, text, q_norm) else f.typed_miss
        meta = passages[p_index].metadata
        rank_prior = 1.0 / (1 + p_index)
        # site chrome, bare title lines and section headings are findable but rarely
        # the answer
        chrome = f.chrome_penalty if meta.get("kind") in (KIND_BOILERPLATE, KIND_HEADER) \
            or _HEADING.fullmatch(text.strip()) else 0.0
        # a sentence that only repeats the question's words tells the user nothing
        new = sum(1 for ch in norm if ch.isalnum() and ch not in q_norm)
        echo = f.echo_penalty if new < f.echo_min_new else 0.0
        raw = {"lexical": lexical, "lex_local": lex_local, "bigram": bigram,
               "dense_rel": dense_rel, "typed": typed, "rank_prior": rank_prior,
               "chrome": chrome, "echo": echo}
        score = sum(weights[k] * raw[k] for k in SCORE_FEATURES)
        # absolute evidence that the documents speak to this question: words the
        # sentence and its title share with it (when the scripts match; not the
        # surroundings, which would vouch for every sentence of a long document),
        # plus dense similarity above the floor
        # "Same script" is the question's against this sentence's, not against
        # Chinese: an English question over English text has lexical evidence too.
        same_script = q_script_cjk == tokens.is_mostly_cjk(text)
        if same_script:
            words = _coverage(focus, titled, idf)
            lexical_support = (
                f.support_words_share * words
                + (1 - f.support_words_share) * _coverage(focus_bigrams, titled, {})
                if focus_bigrams else words)  # no Han bigrams in English
            support = lexical_support + f.support_dense_scale * (cos - f.dense_zero)
        else:
            support = cos
        out.append(Candidate(p_index, source, start, end, text, score, support, {
            "lexical": round(lexical, 3), "lex_local": round(lex_local, 3),
            "bigram": round(bigram, 3), "cos": round(cos, 4),
            "dense_rel": round(dense_rel, 3), "typed": typed,
            "rank_prior": round(rank_prior, 3), "chrome": chrome, "echo": echo,
            "same_script": float(same_script)}, raw))
    return out


def _coverage(terms: Sequence[str], text: str, weights: dict[str, float],
              surroundings: str = "") -> float:
    """idf-weighted share of ``terms`` in ``text``; a term found only in the text's
    surroundings (same document) counts ``FEATURES.surrounding_credit`` of its weight."""
    total = sum(weights.get(t, 1.0) for t in terms)
    if not total:
        return 0.0
    got = 0.0
    for t in terms:
        if t in text:
            got += weights.get(t, 1.0)
        elif surroundings and t in surroundings:
            got += FEATURES.surrounding_credit * weights.get(t, 1.0)
    return got / total


def _local_idf(terms: Sequence[str], texts: Sequence[str]) -> dict[str, float]:
    """BM25's idf of each term over ``texts``."""
    n = len(texts)
    weights = {}
    for t in terms:
        df = sum(1 for x in texts if t in x)
        weights[t] = float(np.log1p((n - df + 0.5) / (df + 0.5)))
    return weights


_QUESTION_CHARS = set("什么哪些谁几多少吗呢是的了在有")


def _bigrams(text: str) -> set[str]:
    chars = [c for c in tokens.normalize(text) if "\u3400" <= c <= "\u9fff"]
    return {a + b for a, b in itertools.pairwise(chars)
            if not (a in _QUESTION_CHARS and b in _QUESTION_CHARS)}


def typed_spans(qtype: str, sentence: str, question_norm: str) -> list[re.Match[str]]:
    """Spans of the wanted type that the question does not already contain; for
    「多少亩」 or "how many km" only spans in that unit."""
    unit = _ASKED_UNIT.search(question_norm) if qtype == "count" else None
    found = []
    for m in PATTERNS[qtype].finditer(sentence):
        value = _value(m)
        if not value or tokens.normalize(value) in question_norm:
            continue
        if unit and unit.group(1) not in tokens.normalize(value):
            continue
        found.append(m)
    return found


def _value(m: re.Match[str]) -> str:
    groups = [g for g in m.groups() if g]
    return groups[0] if groups else m.group(0)


def short_answer(qtype: str, sentence: str, query: Query, segmenter: tokens.Segmenter
                  ) -> str | None:
    """The span of the wanted type nearest to the question's own words in the sentence."""
    q_norm = tokens.normalize(query.question)
    found = typed_spans(qtype, sentence, q_norm)
    if not found:
        return None
    focus = segmenter.content_terms(query.question)
    terms = [(t, 1.0) for t in focus] + [
        (t, 0.5) for t in segmenter.content_terms(query.standalone) if t not in focus]
    anchors = [(w, [m.start() for m in re.finditer(re.escape(t), sentence)]) for t, w in terms]
    anchors = [(w, starts) for w, starts in anchors if starts]
    if not anchors:
        return _value(found[0])

    def distance(m: re.Match[str]) -> float:
        # every question word pulls towards the span: the answer sits among them
        return sum(w * min(min(abs(a - m.start()), abs(a - m.end())) for a in starts)
                   for w, starts in anchors)

    best = min(found, key=lambda m: (distance(m), m.start()))
    return _value(best)
