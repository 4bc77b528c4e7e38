"""The inline buttons under an answer: Sources (the cited passages in full) and 👍/👎
(the rating, stored with the turn). Their callback data comes from the client and can
be forged: only our own shapes reach the session store."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot.answers import Answer
from bot.engine import Engine
from bot.errors import QabotError
from bot.present import has_passages, telegram_sources

# "src:<turn id>": a turn id is an SQLite row id, at most 2**63 - 1 (19 digits)
_SOURCES_DATA = re.compile(r"src:([0-9]{1,18})")
_RATE_DATA = re.compile(r"rate:([0-9]{1,18}):(1|-1)")


def session_of(chat_id: int) -> str:
    """The session a Telegram chat's turns are stored under."""
    return f"tg:{chat_id}"


def answer_keyboard(answer: Answer) -> InlineKeyboardMarkup | None:
    """Sources (when the answer has passages) and 👍/👎, for an answer stored as a turn."""
    if answer.turn_id is None:
        return None
    row = [InlineKeyboardButton("👍", callback_data=f"rate:{answer.turn_id}:1"),
           InlineKeyboardButton("👎", callback_data=f"rate:{answer.turn_id}:-1")]
    if has_passages(answer.citations, answer.related):
        row.insert(0, InlineKeyboardButton("Sources", callback_data=f"src:{answer.turn_id}"))
    return InlineKeyboardMarkup([row])


class ButtonHandlers:
    """The callback handlers of ``QABot`` (bot/telegram/handlers.py) for its buttons."""

    engine: Engine
    _pool: Executor

    async def _send(self, chat_id: int, messages: Sequence[str], *, bot: Any,
                    keyboard: InlineKeyboardMarkup | None = None, html_mode: bool = True,
                    reply_to: int | None = None) -> None:
        raise NotImplementedError  # QABot's

    async def on_sources_button(self, update: Update,
                                context: ContextTypes.DEFAULT_TYPE) -> None:
        """The inline "Sources" button: send the cited passages of that answer."""
        query = update.callback_query
        chat = update.effective_chat
        assert query is not None and chat is not None
        # callback data comes from the client and can be forged: only our own shape, in
        # SQLite's integer range, reaches the session store
        match = _SOURCES_DATA.fullmatch(str(query.data or ""))
        if match is None:
            await query.answer("This button no longer works. Ask again.")
            return
        try:
            turn = await asyncio.get_running_loop().run_in_executor(
                self._pool, self.engine.turn, session_of(chat.id), int(match.group(1)))
        except Exception:
            await query.answer("Sorry, the sources are not available right now.")
            raise  # logged by on_error
        if turn is None:
            await query.answer("That answer is no longer available (the chat was reset). "
                               "Ask again.", show_alert=True)
            return
        await query.answer()
        await self._send(chat.id, telegram_sources(turn.citations, turn.related),
                         bot=update.get_bot(),
                         reply_to=query.message.message_id if query.message else None)

    async def on_rate_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The 👍/👎 buttons: store the rating with that turn (``qabot sessions export
        --rated`` turns the rated turns into an evaluation set)."""
        query = update.callback_query
        chat = update.effective_chat
        assert query is not None and chat is not None
        match = _RATE_DATA.fullmatch(str(query.data or ""))  # forgeable: checked shape only
        if match is None:
            await query.answer("This button no longer works. Ask again.")
            return
        turn_id, rating = int(match.group(1)), int(match.group(2))
        try:
            kept = await asyncio.get_running_loop().run_in_executor(
                self._pool, self.engine.rate, session_of(chat.id), turn_id, rating)
        except QabotError as exc:
            await query.answer(str(exc) if exc.for_end_user else
                               "Sorry, the rating could not be saved right now.")
            return
        if not kept:
            await query.answer("That answer is no longer available (the chat was reset).",
                               show_alert=True)
            return
        await query.answer("Thanks for the feedback " + ("👍" if rating > 0 else "👎"))

    async def on_stale_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Any other callback (old keyboards): acknowledge it so the client stops waiting."""
        if update.callback_query:
            await update.callback_query.answer("This button no longer works. Ask again.")
