"""The presenter (bot/present.py) and the pure parts of the Telegram front end: what a
user sees, rendered from an answer's parts, with no model and no network."""

from __future__ import annotations

import logging
import sys
from html import unescape

from bot import present
from bot.answers import Answer, Citation, Mode, Quote
from bot.telegram import LIMIT, RedactFilter, block, render_answer, render_sources, tg_len
from bot.telegram.guards import AllowList, RateLimiter
from fakes.telegram_api import TOKEN, _check_text

C1 = Citation(1, "seeds/a.txt", "a#1", 10, 40, "霍城县江苏医院综合病房大楼总投资1.4亿元。", 0.9)
C2 = Citation(2, "seeds/a.txt", "a#2", 50, 90, "第二段 " * 40, 0.5)
RELATED = [Citation(n, "seeds/b.txt", f"b#{n}", n * 100, n * 100 + 30, f"近的段落{n}", 0.3)
           for n in range(1, 6)]


def _answer(**parts: object) -> Answer:
    base: dict[str, object] = {"question": "总投资多少?", "short_answer": None,
                               "refused": False, "citations": [],
                               "standalone_query": "总投资多少?"}
    return Answer(**{**base, **parts})  # type: ignore[arg-type]


def test_redact_filter_scrubs_messages_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "GET %s", (f"/bot{TOKEN}/getMe",),
                               None)
    assert RedactFilter(TOKEN).filter(record) and TOKEN not in record.getMessage()
    record = logging.LogRecord("x", logging.DEBUG, "f", 1, "setWebhook %s",
                               ({"url": "u", "secret_token": "whs"},), None)
    assert RedactFilter(TOKEN, "whs").filter(record) and "whs" not in record.getMessage()
    try:
        raise RuntimeError(f"failed https://api.telegram.org/bot{TOKEN}/send")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "boom", (), sys.exc_info())
    RedactFilter(TOKEN).filter(record)
    assert TOKEN not in logging.Formatter().format(record)


def test_block_escapes_and_splits_without_breaking_entities() -> None:
    text = ("A&B <tag> “quote” 😀。" * 600)
    pieces = block(text, "i")
    assert len(pieces) > 1
    for p in pieces:
        assert tg_len(p) <= LIMIT and p.startswith("<i>") and p.endswith("</i>")
        assert _check_text(p, "HTML") is None
    assert "".join(unescape(p[3:-4]) for p in pieces) == text


def test_render_answer_and_sources_escape_document_text() -> None:
    c = Citation(1, "docs/a<b>.txt", "id1", 0, 20, "价格 <100> & 上涨*_", 0.5)
    answer = _answer(question="价格?", short_answer="<100>", short_cite=1,
                     quotes=[Quote("价格 <100> & 上涨*_", (1,))], citations=[c],
                     standalone_query="价格?")
    assert answer.answer == "<100> [1]\n价格 <100> & 上涨*_ [1]"
    messages = render_answer(answer)
    assert len(messages) == 1 and _check_text(messages[0], "HTML") is None
    assert messages[0].startswith("<b>&lt;100&gt; [1]</b>")
    sources = render_sources([c], [])
    assert _check_text(sources[0], "HTML") is None and "&lt;100&gt; &amp;" in sources[0]


def test_the_short_answer_is_bold_because_it_is_one_not_because_a_line_starts_with_it() -> None:
    # the quote begins with the short answer's text, but the short answer is not shown
    # apart (the reader's quote is the short answer): nothing is bold
    answer = _answer(short_answer="1.4亿元", quotes=[Quote("1.4亿元的大楼", (1,))],
                     citations=[C1], mode=Mode.READER)
    assert "<b>" not in render_answer(answer)[0].split("\n\n")[0]
    shown = _answer(short_answer="1.4亿元", short_cite=1, quotes=[Quote("总投资1.4亿元。", (1,))],
                    citations=[C1])
    assert render_answer(shown)[0].startswith("<b>1.4亿元 [1]</b>\n总投资1.4亿元。 [1]")


def test_terminal_and_telegram_show_the_same_parts() -> None:
    answer = _answer(short_answer="1.4亿元", short_cite=1, citations=[C1, C2],
                     quotes=[Quote("总投资1.4亿元。", (1,)), Quote("第二段", (2,))],
                     standalone_query="大楼 总投资多少?", assumed_subject="大楼")
    text = present.plain(present.terminal_lines(answer))
    html = unescape(render_answer(answer)[0].replace("<b>", "").replace("</b>", "")
                    .replace("<i>", "").replace("</i>", ""))
    for part in ("1.4亿元 [1]", "总投资1.4亿元。 [1]", "第二段 [2]",
                 "（指：大楼）", "Sources:",
                 present.cite_line(C1), present.cite_line(C2)):
        assert part in text and part in html, part
    # one snippet rule: a long passage is cut to SNIPPET_CHARS in both
    assert present.snippet(C2.text).endswith("…")
    assert len(present.snippet(C2.text)) == present.SNIPPET_CHARS


