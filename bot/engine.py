"""The one answer path every front end calls: ``Engine.answer(question, session=...)``.

Internally it is a LangChain Runnable, ``prepare | {passages: retriever, query} |
answerer``, so an LLM answerer can replace the extractive one without touching the
CLI, Telegram or the evaluator.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from bot import tokens
from bot.answerers import AnswererKind, answerer_for
from bot.answerers.contract import Answerer, Query
from bot.answers import Answer
from bot.bridge import glossary_for
from bot.config import Settings
from bot.conversation import Resolution, replay, resolve
from bot.embeddings import QabotEmbeddings, make_embeddings
from bot.errors import IndexError_, QabotError, QuestionError
from bot.ingest import IngestReport
from bot.reader import preload_reader
from bot.retrieval import HybridRetriever
from bot.sessions import SessionBackend, Turn, open_sessions
from bot.store import Index

# asked once by ``warm_up``; any question works, one in each script loads both paths
WARM_UP_QUESTION = "What is this about? 这是关于什么的?"
_WORD = re.compile(r"[^\W_]")  # a letter or digit of any script (CJK included)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stats:
    documents: int
    chunks: int
    embedder: str
    built_at: str
    sources: list[str]


@dataclass(frozen=True)
class DocumentInfo:
    source: str
    title: str
    chunks: int


@dataclass(frozen=True)
class _Pipeline:
    """Everything that reads one build of the index; replaced whole when a new build
    goes live, so a question in flight finishes on the build it started with."""

    index: Index
    retriever: HybridRetriever
    answerer: Answerer
    kind: AnswererKind  # its registry entry (bot/answerers)
    llm: Any  # LLMAnswerer or None
    chain: Runnable[dict[str, Any], dict[str, Any]]


class Engine:
    """Opened index + retriever + answerer + sessions. Build once, ask many times.
    ``preload=False``: the reader loads at the first question instead of with the index
    (a bot whose questions go to worker processes never asks this engine one).

    A serving process follows the index: when an ingest makes a new build live, the
    next question opens it (bot/store.py explains why the switch is safe)."""

    def __init__(self, settings: Settings, *, embeddings: QabotEmbeddings | None = None,
                 sessions: SessionBackend | None = None, preload: bool = True) -> None:
        started = time.perf_counter()
        self.settings = settings
        self.embeddings = embeddings or make_embeddings(settings.embeddings)
        self._lock = threading.Lock()
        if preload and answerer_for(settings).needs_reader:
            preload_reader(settings.answer.reader_threads)  # while the index opens
        self._pipe = self._open()
        self._retired: Index | None = None  # the build before, for questions in flight
        self.sessions = sessions or open_sessions(settings)
        self.load_ms = (time.perf_counter() - started) * 1000

    def _open(self) -> _Pipeline:
        return _open_pipeline(self.settings, self.embeddings)

    def _current(self, *, failed: bool = False) -> _Pipeline:
        """The pipeline for the next question: the live build's. ``failed``: the one in
        hand just failed, so reopen even if no new build is announced (a Chroma server
        whose collections were rebuilt, a build pruned under a long-idle process)."""
        with self._lock:
            pipe = self._pipe
            if not (failed or pipe.index.superseded()):
                return pipe
            try:
                fresh = self._open()
            except IndexError_ as exc:
                if failed:
                    raise
                log.warning("a new index build is live but cannot be opened (%s); "
                            "answering from the previous one", exc)
                return pipe
            log.info("opened the new index build (%d documents, %d chunks)",
                     fresh.index.document_count, fresh.index.chunk_count)
            if self._retired is not None:  # two builds back: nothing answers from it now
                self._retired.close()
            self._retired, self._pipe = pipe.index, fresh
            return fresh

    # the pipeline's parts, for callers that read them (evaluation, tests)
    @property
    def index(self) -> Index:
        return self._pipe.index

    @property
    def retriever(self) -> HybridRetriever:
        return self._pipe.retriever

    @property
    def answerer(self) -> Answerer:
        return self._pipe.answerer

    @property
    def llm(self) -> Any:
        return self._pipe.llm

    def answer(self, question: str, *, session: str | None = None,
               history: list[str] | None = None,
               on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer one question; with ``session`` the chat's history shapes retrieval
        and the turn is stored. ``history`` (earlier questions) serves stateless callers
        such as the evaluator. ``on_token`` receives an LLM answer as it streams."""
        question = self.check_question(question)
        turns = self._history(session, history, self._current())
        result = self.respond(question, turns, on_token=on_token,
                              keep_subject=session is not None)
        if session is not None:
            return self.record(session, question, result)
        return result

    def respond(self, question: str, turns: Sequence[Turn], *,
                on_token: Callable[[str], None] | None = None,
                keep_subject: bool = True) -> Answer:
        """Answer ``question`` after the earlier ``turns`` of its chat, storing nothing:
        what a worker process runs (bot/workers.py), the process that owns the session
        store reading the turns before and recording the answer after.
        ``keep_subject``: work out what the turn is about (``Answer.subject``) for a
        turn that will be stored; a one-shot question skips it."""
        question = self.check_question(question)
        t0 = time.perf_counter()
        pipe = self._current()
        turns = list(turns)
        res = resolve(question, turns, pipe.index.segmenter)
        query = _query_for(question, turns, res, pipe, self.settings)
        if res.resolved:
            log.info("follow-up odds %.2f for subject %r", res.log_odds, res.assumed)
        t1 = time.perf_counter()
        try:
            out = pipe.chain.invoke({"query": query, "on_token": on_token})
        except IndexError_ as exc:
            # the store under this pipeline went away (rebuilt on a Chroma server, or
            # pruned): open what is live now and ask once more
            log.warning("index query failed (%s); reopening the index", exc)
            pipe = self._current(failed=True)
            out = pipe.chain.invoke({"query": query, "on_token": on_token})
        found: Answer = out["answer"]
        t2, t3 = out["retrieved_at"], time.perf_counter()
        assumed = found.assumed_subject
        if assumed is None and query.assumed and not found.refused \
                and query.standalone != question:
            assumed = query.assumed  # answered from the resolved form
        return dataclasses.replace(
            found, standalone_query=found.standalone_query or query.standalone,
            assumed_subject=assumed,
            subject=res.subject_after(assumed is not None, found.refused)
            if keep_subject else found.subject,
            timings_ms={"rewrite": (t1 - t0) * 1000, "retrieve": (t2 - t1) * 1000,
                        "answer": (t3 - t2) * 1000, "total": (t3 - t0) * 1000})

    def record(self, session: str, question: str, result: Answer) -> Answer:
        """Store an answered turn in ``session``: ``result`` with its turn id."""
        turn_id = self.sessions.append(session, turn_of(question, result))
        return dataclasses.replace(result, turn_id=turn_id)

    def warm_up(self) -> None:
        """Answer one question and forget it, so the reader, the tokenizers and the
        index's caches are loaded before the first real question (a worker process
        starting, a server about to take traffic)."""
        try:
            self.respond(WARM_UP_QUESTION, [])
        except QabotError as exc:  # an empty index, say: the real question will say so
            log.info("warm-up question not answered: %s", exc)

    def history(self, session: str) -> list[Turn]:
        """The turns of ``session`` that shape its next question."""
        return self.sessions.history(session, self.settings.session.history_turns)

    def check_question(self, question: str) -> str:
        """``question`` trimmed, or a QuestionError saying what is wrong with it."""
        return checked_question(question, self.settings.answer.max_question_chars)

    @property
    def streams(self) -> bool:
        """Whether answers can arrive token by token (an LLM is configured)."""
        return self._pipe.llm is not None

    def reset(self, session: str) -> int:
        """Forget a session's history; returns the number of turns dropped."""
        return self.sessions.reset(session)

    def last_turn(self, session: str) -> Turn | None:
        """The session's latest turn with its cited and closest passages (any process
        that shares the session store sees it)."""
        return self.sessions.last(session)

    def rate(self, session: str, turn_id: int, rating: int) -> bool:
        """Store the user's 👍 (1) or 👎 (-1) for one turn; False when it is gone."""
        return self.sessions.rate(session, turn_id, rating)

    def turn(self, session: str, turn_id: int) -> Turn | None:
        """One stored turn of a session; None once the session was reset."""
        return self.sessions.get(session, turn_id)

    def documents(self) -> list[DocumentInfo]:
        """The indexed documents, by source."""
        index = self._current().index
        files: dict[str, Any] = index.manifest.get("files", {})
        return [DocumentInfo(source=source, title=str(entry.get("meta", {}).get("title") or ""),
                             chunks=len(entry.get("chunks", [])))
                for source, entry in sorted(files.items())]

    def remove(self, paths: Sequence[Path]) -> IngestReport:
        """Drop documents (files, or everything under folders) from the index; the next
        question answers from the build without them."""
        from bot.ingest import remove

        return remove(self.settings, paths, self.embeddings)

    def stats(self) -> Stats:
        index = self._current().index
        m: dict[str, Any] = index.manifest
        return Stats(documents=index.document_count, chunks=index.chunk_count,
                     embedder=str(m.get("embedder")), built_at=str(m.get("built_at", "?")),
                     sources=sorted(m.get("files", {})))

    def document_titles(self) -> list[str]:
        """Each document's title (or its source name when it has none)."""
        return [d.title or d.source for d in self.documents()]

    def _history(self, session: str | None, history: list[str] | None,
                 pipe: _Pipeline) -> list[Turn]:
        if history:  # replay: each earlier question related to the ones before it
            return [Turn(r.question, r.resolved or r.question, "", subject=r.subject)
                    for r in replay(history, pipe.index.segmenter)]
        if session is None:
            return []
        return self.sessions.history(session, self.settings.session.history_turns)


