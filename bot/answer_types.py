"""Does a short answer have the type its question asks for?

A question for a date wants a time expression, one for an amount of money wants a
number with a currency, one for a weight a number with a unit of mass, "how many"
wants a number, 「哪几个/哪些」 wants the items rather
than their count. The guided answerer (bot/answerers/guided.py) takes the reader's best span
that agrees, falling back through the window's next spans and the next sentences; a
span of the wrong type is never shown as the answer to a typed question.

The checks are deliberately lenient (「清朝末年」 is a date, 「数百」 a number): they
reject the plainly wrong type (「霍城县」 for "when", 「12个」 for 「哪几个组团」), not
answers worded unusually. ``TYPE_CHECKED`` says which kinds are checked; whether the
check pays is measured on held-out validation articles (docs/benchmarks.md).
"""

from __future__ import annotations

import re

from bot import tokens

# How far (characters) a place's name may run on past the reader's span: one
# institution's name (「江阴小学」, 「北京大学附属中学」), not a clause. Set, not tuned.
PLACE_REACH = 12
# kinds whose answers have a recognisable form; "name" and "list" questions are
# checked only against a bare count (what a list question must not be answered with)
TYPE_CHECKED = ("date", "money", "count", "percent", "list", "duration", "weight", "tally")

_NUMERAL = r"[0-9０-９零〇一二三四五六七八九十百千万亿两几数半]"
_HAS_NUMBER = re.compile(_NUMERAL + r"|\b(one|two|three|four|five|six|seven|eight|nine|ten"
                         r"|hundred|thousand|million|billion|dozen|several)\b", re.I)
_DATE = re.compile(
    _NUMERAL + r"|[年月日世纪代朝期时季春夏秋冬初末前后间今昨明晚早午夜旬]"
    r"|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(century|today"
    r"|yesterday|morning|evening|night|spring|summer|autumn|fall|winter|ago|before"
    r"|after|since|during|era|period|dynasty|age)\b", re.I)
_MONEY = re.compile(r"[元圆镑¥￥$€£]|美元|美金|欧元|日元|英镑|港币|人民币|块|\b(dollars?|yuan|rmb"
                    r"|euros?|pounds?|usd|eur|cny)\b", re.I)
_AMOUNT = re.compile(r"\d\s*[万亿千百]|\b\d[\d,.]*\s*(k|m|bn|million|billion|thousand)\b", re.I)
_PERCENT = re.compile(r"[%％‰]|百分之|成|\bper ?cent\b", re.I)
# a number and at most a classifier or unit: the count of the items, not the items
_BARE_COUNT = re.compile(r"[0-9０-９.,零〇一二三四五六七八九十百千万亿两几数半余多]+\s*"
                         r"[个名项座所家种位次条类批处只件]?\s*$")
# "how long does it take" asks for a time, "how long is the cable" for a length
_DURATION_ASKED = re.compile(r"how long (does|did|do|will|would|can|should|has|have|is it"
                             r" going)|多久|多长时间|几个?(小时|分钟|星期|月)|要多长", re.I)
# a question for a weight value ("how heavy", 「有多重」), not one that ranks by weight
# (「哪个车型重量排第一」)
_WEIGHT_ASKED = re.compile(r"how heavy|how much (does|do|did|would|will) .{1,60}weigh"
                           r"|what is the weight|the weight of|多重|重量(是|为|有)?多少"
                           r"|多少(公斤|千克|克|吨|斤)", re.I)
_MASS_UNIT = re.compile(r"\d\s*(kg|g|mg|t|lbs?|oz)\b|\b(kilo(gram)?s?|grams?|tonnes?|tons?"
                        r"|pounds?|ounces?)\b|公斤|千克|克|吨|斤", re.I)
_TIME_UNIT = re.compile(r"[秒分时天日周月年]|分钟|小时|星期|\b(sec(ond)?s?|min(ute)?s?|h(ou)?rs?"
                        r"|hours?|days?|weeks?|months?|years?)\b", re.I)
# a count of things named by their counter or unit (「多少名学生」, 「多少亩」, "how many
# beds"): an amount of money is never the answer (「8000万元」 for 「有多少名学生?」)
_TALLY_ASKED = re.compile(
    r"(多少|几)[万亿千百]?(名|个|位|人|亩|所|家|座|项|次|条|种|件|只|张|辆|架|台|户|层|间|本|部"
    r"|首|篇|场|届|支|队|块|棵|株|头|匹|艘|枚|颗|米|公里|千米|平方|公顷|吨|公斤|千克|岁|倍|册|床)"
    r"|\bhow many (?!(dollars|euros|yuan|pounds|rmb|usd|eur)\b)[a-z]", re.I)
