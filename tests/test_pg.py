"""Chat state in a real PostgreSQL server (bot/pg.py): the schema the bot migrates
itself, what replicas agree on (updates answered once, shared rate limits, one chat
answered at a time, by lease), a server that is away, and the password kept out of every
message. Session-store behaviour shared with SQLite is in test_sessions.py."""

from __future__ import annotations

import logging
import socket
import threading
import time

import psycopg
import pytest

from bot.errors import QuestionError
from bot.pg import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Database,
    PgCoordinator,
    PgSessionStore,
    SessionStoreError,
    lock_key,
)
from bot.sessions import Turn
from bot.telegram.guards import LocalCoordinator
from fakes.postgres import PASSWORD


@pytest.fixture
def replicas(postgres_url: str):
    """Two coordinators, each with its own pool, as two bot processes have."""
    dbs = [Database(postgres_url, pool_size=4) for _ in range(2)]
    yield [PgCoordinator(db, LocalCoordinator()) for db in dbs]
    for db in dbs:
        db.close()


def test_the_schema_is_created_once_and_versioned(postgres_url: str) -> None:
    first = Database(postgres_url, pool_size=2)
    second = Database(postgres_url, pool_size=2)  # a replica starting later: no-op
    try:
        assert first.version() == second.version() == SCHEMA_VERSION == len(MIGRATIONS)
        with first.connection() as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'qabot_%'")}
        assert tables == {"qabot_schema", "qabot_turns", "qabot_updates", "qabot_rate",
                          "qabot_chat_turns"}
    finally:
        first.close()
        second.close()


def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    opened: list[Database] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(Database(postgres_url, pool_size=2))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors and len(opened) == 4
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*), max(version) FROM qabot_schema"
                                ).fetchone() == (1, SCHEMA_VERSION)
    finally:
        for db in opened:
            db.close()


def test_a_store_from_a_newer_qabot_is_refused_with_a_message(postgres_url: str) -> None:
    Database(postgres_url, pool_size=2).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE qabot_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(SessionStoreError,
                       match=r"^The session store .* newer than this qabot's .* upgrade qabot"):
        Database(postgres_url, pool_size=2)


def test_an_update_is_claimed_by_one_replica_only(replicas) -> None:
    a, b = replicas
    assert a.claim_update(1001) is True
    assert b.claim_update(1001) is False  # the same update, delivered to the other one
    assert a.claim_update(1001) is False  # a webhook retry to the first
    assert b.claim_update(1002) is True


def test_the_rate_limit_is_shared_by_replicas(replicas) -> None:
    a, b = replicas
    asked = [a.allow(7, 3), b.allow(7, 3), a.allow(7, 3), b.allow(7, 3), a.allow(7, 3)]
    assert asked == [True, True, True, False, False]
    assert b.allow(8, 3)  # per user


def test_concurrent_questions_never_pass_the_limit(replicas) -> None:
    a, b = replicas
    results: list[bool] = []
    lock = threading.Lock()

    def ask(coordinator: PgCoordinator) -> None:
        allowed = coordinator.allow(9, 5)
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=ask, args=(c,)) for c in (a, b) * 6]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and results.count(True) == 5


def test_a_chat_is_answered_by_one_replica_at_a_time(replicas) -> None:
    a, b = replicas
    token = a.try_chat_turn(42)
    assert token
    assert b.try_chat_turn(42) is None  # chat 42 is A's until it ends its turn
    other = b.try_chat_turn(43)  # another chat is not held up
    assert other
    a.renew_chat_turn(42, token)
    a.end_chat_turn(42, token)
    mine = b.try_chat_turn(42)
    assert mine
    b.end_chat_turn(42, mine)
    b.end_chat_turn(43, other)


def test_a_dead_replicas_turn_runs_out(replicas) -> None:
    a, b = replicas
    assert a.try_chat_turn(7, lease_s=0.5)  # and A dies without ending it
    assert b.try_chat_turn(7) is None
    time.sleep(0.8)
    assert b.try_chat_turn(7)


def test_ending_a_lost_turn_frees_nothing_of_the_new_holder(replicas) -> None:
    a, b = replicas
    old = a.try_chat_turn(8, lease_s=0.3)
    time.sleep(0.5)
    new = b.try_chat_turn(8)
    assert old and new
    a.end_chat_turn(8, old)  # A, late, ends the turn it no longer has
    assert a.try_chat_turn(8) is None  # B still has it


def test_lock_keys_keep_namespaces_apart() -> None:
    assert lock_key("chat", 5) != lock_key("rate", 5)
    assert lock_key("chat", 5) == lock_key("chat", 5)
    assert -(2 ** 63) <= lock_key("chat", 2 ** 52) < 2 ** 63


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_one_clear_error_without_the_password(caplog) -> None:
    url = f"postgresql://qabot:{PASSWORD}@127.0.0.1:{_closed_port()}/qabot"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SessionStoreError) as err:
        Database(url, pool_size=2)
    message = str(err.value)
    assert "Cannot" in message and "QABOT_SESSION_URL" in message
    assert "qabot:***@127.0.0.1" in message
    assert PASSWORD not in message and PASSWORD not in caplog.text
    assert err.value.__cause__ is None  # no chained exception carries the URL either


def test_a_server_gone_while_serving_costs_history_not_answers(
        postgres_url: str, caplog) -> None:
    db = Database(postgres_url, pool_size=2)
    store = PgSessionStore(db)
    coordinator = PgCoordinator(db, LocalCoordinator())
    store.append("c", Turn("q", "q", "a"))
    db.pool.close()  # as if the server went away: every query now fails
    caplog.set_level(logging.WARNING)
    assert store.history("c", 5) == []  # answered without history
    assert store.append("c", Turn("q2", "q2", "a2")) is None
    assert coordinator.claim_update(5) is True and coordinator.claim_update(5) is False
    assert coordinator.allow(1, 1) is True and coordinator.allow(1, 1) is False
    assert coordinator.try_chat_turn(1) == ""  # answered unlocked rather than not at all
    with pytest.raises(QuestionError, match="could not be forgotten"):
        store.reset("c")
    assert "going on without it" in caplog.text and "locally" in caplog.text
    assert "answering unlocked" in caplog.text
    assert PASSWORD not in caplog.text
