"""What an answer is, as data: the parts every front end renders (``bot/present.py``).

An answer leaves the engine as parts, never as pre-rendered text: an optional notice,
the short answer with the passage it came from, the quotes each with their citation
numbers, free prose (the refusal sentence, or an LLM's checked answer with its own
``[n]`` markers), the cited passages and the closest uncited ones. ``Answer.answer`` is
the plain-text rendering of those parts, for ``ask --json``, the evaluator and logs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.documents import Document


class Mode(StrEnum):
    """Which answerer produced the answer (string values: they appear in ``ask --json``,
    evaluation rows and ``qabot info``, which names the configured answerer the same
    way: ``bot.answerers.ANSWERERS``)."""

    EXTRACTIVE = "extractive"  # the rule answerer (bot/answerers/rules.py)
    GUIDED = "guided"  # rules choose the sentence, the reader the words (bot/answerers/guided.py)
    READER = "reader"  # the trained reader alone (bot/answerers/trained.py)
    LLM = "llm"  # an LLM answer that passed the citation check
    LLM_UNSUPPORTED = "llm-unsupported"  # shown with a warning (llm.unsupported = "show")
    EXTRACTIVE_FALLBACK = "extractive-fallback"  # the LLM failed or its answer was rejected


# What ``Answer.support`` measures for each mode: a number means nothing without its scale.
SUPPORT_SCALES = {
    Mode.EXTRACTIVE: "rule support: lexical coverage plus dense similarity, compared "
                     "with answer.refusal_threshold (1.0 for an answer from metadata)",
    Mode.GUIDED: "log-odds that the answer is right (refusal model, "
                 "bot/models/combiner.json); refused below its threshold",
    Mode.READER: "reader margin: best span's logit over 'not here', compared with "
                 "answer.reader_threshold",
    Mode.LLM: "support of the extractive answer the LLM was given",
    Mode.LLM_UNSUPPORTED: "support of the extractive answer the LLM was given",
    Mode.EXTRACTIVE_FALLBACK: "as extractive",
}


@dataclass(frozen=True)
class Citation:
    n: int
    source: str  # the document's key in the index (relative to a checkout, else absolute)
    chunk_id: str
    start: int
    end: int
    text: str
    score: float
    # for people: the name they know the file by (relative to the folder it was
    # ingested from), and the line it starts at where the file's lines are the text's
    shown: str = ""
    line: int | None = None
    path: str = ""  # absolute path on the machine that ingested it (JSON, for scripts)

    @property
    def label(self) -> str:
        """"docs/guide.md:42": what a person can open."""
        name = self.shown or self.source.rsplit("/", 1)[-1]
        return f"{name}:{self.line}" if self.line else name


@dataclass(frozen=True)
class Quote:
    """A passage of a document quoted as the answer, with the citations it rests on."""

    text: str
    cites: tuple[int, ...]
    # where the quoted text stands in its document (source offsets, as citations);
    # None for a quote that is no document text (an answer from metadata)
    source: str = ""
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Evidence:
    """What the answer rests on, for evaluation and diagnosis: the quoted sentence and
    its source offsets (rules), the reader's span and score, the metadata field of an
    answer about the document itself, or why the LLM's answer was not used."""

    source: str = ""
    start: int | None = None
    end: int | None = None
    text: str = ""
    features: dict[str, float] = field(default_factory=dict)  # the rule scorer's
    span_start: int | None = None  # the reader's span, source offsets
    span_end: int | None = None
    reader_score: float | None = None
    meta_field: str | None = None  # "author", "date"…: answered from document metadata
    typed_ok: bool | None = None  # a refusal: was a value of the asked type there at all
    llm_error: str | None = None  # why the LLM answer was replaced by the extractive one
    error: str | None = None  # the evaluator's record of a question that failed


@dataclass(frozen=True)
class Decision:
    """Whether the answer was given, and on what grounds: the score, what that score
    measures (``SUPPORT_SCALES``) and the threshold it was compared with (None where no
    threshold applies: an answer from metadata, an LLM's reply)."""

    refused: bool
    score: float
    scale: str
    threshold: float | None
    # a refusal's cause (``REFUSALS``); None for an answer
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"refused": self.refused, "score": round(self.score, 4), "scale": self.scale,
                "threshold": None if self.threshold is None else round(self.threshold, 4),
                "reason": self.reason}


# Why an answerer refused. A refusal is not always a low score: the documents may hold
# no value of the kind asked for, or only another table row than the one named.
BELOW_THRESHOLD = "below-threshold"
NOTHING_TO_READ = "nothing-to-read"  # no passages, or no sentence or span in them
WRONG_TYPE = "no-value-of-the-asked-type"
ANOTHER_ROW = "another-table-row"
NOT_IN_DOCUMENTS = "said-not-found"  # an LLM answered NOT_FOUND
REFUSALS = (BELOW_THRESHOLD, NOTHING_TO_READ, WRONG_TYPE, ANOTHER_ROW, NOT_IN_DOCUMENTS)


