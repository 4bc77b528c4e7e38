"""Chat state in PostgreSQL, shared by bot replicas (``session.url = "postgresql://…"``).

One machine keeps sessions in SQLite (bot/sessions.py) and the rest of a chat's state
in memory. Two ``qabot telegram --webhook`` processes behind one proxy cannot: a
follow-up would land on the replica that never saw the question, a retried update
would be answered twice, and each replica would grant a user the full rate limit. So
with ``session.url`` set, this module keeps, in one database:

* ``qabot_turns``: the sessions (``PgSessionStore``, the ``SessionStore`` interface);
* ``qabot_updates``: every handled ``update_id`` (``PgCoordinator.claim_update``: an
  insert that does nothing on a duplicate, so one update is answered once);
* ``qabot_rate``: questions per user in the last 60 s (``allow``), counted under a
  per-user advisory lock so two replicas cannot both admit the 21st;
* ``qabot_chat_turns``: which chat is being answered, by whom, until when (a lease the
  holder renews; ``try_chat_turn`` / ``end_chat_turn``), so a chat's questions are
  answered one at a time whichever replica got them. A lease row rather than an
  advisory lock, because a session-level lock holds a connection for as long as the
  answer takes: 50 chats queued for the cores held 32 pooled connections and starved
  every other query (measured: bench/telegram_load.py, docs/benchmarks.md). A replica
  that dies mid-answer frees its chats when the lease runs out.

The schema is created and migrated by the bot itself (``qabot_schema`` holds its
version; replicas starting together migrate once, under an advisory lock). psycopg 3
and its connection pool come with the ``pg`` extra. The URL's password never reaches a
log line or a message (``mask_password``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from bot.errors import QabotError, QuestionError
from bot.sessions import (
    TURN_COLUMNS,
    SessionSummary,
    Turn,
    dump_citations,
    latest_sessions_sql,
    rating_failed,
    summaries,
    turn_from_row,
)
from bot.wording import mask_password

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds to wait for a connection (pool) or a statement; past it, history is
# answered without (as SQLite's BUSY_SECONDS) and a start-up check fails with a message.
CONNECT_SECONDS = 5.0
RATE_WINDOW_S = 60.0  # the same sliding window as bot/telegram/guards.RateLimiter
# handled update ids kept this long: Telegram retries a webhook delivery for minutes,
# not days
UPDATES_KEPT_S = 24 * 3600.0
PRUNE_EVERY_S = 600.0
# A chat's turn is leased for this long and renewed by its holder at a third of it: a
# replica killed mid-answer holds the chat at most this long
CHAT_LEASE_S = 60.0

# Each migration takes the schema from version i to i + 1; never edit one that shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE qabot_turns (
        id BIGSERIAL PRIMARY KEY, session TEXT NOT NULL, question TEXT NOT NULL,
        standalone TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL,
        related TEXT NOT NULL DEFAULT '[]', at DOUBLE PRECISION NOT NULL);
    CREATE INDEX qabot_turns_session ON qabot_turns (session, id);
    CREATE TABLE qabot_updates (
        update_id BIGINT PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
    CREATE TABLE qabot_rate (
        user_id BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
    CREATE INDEX qabot_rate_user ON qabot_rate (user_id, at);
    """,
    """
    CREATE TABLE qabot_chat_turns (
        chat_id BIGINT PRIMARY KEY, owner TEXT NOT NULL, until TIMESTAMPTZ NOT NULL);
    """,
    """
    ALTER TABLE qabot_turns ADD COLUMN subject TEXT NOT NULL DEFAULT '';
    ALTER TABLE qabot_turns ADD COLUMN rating SMALLINT;
    ALTER TABLE qabot_turns ADD COLUMN short TEXT NOT NULL DEFAULT '';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class SessionStoreError(QabotError):
    """The PostgreSQL session store cannot be reached or used."""


def lock_key(namespace: str, value: int | str) -> int:
    """A signed 64-bit advisory-lock key for ``namespace:value`` (chat ids and user ids
    are 52-bit, so they cannot share PostgreSQL's one key space by value alone)."""
    digest = hashlib.blake2b(f"qabot:{namespace}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Database:
    """A connection pool to ``url`` with the schema migrated; shared by the session
    store and the coordinator of one process."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise SessionStoreError(
                "session.url names PostgreSQL, but psycopg is not installed: "
                "pip install 'qabot[pg]' (or clear session.url to keep sessions in "
                "SQLite).") from exc
        self.url = url
        self.where = mask_password(url)
        self._psycopg = psycopg
        self._secret = _password(url)
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False,
                                   timeout=CONNECT_SECONDS, name="qabot",
                                   kwargs={"autocommit": True,
                                           "connect_timeout": int(CONNECT_SECONDS)})
        try:
            self.pool.open(wait=True, timeout=CONNECT_SECONDS)
            self.migrate()
        except SessionStoreError:
            self.pool.close()
            raise
        except (psycopg.Error, OSError) as exc:
            self.pool.close()
            raise SessionStoreError(
                f"Cannot use the PostgreSQL session store at {self.where}: "
                f"{self.describe(exc)}. Check that the server runs and session.url "
                "(QABOT_SESSION_URL) is right.") from None
        except Exception as exc:  # the pool's own timeout (PoolTimeout) and the like
            self.pool.close()
            raise SessionStoreError(
                f"Cannot connect to the PostgreSQL session store at {self.where} "
                f"within {CONNECT_SECONDS:.0f} s ({self.describe(exc)}). Check that the "
                "server runs and session.url (QABOT_SESSION_URL) is right.") from None

    def describe(self, exc: BaseException) -> str:
        """An error's text without the password, on one line."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        if self._secret:
            text = text.replace(self._secret, "***")
        return mask_password(text)[:300]

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self.pool.connection(timeout=CONNECT_SECONDS) as conn:
            yield conn

    def migrate(self) -> None:
        """Bring the schema to ``SCHEMA_VERSION``; replicas starting at once take turns."""
        with self.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("schema", 0),))
            conn.execute("CREATE TABLE IF NOT EXISTS qabot_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM qabot_schema").fetchone()
            version = int(row[0]) if row else 0
            if row is None:
                conn.execute("INSERT INTO qabot_schema (version) VALUES (0)")
            if version > SCHEMA_VERSION:
                raise SessionStoreError(
                    f"The session store at {self.where} has schema version {version}, "
                    f"newer than this qabot's {SCHEMA_VERSION}: upgrade qabot.")
            for step in range(version, SCHEMA_VERSION):
                conn.execute(MIGRATIONS[step])
                conn.execute("UPDATE qabot_schema SET version = %s", (step + 1,))
                log.info("session store %s: schema migrated to version %d", self.where,
                         step + 1)

    def version(self) -> int:
        with self.connection() as conn:
            row = conn.execute("SELECT version FROM qabot_schema").fetchone()
            return int(row[0]) if row else 0

    def close(self) -> None:
        self.pool.close()

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """What a query can raise when the server is away: psycopg's errors and the
        pool's timeout."""
        from psycopg_pool import PoolTimeout

        return (self._psycopg.Error, PoolTimeout, OSError)


