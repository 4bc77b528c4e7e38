"""Sessions: follow-up detection, standalone queries, SQLite persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sessions import SessionStore, Turn, is_followup, standalone_query, topic_of


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


def test_store_keeps_history_per_session_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SessionStore(path)
    store.append("a", Turn("q1", "q1", "a1", [{"n": 1}]))
    store.append("b", Turn("other", "other", "x"))
    store.append("a", Turn("q2", "s2", "a2"))
    reopened = SessionStore(path)
    assert [t.question for t in reopened.history("a", 10)] == ["q1", "q2"]
    assert reopened.history("a", 1)[0].standalone == "s2"
    assert reopened.history("a", 10)[0].citations == [{"n": 1}]
    assert reopened.last("b").answer == "x"
    assert reopened.reset("a") == 2
    assert reopened.history("a", 10) == [] and reopened.last("b") is not None
