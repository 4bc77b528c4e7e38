"""Headline length (bot/span_length.py): the question's bucket, the bias it gets, the
committed file and its provenance, the fit in train/span_length.py on made-up rows, and
the reader's spans growing with the bias on real text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.answerers.trained import whole_quotes, whole_words, without_particle
from bot.errors import ReaderError
from bot.reader import Reader
from bot.span_length import SPANS_PATH, SpanLengths, bucket, load_span_lengths
from train.span_length import CLAUSE_GRID, GRID, MIN_BUCKET, PAIRS, apply, fit


@pytest.mark.parametrize(("question", "expected"), [
    ("霍城县江苏医院综合病房大楼总投资多少?", "money"),
    ("2002年霍城县被确定为什么?", "what"),
    ("霍城县是什么时候被确定为援疆试点县的?", "date"),
    ("英国音乐由哪些主要的民族组成?", "list"),
    ("白荡湖是怎样形成的?", "how"),
    ("科朗特为什么退伍?", "why"),
    ("谁在霍城县江阴小学成立了天华民乐团?", "who"),
    ("天华民乐团是在哪里成立的?", "place"),
    ("首批学员有多少人?", "count"),
])
def test_each_question_falls_in_one_bucket(question: str, expected: str) -> None:
    assert bucket(question) == expected


def test_the_costs_are_the_buckets_and_none_for_a_form_without_chinese() -> None:
    spans = SpanLengths({"what": 0.2, "how": 2.0}, {"what": 1.0})
    assert spans.costs_for("白荡湖是怎样形成的?", "白荡湖是怎样形成的?") == (2.0, 0.0)
    # a bucket without its own costs takes the "what" ones
    assert spans.costs_for("首批学员有多少人?", "首批学员有多少人?") == (0.2, 1.0)
    # 「那…呢?」 asks what the form it is read in asks
    assert spans.costs_for("那第二个项目呢?", "第二个项目 它是怎样建成的? 那第二个项目呢?") == (
        2.0, 0.0)
    # an ellipsis asks for what the question it shortens asked for
    spans = SpanLengths({"what": 0.2, "how": 2.0, "count": 0.05}, {"what": 1.0})
    assert spans.costs_for("部门对口交流呢?", "两地党政代表团 部门对口交流呢?",
                           like="两地党政代表团互访了几次?") == (0.05, 0.0)
    # nothing fitted them on English: an English question, or a Chinese question read as
    # English keywords, keeps the reader's own edges
    assert spans.costs_for("How was the lake formed?", "How was the lake formed?") == (0, 0)
    assert spans.costs_for("K2的售价是多少?", "what is the price K2?") == (0.0, 0.0)


def test_the_committed_costs_name_their_data_and_are_on_the_grid() -> None:
    spans = load_span_lengths()
    card = json.loads(SPANS_PATH.read_text("utf-8"))
    about = json.dumps(card["provenance"], ensure_ascii=False)
    assert "outside the held-out titles" in card["provenance"]["fitted_on"]
    assert "held-out titles" in card["provenance"]["chosen_on"]
    assert "trial" not in about and "seed_testset" not in about
    assert set(spans.bias.values()) <= set(GRID)
    assert set(spans.clause_cost.values()) <= set(CLAUSE_GRID)


def test_the_headline_branch_places_only_the_buckets_chosen_for_it() -> None:
    spans = SpanLengths({"what": 0.1, "place": 0.15, "count": 0.0}, {"what": 100.0},
                        frozenset({"place", "what"}))
    assert spans.reads_headline("天华民乐团是在哪里成立的?", "天华民乐团是在哪里成立的?")
    assert not spans.reads_headline("首批学员有多少人?", "首批学员有多少人?")
    # a bucket without costs of its own takes the "what" ones, and so the "what" head
    assert spans.reads_headline("科朗特为什么退伍?", "科朗特为什么退伍?")
    # an ellipsis reads with the head of the question it shortens
    assert not spans.reads_headline("部门对口交流呢?", "两地党政代表团 部门对口交流呢?",
                                    like="两地党政代表团互访了几次?")
    # English, asked or read as keywords, keeps the reader's own edges
    assert not spans.reads_headline("Where was it founded?", "Where was it founded?")
    assert not spans.reads_headline("它在哪里成立?", "where founded orchestra?")


@pytest.mark.parametrize("content", [None, "{not json", '{"version": 99, "bias": {}}',
                                     '{"version": 1, "bias": {"what": "wide"}}',
                                     '{"version": 1, "bias": {"what": NaN}}',
                                     '{"version": 1, "bias": {}, "clause_cost": []}',
                                     '{"version": 1, "bias": {"what": 0.1}, '
                                     '"headline": ["who"]}'])
def test_a_missing_or_damaged_file_is_a_clear_error(tmp_path: Path,
                                                    content: str | None) -> None:
    path = tmp_path / "spans.json"
    if content is not None:
        path.write_text(content, "utf-8")
    with pytest.raises(ReaderError, match=r"fitted_span_length = false"):
        load_span_lengths(path)


def _row(bucket_name: str, best: tuple[float, float]) -> dict[str, object]:
    """A made-up question whose F1 and EM peak at the costs ``best``."""
    k = PAIRS.index(best)
    n = len(PAIRS)
    return {"bucket": bucket_name, "f1": [max(0.0, 1.0 - 0.1 * abs(i - k)) for i in range(n)],
            "em": [float(i == k) for i in range(n)]}


def test_the_fit_finds_each_buckets_best_costs_and_pools_small_buckets() -> None:
    rows = ([_row("how", (2.0, 0.0)) for _ in range(MIN_BUCKET)]
            + [_row("what", (0.2, 4.0)) for _ in range(MIN_BUCKET)]
            + [_row("date", (0.0, 0.0)) for _ in range(MIN_BUCKET - 1)])  # too few: pooled
    costs = fit(rows)
    assert costs == {"what": (0.2, 4.0), "how": (2.0, 0.0)}
    assert apply(rows, costs)["em"] == pytest.approx(2 * MIN_BUCKET / len(rows), abs=1e-4)
    assert set(fit(rows, pooled=True)) == {"what"}
    # without clause costs the "what" bucket settles for its best bias alone
    assert all(c == 0.0 for _, c in fit(rows, clauses=(0.0,)).values())
    # a value's headline keeps the reader's edges whatever its data says
    counts = [_row("count", (2.0, 0.0)) for _ in range(MIN_BUCKET)]
    assert fit(rows + counts)["count"] == (0.0, 0.0)


@pytest.mark.parametrize(("text", "span", "whole"), [
    ("农牧民住房改建“两居工程”,改善居住条件", "改建“两居工程", "改建“两居工程”"),
    ("成立“天华民乐团”,培训", "天华民乐团”", "“天华民乐团”"),
    ("编排歌舞剧《汉家公主》、舞台剧", "歌舞剧《汉家", "歌舞剧《汉家公主》"),
    ("总投资1.4亿元（含设备）", "1.4亿元", "1.4亿元"),  # nothing cut in two: as it is
    ("他说“" + "很" * 30 + "”", "他说“很", "他说“很"),  # the close too far: as it is
])
def test_a_headline_does_not_cut_a_quotation_in_two(text: str, span: str, whole: str) -> None:
    start = text.index(span)
    got = whole_quotes(text, start, start + len(span))
    assert text[slice(*got)] == whole


@pytest.mark.slow
def test_a_larger_bias_gives_a_longer_span_and_the_same_margin() -> None:
    """On the real reader: the margin every decision reads does not move with the bias,
    and the span grows with it (to the whole clause at the largest)."""
    reader = Reader()
    text = "英国音乐由四个主要民族组成，分别是英格兰、苏格兰、威尔斯与北爱尔兰。"
    target = [(0, 0, len(text))]
    got = {b: reader.read_around("英国音乐由哪些主要的民族组成?", [text], target, 96,
                                 length_bias=b)[0][1] for b in (0.0, 0.5, 3.0)}
    lengths = [got[b].end - got[b].start for b in (0.0, 0.5, 3.0)]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    assert got[0.0].score == pytest.approx(got[3.0].score)
    # a prohibitive cost per clause end keeps the longest span inside one clause
    kept = reader.read_around("英国音乐由哪些主要的民族组成?", [text], target, 96,
                              length_bias=3.0, clause_cost=100.0)[0][1]
    assert "，" not in text[kept.start:kept.end].strip("，。")


@pytest.mark.parametrize(("text", "span", "said"), [
    ("上地雄辅是日本的男演员。", "日本的", "日本"),  # 的 ties it to what follows
    ("乙方逾期支付租金超过15日的，甲方有权解除合同。", "15日的", "15日"),
    ("两种植物都是为纪念他而命名的。", "都是为纪念他而命名的", "都是为纪念他而命名的"),  # 是…的
    ("他的书。", "的", "的"),  # nothing left without it: as it is
])
def test_a_headline_does_not_end_on_the_particle_de(text: str, span: str, said: str) -> None:
    start = text.index(span)
    assert text[start:without_particle(text, start, start + len(span))] == said


@pytest.mark.parametrize(("text", "span", "said"), [
    # the reader's tokens are word pieces: "Years" is 「▁Year」 + 「s」
    ("have attained to the Age of twenty five Years, and", "twenty five Year",
     "twenty five Years"),
    ("a Senator for six Years", "ix Year", "six Years"),
    ("冷湖镇的GDP4.8亿元", "4.8亿元", "4.8亿元"),  # a letter beside a digit may part
    ("于2002年5月成为试点县", "02年", "2002年"),  # a number is a word; 年 is not joined
    ("霍城县江阴小学成立", "霍城县", "霍城县"),  # Chinese: any two characters may part
    ("E31 | Fan failure", "Fan failure", "Fan failure"),  # whole already: as it is
])
def test_a_headline_does_not_stop_inside_a_word(text: str, span: str, said: str) -> None:
    start = text.index(span)
    assert text[slice(*whole_words(text, start, start + len(span)))] == said


def test_the_headline_branch_places_the_edges_and_leaves_every_decision() -> None:
    """On the real reader: the committed costs were fitted on the logits the shipped
    graph gives a headline; with the branch, a Chinese question's words are the best span
    of the branch's channels and its margin is the reader head's."""
    from conftest import SEED

    from bot.chunking import units
    from bot.reader import best_span, clause_ends

    reader = Reader()
    spans = load_span_lengths()
    assert reader.has_headline == bool(spans.headline)
    assert not spans.reads_headline("Who founded the orchestra?",
                                    "Who founded the orchestra?")  # English: own edges
    text = SEED.read_text("utf-8")[:600]
    targets = [(0, u.start, u.end) for u in units(text, "")][:6]
    for question in ("天华民乐团是在哪里成立的?", "霍城县被确定为什么?", "首批学员有多少人?"):
        bias, cost = spans.costs_for(question, question)
        plain = reader.read_around(question, [text], targets, 96, 4, bias, cost)
        branch = reader.read_around(question, [text], targets, 96, 4, bias, cost,
                                    headline=spans.reads_headline(question, question))
        logits = reader.around_logits(question, [text], targets, 96,
                                      headline=spans.reads_headline(question, question))
        assert [t for t, _ in branch] == [t for t, _ in plain] == [x[0] for x in logits]
        for (_, p), (_, b), (_, w, a, z, s, e) in zip(plain, branch, logits, strict=True):
            assert b.score == pytest.approx(p.score)
            # the next spans (a wrong type's fallbacks) stay off the headline
            assert all(end <= b.start or start >= b.end for start, end, _ in b.others)
            i, j, _ = best_span(s, e, a, z, reader.max_answer_tokens, bias, cost,
                                clause_ends(text, w))
            assert (b.start, b.end) == (w.starts[i], w.ends[j])
