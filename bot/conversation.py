"""Follow-up questions: what an earlier turn was about, and whether a question leans on it.

A chat turn such as 「他们学的是什么乐器?」 says nothing about *who* "they" are. Each
turn records its **subject**: a self-contained question's own topic (its words without
the interrogatives and pronouns), or, for a follow-up, the subject it inherited. A
follow-up is resolved against the previous turn's subject, never against an already
expanded query, so expansions cannot pile up over a conversation.

Whether a question is a follow-up is a learned decision (``FollowupModel``,
``bot/models/followup.json``, written by ``python -m train.followup``): a logistic
model over ``FOLLOWUP_FEATURES`` of the question and the previous turn, fitted on
conversations built from CMRC 2018 train and DRCD (consecutive questions about one
article with its subject replaced by a pronoun or dropped, beside questions that name
their own subject, switch article, or switch language). Its probability is a prior:
answerers that read both forms of the question (alone, and with the subject) add its
log-odds to the contextual reading's score, so a follow-up that reads better alone is
still answered alone; the others take the resolved form when it is above one half.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from bot import tokens
from bot.errors import ReaderError

FOLLOWUP_PATH = Path(__file__).parent / "models" / "followup.json"
# What the follow-up model sees of (question, previous turn); the order is the file's.
FOLLOWUP_FEATURES = ("pronoun_zh", "pronoun_en", "ellipsis", "script_switch", "specific",
                     "named", "repeats", "length", "bare_start", "quoted")
# Cap on a subject's length in characters: one question's topic, never a paragraph.
SUBJECT_CHARS = 40

_ANAPHORA_ZH = re.compile(
    r"(它们|它|他们|她们|他|她|其|该|此|这个|那个|这些|那些|这项|那项|上述|这里|那里|这一|那一|这家|那家"
    r"|这位|那位|这所|那所)")
_ANAPHORA_EN = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|him)\b", re.I)
_ELLIPSIS = re.compile(r"^\s*(那么?|还有|and\b|what about|how about|and what)|呢\s*[?？]?\s*$",
                       re.I)
_INTERROGATIVE = re.compile(
    r"(是什么|是谁|是哪[个些位家所年天]?|有哪些|有多少|多少[钱个名人项次场所]*|几[个名次场所项]?"
    r"|什么时候|哪一年|哪年|哪天|在哪里|在哪儿|哪里|哪儿|什么|怎么样|如何|为什么|吗|呢|请问|哪几个|哪些|谁)"
)
_BARE_START = re.compile(r"^\s*(那么?|还有)?\s*(是|在|有|哪|什么|何|为什么|多少|几|怎|被|于|由|的)")
_EN_FUNCTION = re.compile(
    r"\b(what|when|where|who|whom|whose|which|why|how|is|was|were|are|be|been|did|does|do"
    r"|the|a|an|of|for|to|in|on|at|by|with|and|or|many|much|about|there|any|can|could"
    r"|should|would|will|i|you|we|me|my|your)\b", re.I)
_WORD_EN = re.compile(r"[A-Za-z][\w-]*")
_CODE = re.compile(r"[a-z]+\d+[a-z\d]*")  # "e14", "r5": a code, not a word
_QUOTES = "“”\"《》「」『』"


def _names_proper_noun(question: str) -> bool:
    """A capitalised Latin word other than the first ("When was Huocheng …", "NBA")."""
    words = _WORD_EN.findall(question)
    return any(w[0].isupper() for w in words[1:]) or any(
        len(w) > 1 and w.isupper() for w in words[:1])


# jieba's part-of-speech tags of proper names: person, place, organisation, other
_PROPER_TAGS = frozenset(("nr", "nrt", "ns", "nt", "nz"))


def names_own_subject(question: str, segmenter: tokens.Segmenter = tokens.FULL) -> bool:
    """Whether ``question`` names what it is about and points back at nothing: a proper
    name (「霍城县」, "Huocheng") and no pronoun or ellipsis. Such a question starts
    fresh (#30): its reading with the earlier subject is not made."""
    if _ANAPHORA_ZH.search(question) or _ANAPHORA_EN.search(question) \
            or _ELLIPSIS.search(question.strip()):
        return False
    return _names_proper_noun(question) or any(
        tag in _PROPER_TAGS and len(word) >= 2 for word, tag in segmenter.tagged(question))


class Previous(Protocol):
    """What resolution needs of an earlier turn (``bot.sessions.Turn`` has it)."""

    @property
    def question(self) -> str: ...
    @property
    def subject(self) -> str: ...


def topic_of(question: str) -> str:
    """The question without its interrogative words or pronouns: what it asks about."""
    core = _INTERROGATIVE.sub(" ", question)
    core = _ANAPHORA_ZH.sub(" ", core)
    core = _ANAPHORA_EN.sub(" ", core)
    core = _EN_FUNCTION.sub(" ", core)
    core = re.sub(r"[?？!！。,，;；:：\s]+", " ", core).strip()
    return core[:SUBJECT_CHARS].strip()


_NOUN_TAGS = {"n", "nr", "ns", "nt", "nz", "ng", "nrt", "nrfg", "eng", "j", "an", "l"}
# words for the document itself ("文章提到了哪几个组团?"): never what a question is about
_THE_DOCUMENT = re.compile(r"文章|本文|报道|文档|文件|原文|材料")
_ORDINAL = re.compile(r"[\d０-９首第一二三四五六七八九十百两]")


def subject_of(question: str, segmenter: tokens.Segmenter = tokens.FULL) -> str:
    """What a self-contained question is about: its longest noun phrase
    (「天华民乐团」, 「霍城县江苏医院综合病房大楼」), or the question's topic when it has
    none. Latin script: its content words ("blood test Harbour Street Clinic"), since
    without a part-of-speech model for English the names alone lose what was asked
    about them."""
    if not tokens.is_mostly_cjk(question):
        return topic_of(question)
    best, best_weight = "", 0
    run: list[tuple[str, bool]] = []  # (word, is a noun)

    def close() -> None:
        nonlocal best, best_weight
        while run and not run[-1][1]:  # a phrase ends on its noun
            run.pop()
        weight = sum(len(w) for w, noun in run if noun)
        if weight > best_weight and weight >= 2:
            best, best_weight = "".join(w for w, _ in run), weight
        run.clear()

    for word, tag in segmenter.tagged(question):
        if _INTERROGATIVE.fullmatch(word) or _ANAPHORA_ZH.fullmatch(word) \
                or _THE_DOCUMENT.fullmatch(word):
            close()
        elif tag in _NOUN_TAGS:
            run.append((word, True))
        elif (run and (tag == "vn" or word in "·-")) or tag == "b" or (
                tag == "m" and _ORDINAL.search(word)):
            run.append((word, False))  # inside a name (综合, ·) or before its noun (首批)
        else:
            close()
    close()
    return best[:SUBJECT_CHARS] or topic_of(question)


def followup_features(question: str, previous_question: str, previous_subject: str,
                      segmenter: tokens.Segmenter = tokens.FULL) -> dict[str, float]:
    """``FOLLOWUP_FEATURES`` of ``question`` asked after ``previous_question`` (whose
    subject is ``previous_subject``)."""
    subject_norm = tokens.normalize(previous_subject)
    terms = segmenter.content_terms(question)
    specific = [t for t in terms if (len(t) >= 3 or any(ch.isdigit() for ch in t))
                and t not in subject_norm]
    subject_terms = [t for t in segmenter.content_terms(previous_subject) if len(t) >= 2]
    q_norm = tokens.normalize(question)
    repeats = (sum(1 for t in subject_terms if t in q_norm) / len(subject_terms)
               if subject_terms else 0.0)
    letters = re.sub(r"\W", "", question)
    return {
        "pronoun_zh": float(bool(_ANAPHORA_ZH.search(question))),
        "pronoun_en": float(bool(_ANAPHORA_EN.search(question))),
        "ellipsis": float(bool(_ELLIPSIS.search(question.strip()))),
        "script_switch": float(tokens.is_mostly_cjk(question)
                               != tokens.is_mostly_cjk(previous_question)),
        "specific": min(len(specific), 3) / 3,
        "named": float(_names_proper_noun(question)),
        "repeats": repeats,
        "length": min(len(letters) / 30, 1.0),
        "bare_start": float(bool(_BARE_START.search(question))),
        "quoted": float(any(q in question for q in _QUOTES)),
    }


@dataclass(frozen=True)
class FollowupModel:
    """P(follow-up) = sigmoid(bias + weights . features); see ``bot/models/followup.json``
    for the data that fitted and chose it."""

    weights: dict[str, float]
    bias: float

    def log_odds(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * features[f] for f, w in self.weights.items())


def load_followup(path: Path = FOLLOWUP_PATH) -> FollowupModel:
    try:
        d = json.loads(path.read_text("utf-8"))
        if list(d["features"]) != list(FOLLOWUP_FEATURES):
            raise ValueError(f"it was fitted on features {d['features']}, this version "
                             f"computes {list(FOLLOWUP_FEATURES)}")
        return FollowupModel({f: float(d["weights"][f]) for f in FOLLOWUP_FEATURES},
                             float(d["bias"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReaderError(f"Cannot load the follow-up model {path}: {exc}. Reinstall "
                          "qabot (pip install -e .), or refit it: python -m "
                          "train.followup.") from exc


_model: list[FollowupModel] = []


def followup_model() -> FollowupModel:
    """The packaged model, loaded once per process."""
    if not _model:
        _model.append(load_followup())
    return _model[0]


@dataclass(frozen=True)
class Resolution:
    """How one question relates to the chat before it."""

    question: str
    assumed: str | None  # the earlier subject the question may lean on (None: no history)
    log_odds: float  # of "it leans on ``assumed``"; -inf without history
    # an elliptical follow-up (「那第二个呢?」, "And for coffee?") also carries what the
    # previous question asked (its own words, never an expanded query)
    asked_before: str = ""
    previous: str = ""  # the earlier question as asked (for an English ellipsis)
    segmenter: tokens.Segmenter = field(default=tokens.FULL, repr=False, compare=False)

    @cached_property
    def own(self) -> str:
        """The question's own subject (computed when asked for: tagging costs a
        dictionary load the first time, which a one-shot question never pays)."""
        return subject_of(self.question, self.segmenter)

    @property
    def followup(self) -> bool:
        return self.assumed is not None and self.log_odds > 0

    @property
    def added(self) -> str | None:
        """What ``resolved`` adds to the question, as the answer names it
        (「（指：…）」): the earlier subject, or for an ellipsis that moved on to a new
        one, what the earlier question asked (「总投资」)."""
        if self.assumed is None:
            return None
        if self._moved_on():
            return self._carried() or None
        return self.assumed

    @property
    def resolved(self) -> str | None:
        """The question with the earlier subject, or None when there is none to add."""
        if self.assumed is None:
            return None
        if self._substituted:  # "And the Green setting?": the earlier question about it
            return self._substituted
        if self._moved_on():  # 「那X呢?」 about a new X: what was asked, of X
            return f"{self._carried()} {self.question}".strip()
        extra = self.asked_before if self.asked_before and \
            tokens.normalize(self.asked_before) not in tokens.normalize(self.assumed) else ""
        return " ".join(x for x in (self.assumed, extra, self.question) if x)

    @property
    def subject(self) -> str:
        """This turn's subject, as the model decides: a follow-up keeps the subject it
        leans on (「它被评为什么?」 is still about it), so the next turn resolves against
        one question's subject, never a growing chain; an ellipsis that names a new one
        (「那朝南社区基层阵地项目的总投资呢?」) moves on to it."""
        if self.followup and self.assumed:
            return self._moved_on() or self.assumed
        return self.own or self.assumed or ""

    def _carried(self) -> str:
        """What the earlier question asked, without its subject (「总投资」)."""
        if self._substituted:  # English: the earlier question's topic, less the new one
            own = {w.lower() for w in _WORD_EN.findall(self.own)}
            return " ".join(w for w in _WORD_EN.findall(topic_of(self._substituted))
                            if w.lower() not in own)
        return self.asked_before.replace(self.assumed or "", " ").strip()

    def _moved_on(self) -> str:
        """An elliptical follow-up's own subject, when it names one of its own."""
        if self._substituted:
            return self.own
        if not self.asked_before or self.own == topic_of(self.question):
            return ""  # not an ellipsis, or no noun phrase of its own
        return self.own

    @cached_property
    def _substituted(self) -> str:
        """An English ellipsis ("And the Green setting?", "What about E22?") put into
        the earlier question in place of the phrase it parallels: the words around the
        head noun they share ("Oolong setting" → "Green setting"), or a code of the same
        shape ("E14" → "E22"). Empty when nothing lines up, or for Chinese (whose
        ellipses carry the earlier question's words instead, ``_carried``)."""
        if not self.asked_before or not self.previous or tokens.is_mostly_cjk(self.question):
            return ""
        new = _WORD_EN.findall(self.own)
        if not new or len(new) > 4:
            return ""
        before = self.previous
        words = list(_WORD_EN.finditer(before))
        head = new[-1].lower()
        for i, m in enumerate(words):
            word = m.group().lower()
            if word == head:  # the head and as many modifiers as the new phrase has
                first = i
                while first > 0 and i - first < len(new) - 1 and \
                        not _EN_FUNCTION.fullmatch(words[first - 1].group()):
                    first -= 1
            elif len(new) == 1 and _CODE.fullmatch(head) and _CODE.fullmatch(word):
                first = i  # "E22" for "E14"
            else:
                continue
            start, end = words[first].start(), m.end()
            if before[start:end].lower() == self.own.lower():
                return ""  # the same phrase: not a new subject
            return f"{before[:start]}{self.own}{before[end:]}"
        # "What about an X-ray?" after "How long does it take?": in the pronoun's place
        pronoun = _ANAPHORA_EN.search(before)
        if pronoun and pronoun.group().lower() in ("it", "they", "this", "that", "these",
                                                   "those"):
            return f"{before[:pronoun.start()]}{self.own}{before[pronoun.end():]}"
        # "And an ECG?" after "How much is a blood test?": the earlier question names one
        # thing only (one run of content words), so that is what the new one replaces;
        # with several ("the author of Tintin in America") which one is unknown
        runs: list[tuple[int, int]] = []
        for m in words:
            if _EN_FUNCTION.fullmatch(m.group()):
                continue
            if runs and before[runs[-1][1]:m.start()].strip() == "":
                runs[-1] = (runs[-1][0], m.end())
            else:
                runs.append((m.start(), m.end()))
        if len(runs) == 1:
            start, end = runs[0]
            return f"{before[:start]}{self.own}{before[end:]}"
        return ""

    def subject_after(self, assumed_used: bool, refused: bool) -> str:
        """This turn's subject once answered: the earlier subject when the answer used
        it, the question's own when it was answered alone, the model's decision when
        nothing was answered."""
        if refused:
            return self.subject
        if assumed_used and self.assumed:
            return self._moved_on() or self.assumed
        return self.own or self.assumed or ""


def resolve(question: str, history: Sequence[Previous],
            segmenter: tokens.Segmenter = tokens.FULL,
            model: FollowupModel | None = None) -> Resolution:
    """Relate ``question`` to the latest of ``history`` (oldest first)."""
    if not history:
        return Resolution(question, None, -math.inf, segmenter=segmenter)
    previous = history[-1]
    before = previous.subject or subject_of(previous.question, segmenter)
    if not before or tokens.normalize(before) in tokens.normalize(question):
        # nothing to add: the question already names it
        return Resolution(question, None, -math.inf, segmenter=segmenter)
    if names_own_subject(question, segmenter):
        # self-contained: 「霍城县的总人口是多少?」 after two questions about a hospital
        # in 霍城县 is about the county, not the hospital
        return Resolution(question, None, -math.inf, segmenter=segmenter)
    model = model or followup_model()
    features = followup_features(question, previous.question, before, segmenter)
    asked = topic_of(previous.question) if features["ellipsis"] else ""
    return Resolution(question, before, model.log_odds(features), asked,
                      previous.question if asked else "", segmenter)


def replay(questions: Sequence[str], segmenter: tokens.Segmenter = tokens.FULL,
           model: FollowupModel | None = None) -> list[Resolution]:
    """Resolve a conversation's questions in turn (the evaluator's ``history``)."""

    @dataclass(frozen=True)
    class _Asked:
        question: str
        subject: str

    out: list[Resolution] = []
    asked: list[_Asked] = []
    for q in questions:
        res = resolve(q, asked, segmenter, model)
        out.append(res)
        asked.append(_Asked(q, res.subject))
    return out
