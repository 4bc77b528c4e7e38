"""The one answer path every front end calls: ``Engine.answer(question, session=...)``.

Internally it is a LangChain Runnable, ``prepare | {passages: retriever, query} |
answerer``, so an LLM answerer can replace the extractive one without touching the
CLI, Telegram or the evaluator.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from bot.answering import Answer, Answerer, ExtractiveAnswerer, Query
from bot.config import Settings
from bot.embeddings import QabotEmbeddings, make_embeddings
from bot.errors import QuestionError
from bot.reading import ReaderAnswerer
from bot.retrieval import HybridRetriever
from bot.sessions import SessionStore, Turn, contextual_query, standalone_query
from bot.store import Index

_WORD = re.compile(r"[^\W_]")  # a letter or digit of any script (CJK included)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stats:
    documents: int
    chunks: int
    embedder: str
    built_at: str
    sources: list[str]


class Engine:
    """Opened index + retriever + answerer + sessions. Build once, ask many times."""

    def __init__(self, settings: Settings, *, embeddings: QabotEmbeddings | None = None,
                 sessions: SessionStore | None = None) -> None:
        started = time.perf_counter()
        self.settings = settings
        self.embeddings = embeddings or make_embeddings(settings.embeddings)
        self.index = Index.open(settings, self.embeddings)
        self.retriever = HybridRetriever(index=self.index, settings=settings.retrieval)
        self.answerer: Answerer = (
            ReaderAnswerer(self.index, settings.answer) if settings.answer.reader == "trained"
            else ExtractiveAnswerer(self.index, settings.answer))
        self.llm = None
        if settings.llm.provider != "none":
            from bot.llm import LLMAnswerer  # langchain-openai/-ollama only when configured

            self.llm = LLMAnswerer(settings, self.answerer)
        final = self.llm or self.answerer
        self.sessions = sessions or SessionStore(settings.sessions_path)
        # retriever | answerer, with a clock read between the two for timings_ms; the
        # input is {"query": Query, "on_token": callback or None}
        self.chain: Runnable[dict[str, Any], dict[str, Any]] = (
            RunnablePassthrough.assign(
                passages=RunnableLambda(lambda d: d["query"].standalone) | self.retriever,
                context_passages=RunnableLambda(self._context_passages))
            | RunnableLambda(lambda d: {**d, "retrieved_at": time.perf_counter()})
            | RunnableLambda(lambda d: {**d, "answer": final(d)})
        )
        self.load_ms = (time.perf_counter() - started) * 1000

    def answer(self, question: str, *, session: str | None = None,
               history: list[str] | None = None,
               on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer one question; with ``session`` the chat's history shapes retrieval
        and the turn is stored. ``history`` (earlier questions) serves stateless callers
        such as the evaluator. ``on_token`` receives an LLM answer as it streams."""
        question = self.check_question(question)
        t0 = time.perf_counter()
        turns = self._history(session, history)
        standalone = (self.llm.rewrite(question, turns) if self.llm else None) \
            or standalone_query(question, turns, self.index.segmenter)
        contextual = (contextual_query(question, turns, self.index.segmenter)
                      if isinstance(self.answerer, ReaderAnswerer) and self.llm is None
                      and standalone == question else None)
        query = Query(question=question, standalone=standalone, contextual=contextual)
        if query.standalone != question:
            log.info("follow-up rewritten for retrieval: %r", query.standalone)
        t1 = time.perf_counter()
        out = self.chain.invoke({"query": query, "on_token": on_token})
        result: Answer = out["answer"]
        t2, t3 = out["retrieved_at"], time.perf_counter()
        result.timings_ms = {"rewrite": (t1 - t0) * 1000, "retrieve": (t2 - t1) * 1000,
                             "answer": (t3 - t2) * 1000, "total": (t3 - t0) * 1000}
        if session is not None:
            result.turn_id = self.sessions.append(session, Turn(
                question=question, standalone=result.standalone_query or query.standalone,
                answer=result.answer,
                citations=[c.__dict__ for c in result.citations]))
        return result

    def _context_passages(self, inputs: dict[str, Any]) -> list[Any]:
        contextual = inputs["query"].contextual
        return self.retriever.invoke(contextual) if contextual else []

    def check_question(self, question: str) -> str:
        text = (question or "").strip()
        if not text:
            raise QuestionError("The question is empty. Type a question about your documents.")
        if not _WORD.search(text):  # 「？？？」, 😀😀😀: nothing to search for
            raise QuestionError("Please ask a question in words — I can't read emoji or "
                                "symbols alone.")
        limit = self.settings.answer.max_question_chars
        if len(text) > limit:
            raise QuestionError(f"The question is {len(text)} characters long; the limit is "
                                f"{limit}. Ask something shorter (or raise "
                                "answer.max_question_chars).")
        return text

    def reset(self, session: str) -> int:
        return self.sessions.reset(session)

    def last_turn(self, session: str) -> Turn | None:
        return self.sessions.last(session)

    def stats(self) -> Stats:
        m: dict[str, Any] = self.index.manifest
        return Stats(documents=self.index.document_count, chunks=self.index.chunk_count,
                     embedder=str(m.get("embedder")), built_at=str(m.get("built_at", "?")),
                     sources=sorted(m.get("files", {})))

    def document_titles(self) -> list[str]:
        """Each document's title (or its source name when it has none)."""
        files: dict[str, Any] = self.index.manifest.get("files", {})
        return [str(entry.get("meta", {}).get("title") or source)
                for source, entry in sorted(files.items())]

    def _history(self, session: str | None, history: list[str] | None) -> list[Turn]:
        if history:
            turns: list[Turn] = []
            for q in history:  # replay: each earlier question made standalone in turn
                turns.append(Turn(q, standalone_query(q, turns, self.index.segmenter), ""))
            return turns
        if session is None:
            return []
        return self.sessions.history(session, self.settings.session.history_turns)
