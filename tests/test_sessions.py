"""Sessions: follow-up detection, standalone queries, persistence in SQLite and (the
same tests, ``backend`` = postgres) in a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.answers import Citation
from bot.sessions import (
    SessionBackend,
    SessionStore,
    Turn,
    is_followup,
    standalone_query,
    topic_of,
)

C1 = Citation(1, "a.txt", "a.txt#0", 0, 12, "霍城县江苏医院综合病房大楼", 0.9)
C2 = Citation(2, "b.txt", "b.txt#3", 40, 60, "second passage", 0.4)


@pytest.mark.parametrize("question", [
    "它帮助了多少个村?", "它们有多少个班级参与?", "那朝南社区基层阵地项目呢?",
    "首批培训了多少名学员?",
    "How much did it cost?", "What about the school?",
])
def test_followups_are_detected(question: str) -> None:
    assert is_followup(question)


@pytest.mark.parametrize("question", [
    "霍城县江苏医院综合病房大楼总投资多少?", "两地党政代表团互访了几次?",
    "江阴组织实施了什么人才计划?",
    "“万里鸿雁传真情”活动有多少所学校参与?", "How many students took part in the exchange?",
])
def test_standalone_questions_are_left_alone(question: str) -> None:
    assert not is_followup(question)
    assert standalone_query(question, [Turn("澄远·火种计划是什么?", "澄远·火种计划是什么?", "")]) \
        == question


def test_followup_borrows_the_previous_topic() -> None:
    history = [Turn("澄远·火种计划是什么?", "澄远·火种计划是什么?", "…")]
    assert topic_of("澄远·火种计划是什么?") == "澄远·火种计划"
    assert standalone_query("它帮助了多少个村?", history) == "澄远·火种计划 它帮助了多少个村?"
    assert standalone_query("它帮助了多少个村?", []) == "它帮助了多少个村?"


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], SessionBackend]:
    """Opens the same store again on each call, as another process would."""
    if request.param == "sqlite":
        return lambda: SessionStore(tmp_path / "s.sqlite3")
    url = request.getfixturevalue("postgres_url")
    from bot.pg import Database, PgSessionStore

    opened: list[PgSessionStore] = []
    request.addfinalizer(lambda: [store.close() for store in opened])

    def open_pg() -> SessionBackend:
        opened.append(PgSessionStore(Database(url, pool_size=4)))
        return opened[-1]
    return open_pg


def test_store_keeps_history_per_session_across_reopen(
        open_store: Callable[[], SessionBackend]) -> None:
    store = open_store()
    store.append("a", Turn("q1", "q1", "a1", [C1]))
    store.append("b", Turn("other", "other", "x"))
    store.append("a", Turn("q2", "s2", "a2"))
    reopened = open_store()
    assert [t.question for t in reopened.history("a", 10)] == ["q1", "q2"]
    assert reopened.history("a", 1)[0].standalone == "s2"
    assert reopened.history("a", 10)[0].citations == [C1]
    assert reopened.last("b").answer == "x"
    assert reopened.reset("a") == 2
    assert reopened.history("a", 10) == [] and reopened.last("b") is not None


def _garbage_page(path: Path) -> None:
    """Overwrite the second page of an SQLite file with random bytes."""
    import os

    with path.open("r+b") as fh:
        fh.seek(4096)
        fh.write(os.urandom(4096))


@pytest.mark.parametrize("damage", ["page", "not_sqlite"])
def test_a_damaged_store_is_set_aside_and_a_fresh_one_started(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SessionStore(path)
    for i in range(200):  # several pages
        store.append("chat", Turn(f"问题{i}" * 20, "q", "a" * 200))
    if damage == "page":
        _garbage_page(path)
    else:
        path.write_bytes(b"this is not a database" * 300)
    again = SessionStore(path)
    assert again.history("chat", 5) == []  # fresh, working
    again.append("chat", Turn("新问题", "新问题", "答"))
    assert [t.question for t in again.history("chat", 5)] == ["新问题"]
    kept = list(tmp_path.glob("sessions.sqlite3.corrupt-*"))
    assert kept and kept[0].stat().st_size > 0  # the damaged file is kept, not deleted
    assert "moved it to" in caplog.text


def test_a_bad_row_costs_its_citations_not_the_session(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "sessions.sqlite3"
    store = SessionStore(path)
    store.append("chat", Turn("一", "一", "答一", [C1]))
    store.append("chat", Turn("二", "二", "答二", [C2]))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE turns SET citations = '{not json' WHERE question = '一'")
    turns = store.history("chat", 5)
    assert [(t.question, t.citations) for t in turns] == [("一", []), ("二", [C2])]


def test_a_refusal_keeps_its_closest_passages(
        open_store: Callable[[], SessionBackend]) -> None:
    store = open_store()
    turn_id = store.append("chat", Turn("没有答案?", "没有答案?", "文档中没有找到", [],
                                        related=[C2]))
    assert turn_id is not None
    again = open_store()  # another process
    turn = again.get("chat", turn_id)
    assert turn is not None and turn.citations == [] and turn.related == [C2]
    assert again.get("another chat", turn_id) is None  # a turn belongs to its session


def test_a_store_written_before_turns_kept_related_passages_opens(tmp_path: Path) -> None:
    import json
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the schema as it was
        db.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT "
                   "NULL, question TEXT NOT NULL, standalone TEXT NOT NULL, answer TEXT NOT "
                   "NULL, citations TEXT NOT NULL, at REAL NOT NULL)")
        db.execute("INSERT INTO turns (session, question, standalone, answer, citations, at) "
                   "VALUES ('chat', '旧', '旧', '答', ?, 1.0)",
                   (json.dumps([C1.__dict__], ensure_ascii=False),))
    store = SessionStore(path)
    old = store.last("chat")
    assert old is not None and old.citations == [C1] and old.related == []
    store.append("chat", Turn("新", "新", "答", related=[C2]))
    assert store.last("chat").related == [C2]