def turn_of(question: str, result: Answer) -> Turn:
    """The turn a chat keeps of ``question`` answered with ``result``: what the next
    question is resolved against (stored by ``Engine.record``, kept in memory by the
    evaluator's chats)."""
    return Turn(question=question, standalone=result.standalone_query or question,
                answer=result.answer, citations=list(result.citations),
                related=list(result.related), subject=result.subject,
                short="" if result.refused else (result.short_answer or ""))


def _bridged_passages(query: Query, passages: Sequence[Document],
                      retriever: HybridRetriever) -> dict[str, list[Document]]:
    """The passages each keyword form of the question in the other language retrieves,
    for the forms that are read (bot/bridge.py): those whose own first passage is in
    that other language, so that a form which only finds text in the question's own
    language is not read. A form is made only when the index holds text in the other
    language.

    A Chinese question's English form is read whatever the question found first: a
    Chinese question shares its script, and so its BM25 terms, with every Chinese
    passage, so its first passage is often Chinese when the answer is in English (on
    tests/data/reverse/dev.jsonl, reading the form only after an English first passage
    answered 5 of 12, whenever it retrieves English 8 of 12).

    An English question's Chinese form is read when the question's own passages hold a
    Chinese one at all (dense retrieval is cross-lingual, so a Chinese document about
    the question is among them even when an English guide ranks first). Reading it
    only after a Chinese first passage, as before the eighth session, refused English
    questions about a Chinese policy indexed beside an English guide (15 of the 24
    answerable questions of tests/data/bridge/mixed_dev.jsonl got an answer holding the
    gold; now 18). Reading it whenever it finds Chinese first answered "When does the
    gym close on Sunday?", about an English timetable, from a Chinese pool's row
    (docs/benchmarks.md). In a Chinese corpus with English words here and there
    (Wikipedia), a Chinese question's English form retrieves Chinese text and is not
    read."""
    english = not tokens.is_mostly_cjk(query.question)
    if english and not any(tokens.is_mostly_cjk(p.page_content) for p in passages):
        return {}
    found = {f: retriever.invoke(f) for f in query.bridged_forms}
    return {f: got for f, got in found.items()
            if got and tokens.is_mostly_cjk(got[0].page_content) == english}