_LIST = re.compile(r"哪几|哪些|有哪|哪两|哪三|which (ones|of the)|what are the", re.I)
# a country's name is whole as it is: 「哪个国家的运动员」 wants 「澳大利亚」
_PLACE = re.compile(r"在哪|哪里|哪儿|何处|何地|什么地方|哪个(地方|城市|省|县)|\bwhere\b", re.I)
# What a place's name may continue with (jieba's part-of-speech tags): another place or
# organisation name (「岩手县」 + 「胆泽郡」), or a noun naming a place or an institution
# by its last character (「江阴」 + 「小学」); never a noun that says what the place is
# or what someone there does (「澳大利亚」 + 「足球运动员」).
_PLACE_NAME_TAGS = {"ns", "nt"}
_PLACE_NOUN_END = set("学院馆站园场厂所局校寺庙宫楼街路村镇乡区县市省州港湾岛山河湖桥")


def asked_kind(question: str, base: str | None) -> str | None:
    """The kind checked for ``question``: ``base`` (``features.question_type``'s
    answer), "list" for 「哪几个/哪些」 questions, "place" for 「在哪里」/"where", "tally"
    for a count of named things (「多少名学生」, "how many beds")."""
    if _LIST.search(question):
        return "list"
    if _DURATION_ASKED.search(question):
        return "duration"
    if _WEIGHT_ASKED.search(question):
        return "weight"
    if base == "count" and _TALLY_ASKED.search(question):
        return "tally"
    if base not in TYPE_CHECKED and _PLACE.search(question):
        return "place"
    return base if base in TYPE_CHECKED else None


# A question for where a range starts or where it ends: 「几点开门?」, 「租期到什么时候结束?」,
# "What time does it close?". Not one for the range itself (「开放时间是什么?」,
# "What are the opening hours?").
_ASKS_START = re.compile(
    r"几点开(门|放|馆|始)|什么时候开(始|门|放|馆)|何时开(始|门|放)|(开始|起始)(时间|日期|于)"
    r"|从(什么时候|何时|几点)|\b(what time|when) (does|do|did|will|would|can) .{0,60}?"
    r"\b(open|start|begin)s?\b", re.I)
_ASKS_END = re.compile(
    r"几点(关门|闭馆|结束|下班|截止|停止)|什么时候(结束|截止|到期|关门|闭馆)"
    r"|何时(结束|截止|到期|关门)|(结束|截止|到期)(时间|日期|于|是)|到什么时候|到几点"
    r"|\b(what time|when) (does|do|did|will|would|can) .{0,60}?\b(close|end|finish|expire)s?\b"
    r"|\buntil when\b", re.I)
# two values with a range mark between them; the first may carry 起/自/从, the second 止
# (no clause inside either value; a bare number on either side of "-" is a date's or a
# code's, 2020-01-05, not a range)
_RANGE = re.compile(r"(?P<a>[^至到~～\-–—，,。；;]*\d[^至到~～\-–—，,。；;]*?)\s*(?:起)?\s*"
                    r"(?P<mark>至|到|~|～|-|–|—|\bto\b|\buntil\b)\s*"
                    r"(?P<b>[^至到~～\-–—，,。；;]*\d[^，,。；;]*?)(?:止|结束)?", re.I)
RANGE_VALUE = 16  # the most characters either value of a range may have: a date or a
# time with its unit (「2027年3月1日起」 is 10), not a phrase. Set, not tuned.


def range_part(text: str, start: int, end: int, question: str) -> tuple[int, int]:
    """The part of a headline that is a range (「9:00-12:00」, 「2027年3月1日起至2028年2月29日」)
    which the question asks for: its start for 「几点开门?」, its end for 「几点关门?」 or
    「租期到什么时候结束?」; the whole range otherwise."""
    starts, ends = bool(_ASKS_START.search(question)), bool(_ASKS_END.search(question))
    if starts == ends:
        return start, end
    m = _RANGE.fullmatch(text, start, end)
    if m is None or max(len(m.group("a")), len(m.group("b"))) > RANGE_VALUE or (
            m.group("mark") == "-" and (m.group("a").strip().isdigit()
                                        or m.group("b").strip().isdigit())):
        return start, end
    a, b = (m.start("a"), m.end("a")) if starts else (m.start("b"), m.end("b"))
    while a < b and text[a] in "自从 ":
        a += 1
    return a, b


# A date written whole: month (and day) with its year, 「2002年5月1日」, "November 19,
# 1863", "19 November 1863". A span on part of one (「2002年」, "1863") is shown whole
# when the question asks "when" (not "which year" or "which month").
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_ZH_NUM = r"[0-9０-９〇零一二三四五六七八九十]"
_WHOLE_DATE = re.compile(
    rf"(?<!{_ZH_NUM})(?:{_ZH_NUM}{{2,4}}年{_ZH_NUM}{{1,2}}月(?:{_ZH_NUM}{{1,3}}[日号])?"
    rf"|{_ZH_NUM}{{1,2}}月{_ZH_NUM}{{1,3}}[日号])"
    rf"|\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\s*,?\s+\d{{4}}\b"
    rf"|\b{_MONTH}\s+\d{{4}}\b", re.I)
