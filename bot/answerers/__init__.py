"""Which answerer answers: the one registry that config, the engine, ``qabot info`` and
``ask --json`` read.

``answer.answerer`` names an entry (``auto`` resolves to one, ``config.answerer_kind``).
Each entry says how to build its answerer over an index, the ``Mode`` its answers
carry, whether it needs the trained reader loaded, and whether it reads several forms
of a question (alone, with the previous turn's subject, as Chinese keywords:
``contract.Query``) rather than only the resolved one. The engine asks the entry, never
the answerer's class.

One module per answerer, each against the contract in ``contract.py`` (a ``Query`` and
the passages in, an ``Answer`` out, the index seen through a ``Corpus``):
``rules.py`` (``none``), ``trained.py``, ``guided.py``; ``metadata.py`` answers
questions about the document itself for all of them, and ``llm.py`` wraps any of them
when ``llm.provider`` is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.answers import Mode
from bot.settings import GUIDED_EMBEDDER, Settings, answerer_kind

if TYPE_CHECKING:
    from bot.answerers.contract import Answerer, Corpus
    from bot.settings import AnswerSettings


@dataclass(frozen=True)
class AnswererKind:
    """One entry of the registry."""

    name: str
    mode: Mode
    build: Callable[[Corpus, AnswerSettings], Answerer]
    needs_reader: bool  # load the trained reader while the index opens
    reads_forms: bool  # reads each form of the question and picks the best reading
    # the embedder its learned parts were fitted with (they read its similarities);
    # None: any embedder
    embedder: str | None = None


def _rules(corpus: Corpus, settings: AnswerSettings) -> Answerer:
    from bot.answerers.rules import ExtractiveAnswerer

    return ExtractiveAnswerer(corpus, settings)


def _guided(corpus: Corpus, settings: AnswerSettings) -> Answerer:
    from bot.answerers.guided import GuidedAnswerer

    return GuidedAnswerer(corpus, settings)


def _trained(corpus: Corpus, settings: AnswerSettings) -> Answerer:
    from bot.answerers.trained import ReaderAnswerer

    return ReaderAnswerer(corpus, settings)


ANSWERERS: dict[str, AnswererKind] = {
    "none": AnswererKind("none", Mode.EXTRACTIVE, _rules, needs_reader=False,
                         reads_forms=False),
    "guided": AnswererKind("guided", Mode.GUIDED, _guided, needs_reader=True,
                           reads_forms=True, embedder=GUIDED_EMBEDDER),
    "trained": AnswererKind("trained", Mode.READER, _trained, needs_reader=True,
                            reads_forms=True),
}


def answerer_for(settings: Settings) -> AnswererKind:
    """The registry entry ``answer.answerer`` names, ``auto`` resolved."""
    return ANSWERERS[answerer_kind(settings)]