def _open_pipeline(settings: Settings, embeddings: QabotEmbeddings) -> _Pipeline:
    """The live build opened, with the retriever, the answerer and the chain over them."""
    index = Index.open(settings, embeddings)
    retriever = HybridRetriever(index=index, settings=settings.retrieval)
    kind = answerer_for(settings)
    answerer = kind.build(index, settings.answer)
    llm = None
    if settings.llm.provider != "none":
        # langchain-openai/-ollama only when configured
        from bot.answerers.llm import LLMAnswerer

        llm = LLMAnswerer(settings, answerer)
    final = llm or answerer
    # retriever | answerer, with a clock read between the two for timings_ms; the
    # input is {"query": Query, "on_token": callback or None}
    chain: Runnable[dict[str, Any], dict[str, Any]] = (
        RunnablePassthrough.assign(
            passages=RunnableLambda(lambda d: d["query"].standalone) | retriever,
            context_passages=RunnableLambda(
                lambda d: retriever.invoke(d["query"].contextual)
                if d["query"].contextual else []))
        | RunnablePassthrough.assign(bridged_passages=RunnableLambda(
            lambda d: _bridged_passages(d["query"], d["passages"], retriever)))
        | RunnableLambda(lambda d: {**d, "retrieved_at": time.perf_counter()})
        | RunnableLambda(lambda d: {**d, "answer": final(d)})
    )
    return _Pipeline(index, retriever, answerer, kind, llm, chain)


