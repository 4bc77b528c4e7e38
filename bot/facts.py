"""Table rows as facts (bot/chunking.py makes them): which cell a question asks for.

A fact reads "header: cell | header: cell …" (or "key: cell | cell" without a header
row). An answerer that picked a fact still has to pick the cell: 「部门负责人在一类城市出差
每晚住宿标准是多少?」 over 「城市类别: 一类城市(…) | 副总经理以上: 900元 | 部门负责人: 650元
| 其他员工: 500元」 asks for the 部门负责人 column, not the first amount; "What is the
battery capacity?" over "Item: Capacity | Value: 1,024 Wh" asks for the value beside
the key the question names. ``asked_cell`` finds that cell's value by the words the
question shares with the headers (or, for a key/value row, with the key).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

from bot import tokens
from bot.chunking import FACT_SEPARATOR, KIND_TABLE

_CELL = re.compile(r"(?:(?P<header>[^|:]{1,40}): )?(?P<value>[^|]*)")
_WORD = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")
# Question words that name no column ("What to do" is a header; "what" asks).
_STOP = frozenset({"a", "an", "the", "is", "are", "was", "were", "be", "do", "does", "did",
                   "of", "for", "in", "on", "at", "to", "by", "with", "what", "which", "who",
                   "whom", "whose", "when", "where", "why", "how", "much", "many", "long",
                   "it", "its", "this", "that", "these", "those", "there", "can", "could", "i",
                   "you", "we", "my", "our", "your"})
STEM = 4  # English words compare by their first letters: "mean" ~ "Meaning"


def _grams(text: str) -> set[str]:
    """Latin words (stemmed, question words dropped) and CJK character pairs."""
    norm = tokens.normalize(text)
    words = [m.group(0) for m in _WORD.finditer(norm)]
    out = {w[:STEM] for w in words if len(w) > 1 and w.isascii() and w not in _STOP}
    cjk = [w for w in words if not w.isascii()]
    out |= {a + b for a, b in itertools.pairwise(cjk)}
    return out


# A code that names one row of a table: E14, R5, A-4, SKU123.
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{1,4}-?\d{1,6}(?![A-Za-z0-9])")


# Days of the week, as a timetable's rows name them: 周三, 星期日, 礼拜天, Wed, Sunday;
# 工作日/weekdays and 周末/weekends for their days. Monday is 0.
_ZH_DAYS = "一二三四五六日天"
_EN_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY = re.compile(r"(?:周|星期|礼拜)(?P<zh>[一二三四五六日天])(?![\u4e00-\u9fff]?岁)"
                  # a day's name in full, or shortened with a capital ("sun", "sat"
                  # and "wed" are words too)
                  r"|\b(?P<en>(?i:mon|tues|wednes|thurs|fri|satur|sun)day"
                  r"|Mon|Tue|Tues|Wed|Thu|Thur|Thurs|Fri|Sat|Sun)\b\.?"
                  r"|(?P<work>工作日|\b(?i:weekdays?)\b)|(?P<end>周末|\b(?i:weekends?)\b)")
# what joins two days into a range: 周二至周五, Mon-Fri, Tuesday to Sunday
_DAY_RANGE = re.compile(r"\s*(?:至|到|-|–|—|~|～|to|through|thru|until)\s*", re.I)
_WORKDAYS, _WEEKEND = frozenset(range(5)), frozenset({5, 6})


def days_named(text: str) -> frozenset[int]:
    """The days of the week ``text`` names, ranges expanded (周二至周五 is Tuesday to
    Friday; 周五至周一 wraps over the weekend)."""
    found: list[tuple[int, int, frozenset[int]]] = []
    for m in _DAY.finditer(text):
        if m.group("zh"):
            day = min(_ZH_DAYS.index(m.group("zh")), 6)
            found.append((m.start(), m.end(), frozenset({day})))
        elif m.group("en"):
            found.append((m.start(), m.end(),
                          frozenset({_EN_DAYS.index(m.group("en")[:3].lower())})))
        else:
            found.append((m.start(), m.end(), _WORKDAYS if m.group("work") else _WEEKEND))
    out: set[int] = set()
    for (_, end, days), (start, _, after) in itertools.pairwise(found):
        if len(days) == len(after) == 1 and _DAY_RANGE.fullmatch(text[end:start]):
            first, last = min(days), min(after)
            out.update((first + k) % 7 for k in range((last - first) % 7 + 1))
    for _, _, days in found:
        out |= days
    return frozenset(out)


def names_another_row(question: str, fact: str, context: str = "") -> bool:
    """Whether the question names a code (E99) that the row it would be answered from
    does not hold, nor its caption or title, or a day of the week that the row's own
    days leave out (「周三下午几点开放?」 and the row 「周一: 闭馆」): a table answers for
    the rows it has, and the nearest row is not the one asked about."""
    around = tokens.normalize(f"{fact} {context}").replace("-", "")
    if any(tokens.normalize(code).replace("-", "") not in around
           for code in _IDENTIFIER.findall(question)):
        return True
    asked = days_named(question)
    row = days_named(fact)
    return bool(asked and row and not asked & row)


def is_another_row(question: str, text: str, meta: Mapping[str, Any]) -> bool:
    """``names_another_row`` for a passage: a table row (``meta``'s kind) with its
    caption and title as its context; False for any other passage."""
    return meta.get("kind") == KIND_TABLE and names_another_row(
        question, text, f"{meta.get('caption', '')} {meta.get('title', '')}")


def cells(fact: str) -> list[tuple[str, int, int]]:
    """(header, value start, value end) of each cell of ``fact``, offsets in ``fact``."""
    out = []
    pos = 0
    for part in fact.split(FACT_SEPARATOR):
        m = _CELL.fullmatch(part)
        if m is not None:
            header = (m.group("header") or "").strip()
            out.append((header, pos + m.start("value"), pos + m.end("value")))
        pos += len(part) + len(FACT_SEPARATOR)
    return out


def cell_at(fact: str, position: int) -> tuple[int, int] | None:
    """The value of the cell whose "header: value" part holds ``position``: a span the
    reader put on a header ("day" of "Fee per day: 5.00 EUR") means that cell's value."""
    part_start = 0
    for _, start, end in cells(fact):
        if part_start <= position < end + len(FACT_SEPARATOR):
            return start, end
        part_start = end + len(FACT_SEPARATOR)
    return None


def asked_cell(fact: str, question: str) -> tuple[int, int] | None:
    """Offsets in ``fact`` of the value the question asks for, or None when the question
    names no column (and no row key of a two-cell row) more than the others."""
    found = cells(fact)
    if len(found) < 2:
        return None
    asked = _grams(question)
    scores = [len(_grams(header) & asked) if header else 0 for header, _, _ in found[1:]]
    best = max(scores, default=0)
    if best and scores.count(best) == 1:
        _, start, end = found[1 + scores.index(best)]
        return start, end
    key_header, key_start, key_end = found[0]
    # a table without a header row: "E14: Solar input over-voltage | …", its key named
    # as written (a header row's first header, 城市类别, is rarely asked in full)
    if key_header and tokens.normalize(key_header) in tokens.normalize(question):
        return key_start, key_end
    # a key/value row: the question names the key, the answer is the other cell
    if len(found) == 2 and _grams(fact[key_start:key_end]) & asked:
        return found[1][1], found[1][2]
    return None
