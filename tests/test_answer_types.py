"""Headline types (bot/answer_types.py): what counts as an answer of the asked kind."""

from __future__ import annotations

import pytest

from bot.answer_types import (
    agrees,
    asked_kind,
    range_part,
    whole_date,
    whole_place,
    with_title,
)
from bot.features import question_type


@pytest.mark.parametrize(("question", "kind"), [
    ("When was Huocheng made a pilot county for Xinjiang aid?", "date"),
    ("霍城县江苏医院综合病房大楼总投资多少?", "money"),
    ("How much does the Ridgeline R5 cost?", "money"),
    ("首批学员有多少人?", "tally"),  # a count of people: never an amount of money
    ("霍城县薰衣草的种植面积有多少亩?", "tally"), ("How many hospital beds are there?", "tally"),
    ("how many dollars did it raise?", "count"), ("人口增长了多少?", "count"),

    ("文章提到了哪几个组团?", "list"),
    ("天华民乐团是在哪里成立的?", "place"),
    ("他们学的是什么乐器?", None),
    ("How long does a full jug take to boil?", "duration"),
    ("How long is the base cable?", "count"),
    # a price or a fee is money, in either language
    ("K2的售价是多少?", "money"), ("挂号费用是多少?", "money"),
    ("What is the price of the Northwind K2?", "money"), ("Are there any fees?", "money"),
    # a weight wants a unit of mass; ranking by weight asks for the thing, not a weight
    ("How heavy is the Northwind K2?", "weight"), ("R5有多重?", "weight"),
    ("How much does it weigh?", "weight"), ("哪个车型在序列中重量排在第一?", None),
])
def test_the_kind_asked_for(question: str, kind: str | None) -> None:
    assert asked_kind(question, question_type(question)) == kind


@pytest.mark.parametrize(("kind", "text", "ok"), [
    ("date", "2002年", True), ("date", "清朝末年", True), ("date", "霍城县", False),
    ("date", "in the spring of 1998", True),
    ("money", "1.4亿元", True), ("money", "8000万", True), ("money", "28 EUR", True),
    ("money", "five-year", False), ("money", "1,024 Wh", False),
    ("count", "30名", True), ("count", "两名", True), ("count", "seven", True),
    ("count", "社区", False),
    ("percent", "80%", True), ("percent", "百分之三十", True), ("percent", "1.4亿元", False),
    ("list", "12个", False), ("list", "教育组团、医疗组团", True),
    (None, "anything", True), ("place", "霍城县", True), ("date", "", False),
    ("duration", "about 4 minutes", True), ("duration", "1.7 litre", False),
    ("duration", "15个工作日", True),
    ("weight", "6.4 kg", True), ("weight", "13.2公斤", True), ("weight", "two years", False),
    ("weight", "1,450 W", False), ("weight", "about 3 pounds", True),
    ("tally", "30名", True), ("tally", "400余万亩", True), ("tally", "400余万元", False),
    ("tally", "8000万元", False), ("tally", "社区", False),
])
def test_what_agrees_with_a_kind(kind: str | None, text: str, ok: bool) -> None:
    assert agrees(kind, text) is ok


def test_a_place_runs_on_to_the_whole_name() -> None:
    text = "特色组团方面,在霍城县江阴小学成立“天华民乐团”"
    start = text.index("霍城县")
    assert text[start:whole_place(text, start + 3)] == "霍城县江阴小学"
    # a name already whole, or followed by punctuation or a verb, stays as it is
    done = text.index("天华民乐团")
    assert whole_place(text, done + 5) == done + 5
    assert whole_place("在北京成立", 3) == 3


@pytest.mark.parametrize(("sentence", "amount"), [
    ("The Northwind K2 costs $499 in the EU shop.", "$499"),
    ("A night in a class 1 city is 45 EUR at most.", "45 EUR"),
    ("总投资1.4亿元。", "1.4亿元"),
    ("It is covered for two years.", None),
])
def test_amounts_of_money_in_either_language_are_found(sentence: str, amount: str | None
                                                        ) -> None:
    from bot.features import typed_spans

    found = [m.group(0) for m in typed_spans("money", sentence, "")]
    assert found == ([amount] if amount else [])


