"""The Chinese keyword form of English questions (bot/bridge.py): a glossary built from
CC-CEDICT lines, kept to an index's vocabulary. No index or model needed."""

from __future__ import annotations

import pytest

from bot import bridge

# real CC-CEDICT entries (the format the package ships), a few of them ambiguous
LINES = [
    "# CC-CEDICT",
    "# License: Creative Commons Attribution-ShareAlike 4.0 International License",
    "縣 县 [xian4] /county/",
    "試點 试点 [shi4 dian3] /test point/to carry out trial/pilot scheme/",
    "霍城 霍城 [Huo4 cheng2] /Huocheng county in Ili, Xinjiang/",
    "新疆 新疆 [Xin1 jiang1] /Xinjiang/",
    "項目 项目 [xiang4 mu4] /item/project/(sports) event/CL:個|个[ge4]/",
    "計劃 计划 [ji4 hua4] /plan/project/program/to plan/",
    "投影 投影 [tou2 ying3] /to project/a projection/",
    "產業 产业 [chan3 ye4] /industry/estate/property/industrial/",
    "開工 开工 [kai1 gong1] /to begin work (of a factory or engineering operation)/to "
    "start a construction job/",
    "工作日 工作日 [gong1 zuo4 ri4] /workday/working day/weekday/",
    "發票 发票 [fa1 piao4] /invoice/receipt or bill for purchase/",
    "電纜 电缆 [dian4 lan3] /cable/cable line/",
    "王 王 [Wang2] /surname Wang/",
]
VOCAB = {"县", "试点", "霍城", "新疆", "项目", "计划", "投影", "产业", "开工", "工作日",
         "发票", "电缆", "王", "援疆"}
FREQUENCY = {"项目": 9, "计划": 3, "投影": 0}


@pytest.fixture
def glossary() -> bridge.Glossary:
    return bridge.build(LINES, VOCAB, lambda t: FREQUENCY.get(t, 1))


def test_an_english_question_becomes_chinese_keywords_and_its_interrogative(glossary) -> None:
    # a word with no Chinese in the index stays as written ("made", "aid")
    assert glossary.bridge("When was Huocheng made a pilot county for Xinjiang aid?") \
        == "霍城 新疆 made 试点 县 aid 什么时候?"


def test_the_interrogative_need_not_open_the_question(glossary) -> None:
    assert glossary.bridge("In what year was Huocheng made a pilot county?").endswith(
        "哪一年?")


def test_an_ambiguous_word_prefers_the_sense_the_documents_use(glossary) -> None:
    # "project": 项目 (9 chunks) before 计划 (3); 投影 never used, and only two kept;
    # "started" finds 开工 through part of a gloss ("to start a construction job")
    assert glossary.bridge("How many industrial projects started?") \
        == "产业 项目 计划 开工 多少个?"


def test_phrases_plurals_and_codes(glossary) -> None:
    assert glossary.bridge("How many working days until the receipts for R5 are due?") \
        == "工作日 until 发票 due R5 多少个?"


def test_hyphenated_names_are_looked_up_one_by_one(glossary) -> None:
    assert "霍城 新疆" in (glossary.bridge("Where is the Huocheng-Xinjiang cable?") or "")


def test_only_words_the_index_holds_are_used() -> None:
    small = bridge.build(LINES, {"县"})
    assert small.bridge("When was Huocheng made a pilot county?") \
        == "huocheng made pilot 县 什么时候?"
    assert small.bridge("What is a project?") is None  # no word of it in the index


def test_chinese_questions_and_unknown_words_get_no_form(glossary) -> None:
    assert glossary.bridge("霍城县什么时候成为援疆试点县?") is None
    assert glossary.bridge("What does the kettle's descaling light mean?") is None


def test_surnames_are_not_translations_and_parentheses_are_dropped(glossary) -> None:
    assert glossary.bridge("Who has the surname?") is None  # 王's only sense
    assert glossary.bridge("Who is Wang?") == "王 谁?"  # as a name, by its pinyin
    # 项目's "(sports) event" is "event"
    assert glossary.bridge("Which event?") == "项目 哪个?"


def test_an_index_without_chinese_gets_an_empty_glossary() -> None:
    vocabulary = {"kettle", "descale"}
    assert not bridge.glossary_for(vocabulary)
    assert bridge.glossary_for(vocabulary) is bridge.glossary_for(vocabulary)


