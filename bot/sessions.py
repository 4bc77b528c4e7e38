"""Chat sessions: per-chat history in SQLite (or PostgreSQL, bot/pg.py), each turn with
its subject (what the next question may lean on: bot/conversation.py) and the user's
rating; listing, transcripts and the rated turns for evaluation.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from bot.answers import Citation
from bot.errors import QuestionError


@dataclass(frozen=True)
class Turn:
    question: str
    standalone: str  # the query retrieval actually used
    answer: str
    citations: list[Citation] = field(default_factory=list)
    at: float = 0.0
    id: int | None = None  # row id once stored
    # the closest passages when nothing was cited (a refusal): /sources shows them
    related: list[Citation] = field(default_factory=list)
    subject: str = ""  # what the turn was about (bot/conversation.py); "" before it was kept
    rating: int | None = None  # the user's 👍 (1) or 👎 (-1)
    short: str = ""  # the short answer (what `sessions export --rated` takes as the gold)


if TYPE_CHECKING:
    from bot.config import Settings


class SessionBackend(Protocol):
    """What the engine and the front ends need of a session store: ``SessionStore``
    (SQLite, one machine) or ``bot.pg.PgSessionStore`` (shared by replicas)."""

    path: str

    def history(self, session: str, limit: int) -> list[Turn]: ...
    def get(self, session: str, turn_id: int) -> Turn | None: ...
    def append(self, session: str, turn: Turn) -> int | None: ...
    def reset(self, session: str) -> int: ...
    def last(self, session: str) -> Turn | None: ...
    def rate(self, session: str, turn_id: int, rating: int) -> bool: ...
    def sessions(self, limit: int) -> list[SessionSummary]: ...
    def transcript(self, session: str) -> list[Turn]: ...
    def rated(self) -> list[tuple[str, Turn]]: ...


@dataclass(frozen=True)
class SessionSummary:
    """One conversation as ``qabot sessions`` lists it."""

    id: str
    turns: int
    last_question: str
    last_at: float


RATINGS = {"good": 1, "bad": -1}  # what /good, /bad and the 👍/👎 buttons store


def rating_failed() -> QuestionError:
    """A rating the store could not take: the user asked for it, so say so."""
    return QuestionError("The rating could not be saved right now (the session store is "
                         "busy). Try again in a moment.")


def open_sessions(settings: Settings) -> SessionBackend:
    """The configured store: PostgreSQL when ``session.url`` is set, else SQLite under
    ``paths.home``."""
    if settings.session.url:
        from bot.pg import Database, PgSessionStore

        return PgSessionStore(Database(settings.session.url,
                                       pool_size=settings.session.pool_size))
    return SessionStore(settings.sessions_path)


# the columns ``turn_from_row`` reads, in its order (both stores: here and bot/pg.py)
TURN_COLUMNS = ("question, standalone, answer, citations, at, id, related, subject, rating, "
                "short")


def latest_sessions_sql(table: str, param: str) -> str:
    """The query behind ``sessions``: each session's turn count and its last turn, most
    recent first, in ``table`` with the driver's ``param`` placeholder (SQLite's ``?``,
    psycopg's ``%s``)."""
    return (f"SELECT t.session, c.n, t.question, t.at FROM {table} t JOIN (SELECT session, "
            f"COUNT(*) AS n, MAX(id) AS last FROM {table} GROUP BY session) c "
            f"ON t.id = c.last ORDER BY t.id DESC LIMIT {param}")


def summaries(rows: Iterable[Sequence[Any]]) -> list[SessionSummary]:
    """``SessionSummary`` of each row of ``latest_sessions_sql``."""
    return [SessionSummary(str(s), int(n), str(q), float(at)) for s, n, q, at in rows]
log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds to wait for a session database another process holds. Its writes take
# milliseconds; a lock held longer is a stuck process, and the answer matters more than
# the history: past this, history is read as empty and the turn is not saved (a
# warning says so) rather than the question failing.
BUSY_SECONDS = 3.0


# columns added after the first release, each with what older rows read as
_ADDED_COLUMNS = (("related", "TEXT NOT NULL DEFAULT '[]'"),
                  ("subject", "TEXT NOT NULL DEFAULT ''"), ("rating", "INTEGER"),
                  ("short", "TEXT NOT NULL DEFAULT ''"))