@pytest.mark.parametrize(("headline", "question", "part"), [
    ("2027年3月1日起至2028年2月29日", "租期到什么时候结束?", "2028年2月29日"),
    ("2027年3月1日起至2028年2月29日", "租期从什么时候开始?", "2027年3月1日"),
    ("9:00-12:00", "周日上午几点开门?", "9:00"),
    ("13:00-17:30", "周日下午几点关门?", "17:30"),
    ("7:00–22:00", "What time does the gym close on Friday?", "22:00"),
    ("7:00 to 22:00", "When does it open on Monday?", "7:00"),
    # the range itself is asked for, or no start or end is
    ("2027年3月1日起至2028年2月29日", "租期是多久?", "2027年3月1日起至2028年2月29日"),
    ("13:00-17:30", "下午的开放时间是什么?", "13:00-17:30"),
    ("15至20公里", "湖泊长约多少?", "15至20公里"),
    # no range: a date written with hyphens, years, two clauses
    ("2020-01-05", "活动何时结束?", "2020-01-05"),
    ("1914-1918", "战争什么时候结束?", "1914-1918"),
    ("1月15日起调整，至2月20日结束", "安排到什么时候结束?", "1月15日起调整，至2月20日结束"),
    ("2008年至2009年英格兰超级联赛于2008年8月16日", "联赛是什么时候开始的？",
     "2008年至2009年英格兰超级联赛于2008年8月16日"),  # a phrase, not a value
])
def test_a_range_gives_the_end_or_start_asked_for(headline: str, question: str,
                                                 part: str) -> None:
    text = f"【{headline}】"
    start, end = range_part(text, 1, 1 + len(headline), question)
    assert text[start:end] == part


@pytest.mark.parametrize(("text", "span", "question", "said"), [
    ("Delivered by Abraham Lincoln on November 19, 1863, at the cemetery", "1863",
     "When did Lincoln deliver the address?", "November 19, 1863"),
    ("ratified on 15 December 1791.", "1791", "When was it ratified?", "15 December 1791"),
    ("opened in March 2004 downtown", "2004", "When did it open?", "March 2004"),
    ("该县于2002年5月被列为试点县", "2002年", "该县什么时候被列为试点县?", "2002年5月"),
    ("于2014年10月8日正式开工", "10月8日", "何时开工?", "2014年10月8日"),
    # the year or the month alone asked for: that part only
    ("on November 19, 1863, at", "1863", "In what year was the address given?", "1863"),
    ("该县于2002年5月被列为试点县", "2002年", "该县哪一年被列为试点县?", "2002年"),
    # no whole date around the span: as it is
    ("它建于1995年，扩建于2003年", "1995年", "它什么时候建成?", "1995年"),
    ("in 20 May 2019 and 2020", "2020", "When?", "2020"),
])
def test_a_date_headline_is_the_whole_date(text: str, span: str, question: str,
                                          said: str) -> None:
    start = text.index(span)
    assert text[slice(*whole_date(text, start, start + len(span), question))] == said


@pytest.mark.parametrize(("text", "name", "question", "said"), [
    ("《丁丁在美洲》的作者是比利时漫画家埃尔热。", "埃尔热", "作者是谁?", "比利时漫画家埃尔热"),
    ("分析机由英国数学家查尔斯·巴贝奇设计", "查尔斯·巴贝奇", "分析机是谁设计的?",
     "英国数学家查尔斯·巴贝奇"),
    ("钦点Fendi设计师卡尔·拉格斐", "卡尔·拉格斐", "谁钦点了她?", "Fendi设计师卡尔·拉格斐"),
    # no title right before the name, or a word that says no title: the name alone
    ("导演张艺谋执导", "张艺谋", "由谁执导?", "张艺谋"),
    ("旁白由歌手陈绮贞担纲", "陈绮贞", "旁白由谁担纲?", "陈绮贞"),  # a title alone
    ("维修由甲方负责", "甲方", "维修由谁负责?", "甲方"),
    ("作者是比利时漫画家埃尔热。", "埃尔热", "作者是哪国人?", "埃尔热"),  # not "who"
])
def test_a_who_headline_keeps_the_title_written_before_the_name(
        text: str, name: str, question: str, said: str) -> None:
    start = text.index(name)
    assert text[with_title(text, start, question):start + len(name)] == said