DATE_REACH = 24  # the longest whole date looked for around a span ("Wednesday, September
# 17, 1787" is 25 with its weekday, which is not taken). Set, not tuned.
# a question for the year or the month alone wants that part only
_PART_OF_DATE_ASKED = re.compile(r"哪一?年|几几年|哪个?月|几月|\b(what|which) (year|month)\b"
                                 r"|\bin what year\b", re.I)


def whole_date(text: str, start: int, end: int, question: str) -> tuple[int, int]:
    """A date headline with the rest of its date: 「2002年」 of 「2002年5月」 → 「2002年5月」,
    "1863" of "November 19, 1863" → the whole date, unless the question asks for the
    year or the month alone. A span that is not inside one date stays as it is."""
    if _PART_OF_DATE_ASKED.search(question):
        return start, end
    for m in _WHOLE_DATE.finditer(text, max(0, start - DATE_REACH),
                                  min(len(text), end + DATE_REACH)):
        if m.start() <= start and end <= m.end() and (m.start(), m.end()) != (start, end):
            return m.start(), m.end()
    return start, end


# A "who" question: CMRC's answers name the person with the title written right before
# the name (「比利时漫画家埃尔热」, 「英国数学家查尔斯·巴贝奇」), where the reader stops at
# the name.
_WHO_ASKED = re.compile(r"谁|哪位|什么人")
# How far (characters) a title may reach back from the name; set, not tuned.
TITLE_REACH = 10
# the last character of a noun that names what someone is (漫画家, 设计师, 演员, 作者…)
_TITLE_END = set("家师员者手官匠士")
# what may stand before the title: a place, an organisation or another proper name
# (「比利时」, "Fendi"); a common noun there is as often the segmenter's error
# (「分析机由」 → 「机由」) as a title's part
_TITLE_NAME_TAGS = {"ns", "nt", "nz", "eng"}


def with_title(text: str, start: int, question: str,
               segmenter: tokens.Segmenter = tokens.FULL) -> int:
    """Where a "who" headline starting at ``start`` starts with the title written right
    before it: 「埃尔热」 of 「比利时漫画家埃尔热」 → 「比利时漫画家埃尔热」. The title is a
    noun ending in a maker's or holder's character (家, 师, 员, 者…), with the place or
    organisation names before it; anything else before the name stays out."""
    if not _WHO_ASKED.search(question):
        return start
    lo = start
    while lo > 0 and start - lo < TITLE_REACH and text[lo - 1].isalnum():
        lo -= 1
    if lo == start:
        return start
    words = segmenter.tagged(text[lo:start])
    if not words or not (words[-1][1].startswith("n") and words[-1][0][-1] in _TITLE_END):
        return start
    new = start - len(words[-1][0])
    for word, tag in reversed(words[:-1]):
        if tag not in _TITLE_NAME_TAGS:
            break
        new -= len(word)
    # a bare title (「歌手陈绮贞」, 「组员徐裕行」) is left out: CMRC's answers keep a title
    # with its country or firm (「英国数学家」, 「Fendi设计师」) and drop one alone
    # (held-out CMRC, docs/benchmarks.md)
    return new if new < start - len(words[-1][0]) else start


def whole_place(text: str, end: int, segmenter: tokens.Segmenter = tokens.FULL) -> int:
    """Where a place's name whose span ends at ``end`` really ends: a span that stops
    inside a compound name (「霍城县」 of 「霍城县江阴小学」) runs on over the nouns that
    follow it directly, up to the next punctuation or non-noun. Returns the new end."""
    stop = end
    while stop < len(text) and stop - end < PLACE_REACH and text[stop].isalnum():
        stop += 1
    if stop == end:
        return end
    for word, tag in segmenter.tagged(text[end:stop]):
        if not (tag in _PLACE_NAME_TAGS or (tag.startswith("n") and word[-1] in _PLACE_NOUN_END)):
            break
        end += len(word)
    return end


def agrees(kind: str | None, text: str) -> bool:
    """Whether ``text`` can be an answer of ``kind`` (True for unchecked kinds)."""
    text = text.strip()
    if not text:
        return False
    if kind == "tally":  # a number, and not an amount of money
        return bool(_HAS_NUMBER.search(text)) and not _MONEY.search(text)
    if kind == "date":
        return bool(_DATE.search(text))
    if kind == "count":
        return bool(_HAS_NUMBER.search(text))
    if kind == "money":  # a currency, or an amount in 万/亿 (「8000万」)
        return bool(_HAS_NUMBER.search(text)) and (bool(_MONEY.search(text))
                                                    or bool(_AMOUNT.search(text)))
    if kind == "percent":
        return bool(_PERCENT.search(text))
    if kind == "list":
        return not _BARE_COUNT.match(text)
    if kind == "duration":
        return bool(_HAS_NUMBER.search(text)) and bool(_TIME_UNIT.search(text))
    if kind == "weight":  # a number with a unit of mass: 「6.4 kg」, not 「two years」
        return bool(_HAS_NUMBER.search(text)) and bool(_MASS_UNIT.search(text))
    return True