def test_the_packaged_dictionary_loads_and_bridges() -> None:
    glossary = bridge.glossary_for({"县", "试点", "霍城", "工作日"})
    assert glossary.bridge("When was Huocheng made a pilot county?") \
        == "霍城 made 试点 县 什么时候?"


def test_how_long_asks_for_a_duration_or_a_length_as_the_english_does() -> None:
    g = bridge.build(["咨詢 咨询 [zi1 xun2] /to consult/consultation/",
                      "電纜 电缆 [dian4 lan3] /cable/"], {"咨询", "电缆"})
    assert g.bridge("How long does a general consultation take?") == "general 咨询 take 多久?"
    assert g.bridge("How long is the cable?") == "电缆 多长?"


def test_chinese_already_in_a_resolved_question_stays(glossary) -> None:
    # a follow-up resolved with an earlier Chinese subject keeps it in its keyword form
    assert glossary.bridge("江阴初级中学 How many industrial projects started?") \
        == "江阴初级中学 产业 项目 计划 开工 多少个?"


# ----- the reverse bridge: Chinese questions about English text --------------------------
EN_LINES = [
    "泵 泵 [beng4] /pump (loanword)/",
    "壓力 压力 [ya1 li4] /pressure/",
    "水箱 水箱 [shui3 xiang1] /water tank/radiator (of engine)/",
    "保修 保修 [bao3 xiu1] /to promise to keep sth in good repair/guarantee/warranty/",
    "代碼 代码 [dai4 ma3] /code/",
    "碼 码 [ma3] /weight/number/code/",
    "錯誤 错误 [cuo4 wu4] /error/mistake/CL:個|个[ge4]/",
    "年假 年假 [nian2 jia4] /annual leave/New Year holidays/",
    "公司 公司 [gong1 si1] /company/firm/corporation/",
    "一共 一共 [yi1 gong4] /altogether/",
    "名 名 [ming2] /name/noun (part of speech)/place (e.g. among winners)/",
    "倫敦 伦敦 [Lun2 dun1] /London/",
]
EN_VOCAB = {"pump", "pressure", "water", "tank", "tanks", "warranty", "code", "codes",
            "error", "annual", "leave", "place", "london", "the", "of"}


@pytest.fixture
def reverse() -> bridge.Glossary:
    return bridge.Glossary({}, {}, bridge.build_english(EN_LINES, EN_VOCAB))


def test_a_chinese_question_becomes_english_keywords_and_its_interrogative(reverse) -> None:
    assert reverse.bridge_to_english("K2的水箱有多大?") == "how big water tank K2?"
    assert reverse.bridge_to_english("错误代码E22是什么意思?") \
        == "what does mean error code E22?"  # 代码 whole, not 码's "weight"
    assert reverse.bridge_to_english("年假有多少天?") == "how many days annual leave?"


def test_only_senses_the_index_holds_every_word_of_are_used(reverse) -> None:
    # 保修's first senses have words the index lacks; "warranty" is the one it holds
    assert reverse.bridge_to_english("保修期多久?") == "how long warranty?"
    assert "radiator" not in str(reverse.english["水箱"])
    assert "伦敦" not in reverse.english  # a name, not a translation


def test_a_question_mostly_left_untranslated_gets_no_english_form(reverse) -> None:
    # only 名 ("place") of 公司一共名员工 would be English: it would ask something else
    assert reverse.bridge_to_english("公司一共有多少名员工?") is None
    assert reverse.bridge_to_english("What is the pump pressure?") is None  # English


def test_the_reverse_glossary_is_built_only_for_an_index_that_holds_english() -> None:
    chinese_only = {"县", "试点", "霍城", "x2", "r5"}
    assert not bridge.glossary_for(chinese_only).english
    english = {"word" + chr(97 + i // 26) + chr(97 + i % 26)
               for i in range(bridge.ENGLISH_VOCABULARY_MIN)}
    mixed = english | {"pump", "pressure", "县"}
    glossary = bridge.glossary_for(mixed)
    assert glossary.english["压力"] == ("pressure",)
    assert glossary.bridge_to_english("泵的压力是多少?") == "what is pump pressure?"
