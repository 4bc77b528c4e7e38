"""How long a headline should be: costs on the reader's span choice, learned per kind
of question.

The reader was trained on DRCD, whose answers are short ("英格兰"); CMRC 2018's
annotators mark the whole answer ("英格兰、苏格兰、威尔斯与北爱尔兰", "在2004年9月",
"因伤"), and on held-out CMRC train articles 42 % of the answered questions had a
headline inside the gold answer, too short (docs/benchmarks.md). Retraining the reader
on CMRC taught it that convention but cost it the answer sentence (contains-gold -4
points). Two costs added to the span scores move only the headline's edges:
``start[i] + end[j] + bias * (j - i) - clause_cost * (clause ends inside the span)``,
a bias per token that lengthens spans and a cost per comma or full stop they run over,
which keeps them inside their clause. The margin every decision reads stays the
unbiased one (``Reader.read_around``).

``train/span_length.py`` fits both per ``bucket`` of question on CMRC 2018 train
articles outside the held-out titles, chooses among variants on the held-out titles and
writes ``bot/models/spans.json`` with its provenance. Only questions read in Chinese get
them: there is no English data here to fit them on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from bot.answer_types import asked_kind
from bot.errors import ReaderError
from bot.features import question_type

SPANS_PATH = Path(__file__).parent / "models" / "spans.json"
SPANS_VERSION = 1  # bump when ``bucket`` changes: the file's biases are per bucket

_CJK = re.compile(r"[\u4e00-\u9fff]")
# What a question asks when it is none of the typed kinds: a reason, a manner, a
# person, or anything else. These words only split the data the biases are fitted on.
# (「被确定为什么」 asks what it was made, not why: 为 ends a verb there)
_WHY = re.compile(r"(?<![成作称定视认改名列评选])为什么|为何|原因|何故|\bwhy\b", re.I)
_HOW = re.compile(r"怎样|如何|怎么|什么样|哪种方式|\bhow\b", re.I)
_WHO = re.compile(r"谁|哪位|哪一位|什么人|\bwho\b", re.I)
OTHER = "what"
# A bucket with too little data to fit takes its nearest one's costs: an amount, a
# share, a weight or a span of time is a number with its unit, as a count is; any
# other takes the plain "what" bucket's.
NEAREST = {"money": "count", "percent": "count", "weight": "count", "duration": "count"}


def fitted_bucket(kind: str, fitted: Collection[str]) -> str:
    """The bucket whose costs a question of bucket ``kind`` takes, of those ``fitted``."""
    if kind in fitted:
        return kind
    near = NEAREST.get(kind, OTHER)
    return near if near in fitted else OTHER


def bucket(question: str) -> str:
    """The kind of question whose headlines share one length bias: the answer-type
    check's kind (date, count, money, list, place, …), "name", "why", "how", "who" or
    "what"."""
    base = question_type(question)
    # the type check's finer kind keeps the bucket spans.json was fitted on: a count of
    # named things is a count
    kind = asked_kind(question, base)
    kind = "count" if kind == "tally" else kind
    if kind is not None:
        return kind
    if base == "name":
        return "name"
    for name, pattern in (("why", _WHY), ("how", _HOW), ("who", _WHO)):
        if pattern.search(question):
            return name
    return OTHER


@dataclass(frozen=True)
class SpanLengths:
    """The fitted costs (bot/models/spans.json), by ``bucket``: a bias per token of
    span length, and a cost per clause end (a comma, a full stop) the span runs over."""

    bias: dict[str, float]
    clause_cost: dict[str, float] = field(default_factory=dict)
    # the buckets whose edges the headline branch places (train/headline_layer.py chose
    # them; their costs were fitted on its logits); a reader graph without the branch
    # places them with its own head
    headline: frozenset[str] = frozenset()

    def reads_headline(self, asked: str, form: str, like: str | None = None) -> bool:
        """Whether the question ``asked``, read in ``form``, takes its edges from the
        headline branch: its bucket (as ``costs_for`` finds it) is one of ``headline``.
        The branch learned CMRC's Chinese; a form without Chinese keeps the reader's own
        edges, as it keeps no costs."""
        return bool(_CJK.search(form)) and self._kind(asked, form, like) in self.headline

    def costs_for(self, asked: str, form: str, like: str | None = None
                  ) -> tuple[float, float]:
        """(length bias, clause cost) for the question ``asked`` read in ``form``
        (itself, with the previous turn's subject, or keywords in another language):
        its bucket's, the form's when the question alone is a plain "what" (as the
        answer-type check reads it), or that of the question it is an ellipsis ``like``
        (「部门对口交流呢?」 after 「两地党政代表团互访了几次?」 asks for a count); its
        nearest fitted bucket's when its own had too little data (``fitted_bucket``);
        none when the form read has no Chinese."""
        if not _CJK.search(form):
            return 0.0, 0.0
        kind = self._kind(asked, form, like)
        return self.bias.get(kind, 0.0), self.clause_cost.get(kind, 0.0)

    def _kind(self, asked: str, form: str, like: str | None) -> str:
        kind = bucket(asked)
        if kind == OTHER:  # the kind may be in the form it is read in
            kind = bucket(form)
        if kind == OTHER and like:
            kind = bucket(like)
        return fitted_bucket(kind, self.bias)


NO_BIAS = SpanLengths({})  # the reader's own convention (answer.fitted_span_length off)


def load_span_lengths(path: Path = SPANS_PATH) -> SpanLengths:
    try:
        d = json.loads(path.read_text("utf-8"))
        if d.get("version") != SPANS_VERSION:
            raise ValueError(f"version {d.get('version')}, this qabot reads "
                             f"{SPANS_VERSION}: refit with python -m train.span_length")
        bias = {str(k): float(v) for k, v in d["bias"].items()}
        cost = {str(k): float(v) for k, v in d.get("clause_cost", {}).items()}
        headline = frozenset(str(k) for k in d.get("headline", []))
        if not headline <= set(bias):
            raise ValueError(f"the headline buckets {sorted(headline - set(bias))} have no "
                             "costs")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReaderError(f"Cannot load the headline length biases {path}: {exc}. "
                          "Reinstall qabot (pip install -e .) or set "
                          "answer.fitted_span_length = false.") from exc
    if not all(math.isfinite(v) for v in (*bias.values(), *cost.values())):
        raise ReaderError(f"{path} holds a cost that is not a number. Reinstall qabot or "
                          "set answer.fitted_span_length = false.")
    return SpanLengths(bias, cost, headline)
