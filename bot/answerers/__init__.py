"""Which answerer answers: the one registry that config, the engine, ``qabot info`` and
``ask --json`` read.

``answer.answerer`` names an entry (``auto`` resolves to one, ``config.answerer_kind``).
Each entry says how to build its answerer over an index, the ``Mode`` its answers
carry, whether it needs the trained reader loaded, and whether it reads several forms
of a question (alone, with the previous turn's subject, as Chinese keywords:
``answering.Query``) rather than only the resolved one. The engine asks the entry, never
the answerer's class. The answerers themselves live in ``bot/answering.py`` (rules)
and ``bot/reading.py`` (guided, trained); ``bot/llm.py`` wraps any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.answers import Mode
from bot.config import Settings, answerer_kind

if TYPE_CHECKING:
    from bot.answering import Answerer
    from bot.config import AnswerSettings
    from bot.store import Index


@dataclass(frozen=True)
class AnswererKind:
    """One entry of the registry."""

    name: str
    mode: Mode
    build: Callable[[Index, AnswerSettings], Answerer]
    needs_reader: bool  # load the trained reader while the index opens
    reads_forms: bool  # reads each form of the question and picks the best reading


def _rules(index: Index, settings: AnswerSettings) -> Answerer:
    from bot.answering import ExtractiveAnswerer

    return ExtractiveAnswerer(index, settings)


def _guided(index: Index, settings: AnswerSettings) -> Answerer:
    from bot.reading import GuidedAnswerer

    return GuidedAnswerer(index, settings)


def _trained(index: Index, settings: AnswerSettings) -> Answerer:
    from bot.reading import ReaderAnswerer

    return ReaderAnswerer(index, settings)


ANSWERERS: dict[str, AnswererKind] = {
    "none": AnswererKind("none", Mode.EXTRACTIVE, _rules, needs_reader=False,
                         reads_forms=False),
    "guided": AnswererKind("guided", Mode.GUIDED, _guided, needs_reader=True,
                           reads_forms=True),
    "trained": AnswererKind("trained", Mode.READER, _trained, needs_reader=True,
                            reads_forms=True),
}


def answerer_for(settings: Settings) -> AnswererKind:
    """The registry entry ``answer.answerer`` names, ``auto`` resolved."""
    return ANSWERERS[answerer_kind(settings)]