@dataclass(frozen=True)
class Answer:
    """One answer, as parts. Immutable: whoever adds to it (the engine its timings and
    subject, the session store its turn id) makes a new one (``dataclasses.replace``)."""

    question: str
    short_answer: str | None
    refused: bool
    citations: list[Citation]
    quotes: list[Quote] = field(default_factory=list)
    related: list[Citation] = field(default_factory=list)
    standalone_query: str = ""
    support: float = 0.0
    # free prose: the refusal sentence, or an LLM's checked answer with [n] markers
    text: str = ""
    # shown before everything else: the LLM was unavailable, or its answer is unchecked
    note: str = ""
    # the citation shown beside the short answer on a line of its own; None when the
    # short answer is not shown apart (the quote is the short answer, or LLM prose)
    short_cite: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    evidence: Evidence = field(default_factory=Evidence)
    turn_id: int | None = None  # set when the answer was stored as a session turn
    mode: Mode = Mode.EXTRACTIVE
    # a follow-up answered with an earlier turn's subject: that subject, shown to the
    # user ("（指：天华民乐团）") so they see why; None when the question was read alone
    assumed_subject: str | None = None
    # what this turn is about, stored with it for the next turn (bot/conversation.py)
    subject: str = ""
    # what ``support`` was compared with to answer or refuse, and why it refused
    # (``decision``)
    threshold: float | None = None
    refusal_reason: str | None = None

    @property
    def decision(self) -> Decision:
        """Why it answered or refused, on the scale of its mode."""
        return Decision(self.refused, self.support, SUPPORT_SCALES.get(self.mode, ""),
                        self.threshold, self.refusal_reason if self.refused else None)

    @property
    def headline(self) -> str | None:
        """The short answer as shown on its own line, or None."""
        if self.short_answer and self.short_cite is not None:
            return self.short_answer
        return None

    @property
    def answer(self) -> str:
        """The parts as plain text, one per line, each with its citation markers."""
        return "\n".join(part.line for part in parts(self))

    def to_dict(self) -> dict[str, Any]:
        """The ``ask --json`` shape."""
        ev = self.evidence
        return {
            "question": self.question,
            "answer": self.answer,
            "short_answer": self.short_answer,
            "refused": self.refused,
            "note": self.note or None,
            "quotes": [{"text": q.text, "cites": list(q.cites), "source": q.source or None,
                        "start": q.start, "end": q.end} for q in self.quotes],
            "citations": [asdict(c) for c in self.citations],
            "related": [asdict(c) for c in self.related],
            "standalone_query": self.standalone_query,
            "assumed_subject": self.assumed_subject,
            "support": round(self.support, 4),
            "support_scale": SUPPORT_SCALES.get(self.mode, ""),
            "decision": self.decision.to_dict(),
            "mode": str(self.mode),
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
            # the reader's span (source offsets) and score; null for other answers
            "span": ({"source": ev.source, "start": ev.span_start, "end": ev.span_end,
                      "score": ev.reader_score} if ev.span_start is not None else None),
        }


class PartKind(StrEnum):
    NOTE = "note"  # shown first: the LLM was unavailable, or its answer is unchecked
    HEADLINE = "headline"  # the short answer on a line of its own
    QUOTE = "quote"  # document text with its citation markers
    PROSE = "prose"  # the refusal sentence, or an LLM's checked answer


@dataclass(frozen=True)
class Part:
    kind: PartKind
    text: str
    cites: str = ""  # "[1][3]": the citation markers it carries

    @property
    def line(self) -> str:
        """The part as one line of plain text."""
        return f"{self.text} {self.cites}" if self.kind in (PartKind.HEADLINE,
                                                             PartKind.QUOTE) else self.text


def parts(answer: Answer) -> list[Part]:
    """What every renderer shows of an answer, in order (the terminal and Telegram in
    bot/present.py, ``Answer.answer`` for JSON, evaluation and logs)."""
    out = [Part(PartKind.NOTE, answer.note)] if answer.note else []
    if answer.headline:
        out.append(Part(PartKind.HEADLINE, answer.headline, f"[{answer.short_cite}]"))
    out += [Part(PartKind.QUOTE, q.text, marks(q.cites)) for q in answer.quotes]
    if answer.text:
        out.append(Part(PartKind.PROSE, answer.text))
    return out


def marks(cites: tuple[int, ...] | list[int]) -> str:
    """``[1][3]`` for citations 1 and 3."""
    return "".join(f"[{n}]" for n in cites)


def citation_of(n: int, doc: Document) -> Citation:
    """Passage ``doc`` as citation number ``n``."""
    m = doc.metadata
    source = str(m.get("source", ""))
    return Citation(n=n, source=source, chunk_id=str(m.get("chunk_id", doc.id)),
                    start=int(m.get("start", 0)), end=int(m.get("end", 0)),
                    text=doc.page_content, score=float(m.get("score", 0.0)),
                    shown=str(m.get("shown") or source.rsplit("/", 1)[-1]),
                    line=int(m["line"]) if m.get("lines") and m.get("line") else None,
                    path=str(m.get("path") or ""))
