"""The answerer contract: what an answerer is given and what it must provide.

An answerer turns a ``Query`` (the user's words and the forms retrieval used) and the
retrieved passages into an ``Answer`` (bot/answers.py). What it needs of the index
beyond the passages, it asks of a ``Corpus``: term statistics, the segmenter, the
stored sentence vectors and a chunk lookup. ``bot.store.Index`` is one; an in-memory
corpus (``fakes.corpus``) is another, so answerers are tested without Chroma.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.documents import Document

    from bot.answers import Answer
    from bot.tokens import Segmenter


@dataclass(frozen=True)
class Query:
    """What the answerer is asked: the user's words and the query retrieval used."""

    question: str
    standalone: str
    # the question with the previous turn's subject, when it may be a follow-up; an
    # answerer that reads several forms (the registry's ``reads_forms``) adds ``prior``
    # (the follow-up model's log-odds, bot/conversation.py) to this form's score
    contextual: str | None = None
    prior: float = 0.0
    assumed: str | None = None  # the earlier subject in ``contextual`` (or ``standalone``)
    # the question's keyword form in the documents' other language (English <-> Chinese),
    # and its contextual one (bot/bridge.py)
    bridged: str | None = None
    bridged_contextual: str | None = None
    # the previous turn's short answer, when this may be a follow-up: one that asks for
    # a value of the same kind again (a date after a date) asks for another one
    said_before: str | None = None
    # the previous question as asked, when this one is an ellipsis of it (「那X呢?」,
    # "And …?"): it asks for the same kind of thing
    ellipsis_of: str | None = None

    @property
    def bridged_forms(self) -> tuple[str, ...]:
        return tuple(f for f in (self.bridged, self.bridged_contextual) if f)

    def leans_on_context(self, form: str) -> bool:
        """Whether ``form`` (one the answerer read) carries the earlier subject."""
        return form in (self.contextual, self.bridged_contextual)


class Answerer(Protocol):
    """What the engine and the LLM wrapper need of an answerer."""

    def __call__(self, inputs: dict[str, Any]) -> Answer: ...

    def answer(self, query: Query, passages: Sequence[Document]) -> Answer: ...

    def refusal(self, query: Query, passages: Sequence[Document]) -> Answer: ...


class QueryEmbedder(Protocol):
    def embed_query(self, text: str) -> list[float]: ...


class Corpus(Protocol):
    """What answerers read from the documents besides the retrieved passages."""

    @property
    def segmenter(self) -> Segmenter:
        """Question segmentation with the corpus vocabulary."""
        ...

    @property
    def embeddings(self) -> QueryEmbedder:
        """The embedder the sentence vectors were made with."""
        ...

    def idf(self, term: str) -> float:
        """How rare ``term`` is among the chunks (unseen terms: the maximum)."""
        ...

    def sentence_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those of ``ids`` (``chunking.sentence_id``) it has."""
        ...

    def find_chunk(self, source: str, contains: str) -> Document | None:
        """The first chunk of ``source`` whose text holds ``contains``."""
        ...
