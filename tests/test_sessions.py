"""Sessions: follow-up resolution (bot/conversation.py), persistence, ratings and
listing in SQLite and (the same tests, ``backend`` = postgres) in a real PostgreSQL
server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.answers import Citation
from bot.conversation import replay, resolve, subject_of, topic_of
from bot.sessions import SessionBackend, SessionStore, Turn

C1 = Citation(1, "a.txt", "a.txt#0", 0, 12, "霍城县江苏医院综合病房大楼", 0.9)
C2 = Citation(2, "b.txt", "b.txt#3", 40, 60, "second passage", 0.4)
ABOUT_PLAN = [Turn("澄远·火种计划是什么?", "澄远·火种计划是什么?", "", subject="澄远·火种计划")]


@pytest.mark.parametrize("question", [
    "它帮助了多少个村?", "它们有多少个班级参与?", "How much did it cost?", "What about the school?",
])
def test_the_model_takes_pronouns_and_ellipses_as_followups(question: str) -> None:
    res = resolve(question, ABOUT_PLAN)
    assert res.followup
    assert res.resolved is not None and res.resolved.startswith("澄远·火种计划")


def test_an_ellipsis_naming_its_own_subject_is_a_followup_about_it() -> None:
    res = resolve("那朝南社区基层阵地项目呢?", ABOUT_PLAN)
    assert res.followup and res.subject == "朝南社区基层阵地项目"


@pytest.mark.parametrize("question", [
    "霍城县江苏医院综合病房大楼总投资多少?", "江阴组织实施了什么人才计划?",
    "How many students took part in the exchange?",
    "What year was Huocheng designated a pilot county for aid to Xinjiang?",
])
def test_questions_that_name_their_own_subject_start_fresh(question: str) -> None:
    assert not resolve(question, ABOUT_PLAN).followup


def test_a_proper_name_without_a_pronoun_makes_no_reading_with_the_old_subject() -> None:
    """「霍城县的总人口是多少?」 after a question about a hospital in 霍城县 is about the
    county: no form with the hospital is read (it was answered 1.4亿元 from one). A
    question that names nothing, or points back while naming a place, still is."""
    hospital = [Turn("霍城县江苏医院综合病房大楼总投资多少?", "", "",
                     subject="霍城县江苏医院综合病房大楼")]
    assert resolve("霍城县的总人口是多少?", hospital).resolved is None
    assert resolve("Where is Huocheng County?", hospital).resolved is None
    orchestra = [Turn("天华民乐团是在哪里成立的?", "", "", subject="天华民乐团")]
    assert resolve("第一批学员有多少人?", orchestra).resolved is not None
    assert resolve("它在霍城县的哪所学校?", orchestra).resolved is not None


def test_a_question_without_history_or_naming_the_subject_has_nothing_to_resolve() -> None:
    assert resolve("它帮助了多少个村?", []).resolved is None
    assert resolve("澄远·火种计划帮助了多少个村?", ABOUT_PLAN).resolved is None


def test_subjects_are_the_questions_own_noun_phrase() -> None:
    assert subject_of("天华民乐团是在哪里成立的?") == "天华民乐团"
    assert subject_of("霍城县江苏医院综合病房大楼总投资多少?") == "霍城县江苏医院综合病房大楼"
    assert subject_of("How much is a blood test at Harbour Street Clinic?") \
        == "blood test Harbour Street Clinic"
    assert topic_of("澄远·火种计划是什么?") == "澄远·火种计划"


def test_followups_do_not_pile_up_over_a_conversation() -> None:
    """Each follow-up is resolved against one earlier subject, never an expanded query:
    the fourth turn's query holds no word of the first three questions."""
    turns = replay(["它建设了多少个文化广场?", "天华民乐团是在哪里成立的?", "首批学员有多少人?",
                    "他们学的是什么乐器?", "那二胡呢?"])
    assert [t.subject for t in turns[1:]] == ["天华民乐团"] * 3 + ["二胡"]
    for t in turns[2:]:
        assert t.resolved is not None and "文化广场" not in t.resolved
        assert "首批" not in (t.resolved or "") or t.question.startswith("首批")
    # a question in another language that names its own subject starts fresh
    switched = replay(["天华民乐团是在哪里成立的?",
                       "When did Huocheng become a regular county for aid?"])
    assert not switched[1].followup
    assert switched[1].subject == "Huocheng become regular county aid"
    # an ellipsis naming a new subject moves on to it; a pronoun after it means the new one
    moved = replay(["江阴初级中学总投资多少?", "那朝南社区基层阵地项目呢?", "它被评为什么?"])
    assert moved[1].resolved == "总投资 那朝南社区基层阵地项目呢?"
    assert moved[1].added == "总投资"  # what the answer says it assumed, not the old subject
    assert moved[2].resolved == "朝南社区基层阵地项目 它被评为什么?"


