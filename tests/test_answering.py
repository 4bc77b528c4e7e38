"""How the rule answerer (``answer.answerer = none``, the fallback) picks and presents evidence.

Hashing embedder and a real on-disk Chroma: the dense side carries little meaning here,
so these check the lexical and structural rules (a title scopes its document, a
sentence that points back brings the one before it, quotes stay contiguous, asked-for
units). Refusal thresholds are switched off where a test is about choosing evidence,
not about refusing; refusal itself is calibrated and measured on the real embedder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings

from bot.embeddings import make_embeddings
from bot.engine import Engine
from bot.ingest import ingest
from bot.sessions import SessionStore

DOCS = {
    "park.md": "# 乍都节公园\n"
               "乍都节公园位于泰国首都曼谷的乍都节县，是一处公众游园地。\n"
               "它的面积约为0.304平方公里，园内有一个人工湖。\n",
    "bamboo.md": "# 玉山箭竹\n"
                 "玉山箭竹是台湾特有的竹子，生长在高海拔的山区，常见于玉山一带。\n"
                 "又名玉山矢竹、高山云竹、箭竹仔。\n"
                 "其茎干直径0.5至2公分。\n",
    "baobab.md": "# 猴面包树\n"
                 "猴面包树的果实富含钙质，维生素C含量是橙子的三倍。"
                 "因此它有时也被称为超级水果。\n"
                 "猴面包树的树干可以储存大量的水。\n",
    "county.md": "# 霍城县\n"
                 "全县安排资金400余万元，扶持特色产业发展。\n"
                 "2008年，全县人口约33,700人。\n"
                 "当地的湖泊长约15至20公里。\n",
    "lease.md": "# 房屋租赁合同\n\n## 第三条 租金及支付方式\n\n"
                "月租金为3200元，每月5日前通过银行转账支付。\n",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root: Path = tmp_path_factory.mktemp("answering")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, "utf-8")
    settings = make_settings(root / "state", docs, **{
        "embeddings.backend": "hashing", "answer.answerer": "none",
        "answer.refusal_threshold": -10.0, "answer.cross_lingual_threshold": -10.0})
    embeddings = make_embeddings(settings.embeddings)
    ingest(settings, [docs], embeddings)
    return Engine(settings, embeddings=embeddings, sessions=SessionStore(":memory:"))


def quoted(answer) -> list[str]:
    """The quoted lines of an answer, without their citation markers."""
    return [line.rsplit(" [", 1)[0] for line in answer.answer.splitlines()]


def test_a_title_scopes_the_sentences_of_its_document(engine: Engine) -> None:
    # the sentence that answers never names 乍都节公园; the title of its document does
    a = engine.answer("乍都节公园的面积是多少?")
    assert not a.refused
    assert a.short_answer == "0.304平方公里"
    assert a.evidence.text == "它的面积约为0.304平方公里，园内有一个人工湖。"
    assert a.citations[0].source.endswith("park.md")


def test_the_sentence_naming_what_was_asked_wins_over_the_topic_sentence(
        engine: Engine) -> None:
    a = engine.answer("玉山箭竹又名什么?")
    assert a.evidence.text == "又名玉山矢竹、高山云竹、箭竹仔。"
    assert a.citations[0].source.endswith("bamboo.md")


def test_a_sentence_that_points_back_is_quoted_with_the_one_before(engine: Engine) -> None:
    a = engine.answer("为什么猴面包树被称为超级水果?")
    assert a.evidence.text == "因此它有时也被称为超级水果。"
    # one contiguous quote, as the document has it, so the reason is on the page
    assert quoted(a)[0].startswith(
        "猴面包树的果实富含钙质，维生素C含量是橙子的三倍。因此它有时也被称为超级水果。")
    # sentences on separate lines of the document still read as one quote
    a = engine.answer("乍都节公园的面积是多少?")
    assert quoted(a)[1] == ("乍都节公园位于泰国首都曼谷的乍都节县，是一处公众游园地。"
                            "它的面积约为0.304平方公里，园内有一个人工湖。")


def test_numbers_with_separators_and_ranges_are_whole_short_answers(engine: Engine) -> None:
    assert engine.answer("2008年霍城县的人口有多少人?").short_answer == "约33,700人"
    assert engine.answer("霍城县的湖泊有多少公里长?").short_answer == "约15至20公里"


def test_a_count_in_the_asked_unit_or_none(engine: Engine) -> None:
    # 400余万 is a count, but not of 亩: the documents do not say how many 亩
    a = engine.answer("霍城县种植了多少亩?")
    assert a.refused
    assert a.short_answer is None and not a.citations
    assert engine.answer("霍城县安排了多少资金?").short_answer == "400余万元"


def test_a_heading_is_never_the_quoted_evidence(engine: Engine) -> None:
    """A Markdown heading names a section; the sentence under it is what states the
    fact, even when the question repeats the heading's words."""
    answer = engine.answer("第三条租金及支付方式是什么?")
    assert not answer.refused
    assert quoted(answer) and not any(line.lstrip().startswith("#") for line in quoted(answer))
    assert any("3200元" in line for line in quoted(answer))