def _query_for(question: str, turns: Sequence[Turn], res: Resolution, pipe: _Pipeline,
               settings: Settings) -> Query:
    """What the answerer is asked: the question, and the forms of it the answerer reads
    (with the earlier subject, in the documents' other language), or one standalone
    form for an answerer that reads one (an LLM may rewrite a follow-up)."""
    if pipe.kind.reads_forms and pipe.llm is None:
        # the reader reads the question alone and with the earlier subject; the
        # follow-up model's odds weigh the second reading (bot/conversation.py)
        query = Query(question=question, standalone=question, contextual=res.resolved,
                      prior=res.log_odds if res.resolved else 0.0, assumed=res.added,
                      said_before=_said_before(question, turns, res, pipe.index.segmenter),
                      ellipsis_of=res.previous or None)
        chinese = tokens.is_mostly_cjk(question)
        if settings.answer.bridge_chinese if chinese \
                else settings.answer.bridge_english:
            # and, for a question about text in the other language, in keywords of
            # that language (English -> Chinese, Chinese -> English)
            glossary = glossary_for(pipe.index.bm25.vocabulary, pipe.index.bm25.frequency)
            to_other = glossary.bridge_to_english if chinese else glossary.bridge
            bridged = to_other(question)
            in_context = to_other(res.resolved) if res.resolved else None
            query = dataclasses.replace(
                query, bridged=bridged,
                bridged_contextual=in_context if in_context != bridged else None)
    elif res.followup:
        rewritten = pipe.llm.rewrite(question, turns) if pipe.llm else None
        query = Query(question=question, standalone=rewritten or res.resolved or question,
                      assumed=None if rewritten else res.added)
    else:
        query = Query(question=question, standalone=question)
    return query


def _said_before(question: str, turns: Sequence[Turn], res: Resolution,
                 segmenter: tokens.Segmenter) -> str | None:
    """The previous answer a follow-up asks past: set when ``question`` leans on the
    previous turn and asks about something its question did not ("when did it become a
    regular county?" after "When was Huocheng made a pilot county?"). A question in
    the previous one's own words asks for the same thing again, and may get the same
    answer."""
    if not (res.resolved and turns and turns[-1].short):
        return None
    before = set(segmenter.content_terms(turns[-1].question))
    if not set(segmenter.content_terms(question)) - before:
        return None
    return turns[-1].short


def checked_question(question: str, limit: int) -> str:
    """``question`` trimmed, or a QuestionError saying what is wrong with it (empty,
    not text, no words, over ``limit`` characters)."""
    text = (question or "").strip()
    if not text:
        raise QuestionError("The question is empty. Type a question about your documents.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8 (a terminal in GBK)
        raise QuestionError("The question is not valid text: it holds bytes that are "
                            "not UTF-8. Retype it, or set your terminal to UTF-8.") from None
    if not _WORD.search(text):  # 「？？？」, 😀😀😀: nothing to search for
        raise QuestionError("Please ask a question in words — I can't read emoji or "
                            "symbols alone.")
    if len(text) > limit:
        raise QuestionError(f"The question is {len(text)} characters long; the limit is "
                            f"{limit}. Ask something shorter (or raise "
                            "answer.max_question_chars).")
    return text