def test_a_refusal_lists_the_closest_passages_and_sources_shows_them_in_full() -> None:
    refusal = _answer(text="文档中没有找到这个问题的答案。", refused=True, related=RELATED)
    lines = present.plain(present.terminal_lines(refusal)).splitlines()
    assert lines[0] == "文档中没有找到这个问题的答案。"
    assert lines[1] == present.RELATED_TITLE
    assert lines[2:] == [f"  {present.cite_line(c)}" for c in RELATED[:present.RELATED_SHOWN]]
    assert present.has_passages(refusal.citations, refusal.related)
    full = render_sources(refusal.citations, refusal.related)
    cli = present.plain(present.sources_lines(refusal.citations, refusal.related))
    for c in RELATED[:present.RELATED_SHOWN]:
        assert c.text in full[0] and c.text in cli
    assert RELATED[present.RELATED_SHOWN].text not in full[0] + cli
    assert present.RELATED_TITLE in full[0] and present.RELATED_TITLE in cli


def test_nothing_to_show_means_no_sources() -> None:
    bare = _answer(text="文档中没有找到这个问题的答案。", refused=True)
    assert not present.has_passages(bare.citations, bare.related)
    assert render_sources([], []) == [present.NO_PASSAGES]
    assert present.plain(present.sources_lines([], [])) == present.NO_PASSAGES


def test_llm_parts_note_and_prose_render_in_order() -> None:
    answer = _answer(note="⚠ This answer cites no passage and may be unsupported:",
                     text="It cost 1.4 billion.", mode=Mode.LLM_UNSUPPORTED, short_answer=None)
    assert answer.answer.splitlines() == [answer.note, answer.text]
    html = render_answer(answer)[0]
    assert html.startswith("<i>⚠ This answer") and "It cost 1.4 billion." in html
    assert answer.to_dict()["mode"] == "llm-unsupported"
    assert answer.to_dict()["note"] == answer.note


def test_allow_list_is_checked_with_ptb_filters_and_fails_closed() -> None:
    from telegram import CallbackQuery, Chat, Message, Update, User

    def message(user_id: int | None, chat_id: int) -> Update:
        user = User(user_id, "u", False) if user_id is not None else None
        chat = Chat(chat_id, "private")
        from datetime import UTC, datetime

        msg = Message(1, datetime.now(UTC), chat, from_user=user, text="hi")
        return Update(1, message=msg)

    allow = AllowList(frozenset({111}), frozenset())
    assert allow.admits(message(111, 5)) and not allow.admits(message(222, 5))
    assert not allow.admits(message(None, 5))  # no user (a channel post): denied
    chats = AllowList(frozenset(), frozenset({-100}))
    assert chats.admits(message(222, -100)) and not chats.admits(message(222, 7))
    tap = Update(2, callback_query=CallbackQuery("q", User(222, "u", False), "chat"))
    assert not allow.admits(tap)
    assert allow.admits(Update(3, callback_query=CallbackQuery("q", User(111, "u", False), "c")))
    assert not allow.admits(Update(4))  # nothing to check: denied
    assert AllowList(frozenset(), frozenset()).admits(Update(4))  # no lists: open bot


def test_rate_limiter_counts_a_sliding_minute_per_user() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.allow(1) and limiter.allow(1) and not limiter.allow(1)
    assert limiter.allow(2)  # per user
    now[0] = 61.0
    assert limiter.allow(1)


def test_every_renderer_shows_the_same_parts_in_the_same_order() -> None:
    from bot.answers import PartKind, parts

    a = _answer(note="(LLM unavailable: extractive answer)", short_answer="1.4亿元",
                short_cite=1, citations=[C1],
                quotes=[Quote("大楼总投资1.4亿元。", (1,)), Quote("第二段", (1, 2))])
    got = parts(a)
    assert [p.kind for p in got] == [PartKind.NOTE, PartKind.HEADLINE, PartKind.QUOTE,
                                     PartKind.QUOTE]
    assert a.answer.splitlines() == [p.line for p in got]
    assert got[1].line == "1.4亿元 [1]" and got[3].line == "第二段 [1][2]"
    shown = unescape("\n".join(render_answer(a)))
    terminal = present.plain(present.terminal_lines(a))
    for part in got:  # each part once, in order, in Telegram and on a terminal
        assert part.line in shown and part.line in terminal
    positions = [shown.index(p.line) for p in got]
    assert positions == sorted(positions)
    refused = _answer(refused=True, text="文档中没有找到这个问题的答案。")
    assert [p.kind for p in parts(refused)] == [PartKind.PROSE]
