"""Sending replies: parts in order, the keyboard on the last, no retry of a send that
timed out; and the "typing…" indicator while an answer is computed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from telegram import InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import RetryAfter, TelegramError, TimedOut

log = logging.getLogger(__name__)


async def send(bot: Any, chat_id: int, messages: Sequence[str], *,
               keyboard: InlineKeyboardMarkup | None = None, html_mode: bool = True,
               reply_to: int | None = None) -> None:
    """Send parts in order; the keyboard goes on the last part, the first replies to
    ``reply_to``. A timed-out send is not retried: Telegram may have delivered it, and a
    retry would duplicate the reply."""
    for i, text in enumerate(messages):
        last = i == len(messages) - 1
        reply = (ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                 if reply_to is not None and i == 0 else None)
        try:
            await bot.send_message(
                chat_id, text, parse_mode=ParseMode.HTML if html_mode else None,
                reply_markup=keyboard if last else None, reply_parameters=reply)
        except TimedOut:
            log.warning("sendMessage to chat %s timed out; not retried to avoid a "
                        "duplicate", chat_id)
        except RetryAfter:
            log.warning("sendMessage to chat %s still rate limited after retries", chat_id)
            raise


async def keep_typing(bot: Any, chat_id: int, interval: float) -> None:
    """'typing…' now and again every ``interval`` seconds until cancelled."""
    while True:
        try:
            await bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as exc:  # cosmetic: never fail an answer over it
            log.debug("chat action failed: %s", exc)
        await asyncio.sleep(interval)