def turn_from_row(row: tuple[Any, ...]) -> Turn:
    q, s, a, c, at, turn_id, r, subject, rating, short = row
    return Turn(str(q), str(s), str(a), _citations(c, turn_id), at, turn_id,
                _citations(r, turn_id), str(subject or ""),
                None if rating is None else int(rating), str(short or ""))


def _citations(stored: Any, turn_id: int) -> list[Citation]:
    try:
        rows = json.loads(stored)
        return [Citation(**row) for row in rows]
    except (TypeError, ValueError):
        # one bad row costs its passages (a /sources reply), never the session
        log.warning("Session turn %s has unreadable passages; shown without them.", turn_id)
        return []


def dump_citations(citations: list[Citation]) -> str:
    return json.dumps([asdict(c) for c in citations], ensure_ascii=False)


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    """A damaged file, as opposed to a locked or busy one (which waits and retries)."""
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


class SessionStore:
    """History per session id in one SQLite file; safe to share across threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._memory = sqlite3.connect(":memory:", check_same_thread=False) \
            if self.path == ":memory:" else None
        self._ready = False
        self._ensure()

    def _ensure(self) -> bool:
        """Create (or check) the table once; a locked file is retried at the next use."""
        if self._ready:
            return True
        try:
            try:
                self._create()
            except sqlite3.DatabaseError as exc:
                if not _corrupt(exc):
                    raise
                self._set_aside(exc)
                self._create()
        except sqlite3.Error as exc:
            log.warning("The session store %s is not available (%s); answering without "
                        "chat history until it is.", self.path, exc)
            return False
        self._ready = True
        return True

    def _set_aside(self, exc: sqlite3.DatabaseError) -> None:
        """Histories are not worth the service: keep the damaged file beside the new
        one for whoever wants to look at it, say so once, start empty."""
        src = Path(self.path)
        dest = src.with_name(f"{src.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm", "-journal"):
            part = Path(str(src) + suffix)
            if part.exists():
                part.replace(str(dest) + suffix)
        log.warning("The session store %s was unreadable (%s); moved it to %s and started "
                    "with empty chat histories.", src, exc, dest)

    def _create(self) -> None:
        with self._connect() as db:
            problems = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError(f"database disk image is malformed: {problems[:3]}")
            if self._memory is None:
                # WAL: reading a chat's history never waits on another chat's write,
                # and a reader in another process (`qabot` beside a running bot) never
                # blocks the bot; a file system without it keeps the default journal
                try:
                    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()
                except sqlite3.OperationalError as exc:  # a read-only file: reads still work
                    mode = (f"its own ({exc})",)
                if mode and str(mode[0]).lower() != "wal":
                    log.debug("session store %s keeps journal mode %s", self.path, mode[0])
            db.execute(
                "CREATE TABLE IF NOT EXISTS turns (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "session TEXT NOT NULL, question TEXT NOT NULL, standalone TEXT NOT NULL, "
                "answer TEXT NOT NULL, citations TEXT NOT NULL, at REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS turns_session ON turns(session, id)")
            columns = {row[1] for row in db.execute("PRAGMA table_info(turns)")}
            for name, kind in _ADDED_COLUMNS:  # a store written before turns kept them
                if name not in columns:
                    db.execute(f"ALTER TABLE turns ADD COLUMN {name} {kind}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._memory or sqlite3.connect(self.path, timeout=BUSY_SECONDS)
            try:
                with db:  # commits, or rolls back on error
                    yield db
            finally:
                if self._memory is None:
                    db.close()

    def _guarded(self, run: Callable[[], T]) -> T:
        """Run one query; if the file turns out damaged while serving, set it aside,
        start fresh and run the query once more on the empty store."""
        try:
            return run()
        except sqlite3.DatabaseError as exc:
            if not _corrupt(exc) or self._memory is not None:
                raise
            self._set_aside(exc)
            self._create()
            return run()

    def _best_effort(self, run: Callable[[], T], fallback: T, what: str) -> T:
        """History is best-effort: a store that is locked past ``BUSY_SECONDS`` or
        fails gives ``fallback`` and a warning, never a lost answer."""
        if not self._ensure():
            return fallback
        try:
            return self._guarded(run)
        except sqlite3.Error as exc:
            log.warning("Could not %s in the session store %s (%s); going on without it.",
                        what, self.path, exc)
            return fallback

    def history(self, session: str, limit: int) -> list[Turn]:
        return self._best_effort(lambda: self._history(session, limit), [], "read history")

    def _history(self, session: str, limit: int) -> list[Turn]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {TURN_COLUMNS} FROM turns WHERE session = ? ORDER BY id DESC LIMIT ?",
                (session, limit)).fetchall()
        return [turn_from_row(row) for row in reversed(rows)]

    def get(self, session: str, turn_id: int) -> Turn | None:
        """One stored turn of this session (None once reset, never there, or unreadable)."""
        return self._best_effort(lambda: self._get(session, turn_id), None, "read a turn")

    def _get(self, session: str, turn_id: int) -> Turn | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {TURN_COLUMNS} FROM turns WHERE session = ? AND id = ?",
                             (session, turn_id)).fetchone()
        return turn_from_row(row) if row else None

    def append(self, session: str, turn: Turn) -> int | None:
        """Store a turn; returns its id, or None when the store could not take it."""
        return self._best_effort(lambda: self._append(session, turn), None, "save a turn")

    def _append(self, session: str, turn: Turn) -> int:
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO turns (session, question, standalone, answer, citations, at, "
                "related, subject, short) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session, turn.question, turn.standalone, turn.answer,
                 dump_citations(turn.citations), turn.at or time.time(),
                 dump_citations(turn.related), turn.subject, turn.short))
            return int(cur.lastrowid or 0)

    def reset(self, session: str) -> int:
        """Forget a session. Unlike reading, this one the user asked for: a store that
        cannot do it says so (QuestionError, shown to the user) instead of pretending."""
        def run() -> int:
            with self._connect() as db:
                return int(db.execute("DELETE FROM turns WHERE session = ?",
                                      (session,)).rowcount)
        try:
            if not self._ensure():
                raise sqlite3.OperationalError("not available")
            return self._guarded(run)
        except sqlite3.Error as exc:
            log.warning("Could not reset session %s in %s: %s", session, self.path, exc)
            raise QuestionError("The conversation could not be forgotten right now (its "
                                "store is busy). Try again in a moment.") from exc

    def last(self, session: str) -> Turn | None:
        turns = self.history(session, 1)
        return turns[0] if turns else None

    def rate(self, session: str, turn_id: int, rating: int) -> bool:
        """Store the user's rating of one turn; False when the turn is gone (reset)."""
        def run() -> bool:
            with self._connect() as db:
                return db.execute("UPDATE turns SET rating = ? WHERE session = ? AND id = ?",
                                  (rating, session, turn_id)).rowcount > 0
        try:
            if not self._ensure():
                raise sqlite3.OperationalError("not available")
            return self._guarded(run)
        except sqlite3.Error as exc:
            log.warning("Could not rate turn %s of %s in %s: %s", turn_id, session,
                        self.path, exc)
            raise rating_failed() from exc

    def sessions(self, limit: int) -> list[SessionSummary]:
        """The latest ``limit`` sessions, most recent first."""
        def run() -> list[SessionSummary]:
            with self._connect() as db:
                rows = db.execute(latest_sessions_sql("turns", "?"), (limit,)).fetchall()
            return summaries(rows)
        return self._best_effort(run, [], "list sessions")

    def transcript(self, session: str) -> list[Turn]:
        """Every turn of ``session``, oldest first."""
        def run() -> list[Turn]:
            with self._connect() as db:
                rows = db.execute(f"SELECT {TURN_COLUMNS} FROM turns WHERE session = ? "
                                  "ORDER BY id", (session,)).fetchall()
            return [turn_from_row(row) for row in rows]
        return self._best_effort(run, [], "read a transcript")

    def rated(self) -> list[tuple[str, Turn]]:
        """Every rated turn with its session, oldest first."""
        def run() -> list[tuple[str, Turn]]:
            with self._connect() as db:
                rows = db.execute(f"SELECT session, {TURN_COLUMNS} FROM turns WHERE rating IS "
                                  "NOT NULL ORDER BY id").fetchall()
            return [(str(row[0]), turn_from_row(row[1:])) for row in rows]
        return self._best_effort(run, [], "read rated turns")