@pytest.mark.parametrize(("conversation", "resolved", "added", "subject"), [
    (["What temperature is the Oolong setting on the K3 kettle?", "And the Green setting?"],
     "What temperature is the Green setting on the K3 kettle?", "temperature K3 kettle",
     "Green setting"),
    (["What does error code E14 mean?", "And E22?"],
     "What does error code E22 mean?", "error code mean", "E22"),
    (["How much is the Plus plan per month?", "And the Premium plan?"],
     "How much is the Premium plan per month?", "per month", "Premium plan"),
    (["How much is a blood test?", "How long does it take?", "What about an X-ray?"],
     "How long does X-ray take?", "long take", "X-ray"),
    # one thing named before: the new one takes its place (nothing else carried over)
    (["How much is a blood test?", "And an ECG?"], "How much is a ECG?", None, "ECG"),
])
def test_an_english_ellipsis_takes_the_place_of_what_it_parallels(
        conversation: list[str], resolved: str, added: str | None, subject: str) -> None:
    """"And the Green setting?" asks the earlier question of a new subject: the answer
    names what it carried over, never the old subject (the Oolong setting)."""
    last = replay(conversation)[-1]
    assert (last.followup, last.resolved, last.added, last.subject) == (
        True, resolved, added, subject)
    # and the next pronoun means the new subject
    after = replay([*conversation, "Is it available in black?"])[-1]
    assert after.resolved is not None and after.resolved.startswith(subject)


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


def test_turns_keep_subject_and_rating_and_sessions_list_newest_first(
        open_store: Callable[[], SessionBackend]) -> None:
    store = open_store()
    first = store.append("a", Turn("天华民乐团是在哪里成立的?", "q", "霍城县江阴小学 [1]", [C1],
                                   subject="天华民乐团", short="霍城县江阴小学"))
    store.append("b", Turn("other", "other", "x"))
    second = store.append("a", Turn("首批学员有多少人?", "q", "30名 [1]", [C1],
                                    subject="天华民乐团", short="30名"))
    assert first is not None and second is not None
    assert store.rate("a", first, 1) and store.rate("a", second, -1)
    assert not store.rate("b", first, 1)  # another chat's turn: nothing rated
    again = open_store()
    listed = again.sessions(10)
    assert [s.id for s in listed] == ["a", "b"]
    assert listed[0].turns == 2 and listed[0].last_question == "首批学员有多少人?"
    assert [s.id for s in again.sessions(1)] == ["a"]
    shown = again.transcript("a")
    assert [(t.subject, t.rating, t.short) for t in shown] == [
        ("天华民乐团", 1, "霍城县江阴小学"), ("天华民乐团", -1, "30名")]
    assert [(s, t.id) for s, t in again.rated()] == [("a", first), ("a", second)]
    assert again.transcript("missing") == []


def test_rated_turns_export_as_an_evaluation_set(tmp_path: Path) -> None:
    from bot.evaluation import load_testset
    from bot.feedback import rated_items, write_jsonl

    store = SessionStore(tmp_path / "s.sqlite3")
    ids = [store.append("c", Turn(q, q, a, cites, short=short)) for q, a, cites, short in [
        ("天华民乐团是在哪里成立的?", "霍城县江阴小学 [1]", [C1], "霍城县江阴小学"),
        ("首批学员有多少人?", "30名 [1]", [C1], "30名"),
        ("它有多少名员工?", "文档中没有找到这个问题的答案。", [], "")]]
    for turn_id, rating in zip(ids, (1, -1, 1), strict=True):
        assert turn_id is not None and store.rate("c", turn_id, rating)
    items = rated_items(store.rated(), {"c": store.transcript("c")}, history_turns=6)
    assert [(i["type"], i["answers"], i["history"]) for i in items] == [
        ("rated-good", ["霍城县江阴小学"], []),
        ("rated-bad", [], ["天华民乐团是在哪里成立的?"]),
        ("rated-unanswerable", [], ["天华民乐团是在哪里成立的?", "首批学员有多少人?"])]
    assert items[1]["needs_gold"] and items[1]["bot_answer"] == "30名 [1]"
    path = tmp_path / "rated.jsonl"
    write_jsonl(items, path)
    loaded = load_testset(path)  # the 👎 turn waits for its gold answer
    assert loaded.needs_gold == 1
    assert [(i.answers, i.history) for i in loaded.items] == [
        (["霍城县江阴小学"], ()), ([], ("天华民乐团是在哪里成立的?", "首批学员有多少人?"))]