def _password(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""




class PgSessionStore:
    """``SessionStore``'s interface over PostgreSQL. As there, history is best effort:
    a server that is away gives an empty history and an unsaved turn (with a warning),
    never a lost answer; only ``reset``, which the user asked for, says it failed."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.path = db.where  # what messages and `qabot info` name

    def _best_effort(self, run: Callable[[Any], T], fallback: T, what: str) -> T:
        try:
            with self.db.connection() as conn:
                return run(conn)
        except self.db.errors as exc:
            log.warning("Could not %s in the session store %s (%s); going on without it.",
                        what, self.db.where, self.db.describe(exc))
            return fallback

    def history(self, session: str, limit: int) -> list[Turn]:
        def run(conn: Any) -> list[Turn]:
            rows = conn.execute(
                f"SELECT {TURN_COLUMNS} FROM qabot_turns WHERE session = %s "
                "ORDER BY id DESC LIMIT %s", (session, limit)).fetchall()
            return [turn_from_row(row) for row in reversed(rows)]
        return self._best_effort(run, [], "read history")

    def get(self, session: str, turn_id: int) -> Turn | None:
        def run(conn: Any) -> Turn | None:
            row = conn.execute(f"SELECT {TURN_COLUMNS} FROM qabot_turns WHERE session = %s "
                               "AND id = %s", (session, turn_id)).fetchone()
            return turn_from_row(row) if row else None
        return self._best_effort(run, None, "read a turn")

    def append(self, session: str, turn: Turn) -> int | None:
        def run(conn: Any) -> int:
            row = conn.execute(
                "INSERT INTO qabot_turns (session, question, standalone, answer, citations, "
                "at, related, subject, short) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                (session, turn.question, turn.standalone, turn.answer,
                 dump_citations(turn.citations), turn.at or time.time(),
                 dump_citations(turn.related), turn.subject, turn.short)).fetchone()
            return int(row[0])
        return self._best_effort(run, None, "save a turn")

    def reset(self, session: str) -> int:
        try:
            with self.db.connection() as conn:
                cur = conn.execute("DELETE FROM qabot_turns WHERE session = %s", (session,))
                return int(cur.rowcount)
        except self.db.errors as exc:
            log.warning("Could not reset session %s in %s: %s", session, self.db.where,
                        self.db.describe(exc))
            raise QuestionError("The conversation could not be forgotten right now (its "
                                "store is busy). Try again in a moment.") from None

    def last(self, session: str) -> Turn | None:
        turns = self.history(session, 1)
        return turns[0] if turns else None

    def rate(self, session: str, turn_id: int, rating: int) -> bool:
        try:
            with self.db.connection() as conn:
                cur = conn.execute("UPDATE qabot_turns SET rating = %s WHERE session = %s "
                                   "AND id = %s", (rating, session, turn_id))
                return int(cur.rowcount) > 0
        except self.db.errors as exc:
            log.warning("Could not rate turn %s of %s in %s: %s", turn_id, session,
                        self.db.where, self.db.describe(exc))
            raise rating_failed() from None

    def sessions(self, limit: int) -> list[SessionSummary]:
        def run(conn: Any) -> list[SessionSummary]:
            rows = conn.execute(latest_sessions_sql("qabot_turns", "%s"), (limit,)).fetchall()
            return summaries(rows)
        return self._best_effort(run, [], "list sessions")

    def transcript(self, session: str) -> list[Turn]:
        def run(conn: Any) -> list[Turn]:
            rows = conn.execute(f"SELECT {TURN_COLUMNS} FROM qabot_turns WHERE session = %s "
                                "ORDER BY id", (session,)).fetchall()
            return [turn_from_row(row) for row in rows]
        return self._best_effort(run, [], "read a transcript")

    def rated(self) -> list[tuple[str, Turn]]:
        def run(conn: Any) -> list[tuple[str, Turn]]:
            rows = conn.execute(f"SELECT session, {TURN_COLUMNS} FROM qabot_turns WHERE rating "
                                "IS NOT NULL ORDER BY id").fetchall()
            return [(str(row[0]), turn_from_row(row[1:])) for row in rows]
        return self._best_effort(run, [], "read rated turns")

    def close(self) -> None:
        self.db.close()


class PgCoordinator:
    """What replicas must agree on besides sessions: which updates were handled, how
    many questions a user asked in the last minute, and which chat is being answered.

    Each call blocks (run it in a thread). ``claim_update`` and ``allow`` that cannot
    reach the server fall back to this process's own view (``fallback``: the local
    coordinator), so a database away degrades a replica to single-machine behaviour
    instead of stopping answers; the log says so."""

    def __init__(self, db: Database, fallback: Any) -> None:
        self.db = db
        self.fallback = fallback
        self._pruned_at = 0.0
        self._prune_lock = threading.Lock()

    def claim_update(self, update_id: int) -> bool:
        """True the first time any replica claims ``update_id``, False after."""
        try:
            with self.db.connection() as conn:
                cur = conn.execute("INSERT INTO qabot_updates (update_id) VALUES (%s) "
                                   "ON CONFLICT DO NOTHING", (update_id,))
                claimed = bool(cur.rowcount == 1)
            self._prune()
            return claimed
        except self.db.errors as exc:
            log.warning("cannot record update %s in %s (%s); checked locally only",
                        update_id, self.db.where, self.db.describe(exc))
            return bool(self.fallback.claim_update(update_id))

    def allow(self, user_id: int, per_minute: int) -> bool:
        """Count a question of ``user_id``; False (not counted) over ``per_minute`` in the
        last 60 s, across every replica."""
        try:
            with self.db.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("rate", user_id),))
                conn.execute("DELETE FROM qabot_rate WHERE user_id = %s AND at < "
                             "clock_timestamp() - make_interval(secs => %s)",
                             (user_id, RATE_WINDOW_S))
                (asked,) = conn.execute("SELECT count(*) FROM qabot_rate WHERE user_id = %s",
                                        (user_id,)).fetchone()
                if int(asked) >= per_minute:
                    return False
                conn.execute("INSERT INTO qabot_rate (user_id) VALUES (%s)", (user_id,))
                return True
        except self.db.errors as exc:
            log.warning("cannot count user %s's questions in %s (%s); limited locally only",
                        user_id, self.db.where, self.db.describe(exc))
            return bool(self.fallback.allow(user_id, per_minute))

    def try_chat_turn(self, chat_id: int, lease_s: float = CHAT_LEASE_S) -> str | None:
        """Take the chat's turn: a token to renew and end it with, None while another
        holder has it, or "" when the server cannot say (answer unlocked, as a single
        machine would)."""
        token = uuid.uuid4().hex
        try:
            with self.db.connection() as conn:
                row = conn.execute(
                    "INSERT INTO qabot_chat_turns (chat_id, owner, until) VALUES "
                    "(%s, %s, clock_timestamp() + make_interval(secs => %s)) "
                    "ON CONFLICT (chat_id) DO UPDATE SET owner = EXCLUDED.owner, "
                    "until = EXCLUDED.until WHERE qabot_chat_turns.until < clock_timestamp() "
                    "RETURNING owner", (chat_id, token, lease_s)).fetchone()
        except self.db.errors as exc:
            log.warning("cannot take chat %s's turn in %s (%s); answering unlocked",
                        chat_id, self.db.where, self.db.describe(exc))
            return ""
        return token if row else None

    def renew_chat_turn(self, chat_id: int, token: str,
                        lease_s: float = CHAT_LEASE_S) -> None:
        if not token:
            return
        try:
            with self.db.connection() as conn:
                conn.execute("UPDATE qabot_chat_turns SET until = clock_timestamp() + "
                             "make_interval(secs => %s) WHERE chat_id = %s AND owner = %s",
                             (lease_s, chat_id, token))
        except self.db.errors as exc:
            log.warning("cannot renew chat %s's turn in %s (%s)", chat_id, self.db.where,
                        self.db.describe(exc))

    def end_chat_turn(self, chat_id: int, token: str) -> None:
        if not token:
            return
        try:
            with self.db.connection() as conn:
                conn.execute("DELETE FROM qabot_chat_turns WHERE chat_id = %s AND owner = %s",
                              (chat_id, token))
        except self.db.errors as exc:  # the lease runs out by itself
            log.warning("cannot end chat %s's turn in %s (%s)", chat_id, self.db.where,
                        self.db.describe(exc))

    def _prune(self) -> None:
        """Drop update ids older than ``UPDATES_KEPT_S`` now and then."""
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_EVERY_S or not self._prune_lock.acquire(False):
            return
        try:
            self._pruned_at = now
            with self.db.connection() as conn:
                conn.execute("DELETE FROM qabot_updates WHERE at < clock_timestamp() - "
                             "make_interval(secs => %s)", (UPDATES_KEPT_S,))
        except self.db.errors as exc:
            log.debug("could not prune handled updates: %s", self.db.describe(exc))
        finally:
            self._prune_lock.release()

