"""The bot's handlers: commands, questions, the Sources button, and sending replies.

Answering is CPU-bound, so it runs in a thread pool; updates are processed
concurrently and a per-chat lock keeps each chat's replies in order. Replies are
rendered by bot/present.py and sent by ``sending``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from telegram import (
    BotCommand,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatType
from telegram.error import NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import __version__
from bot.config import Settings
from bot.engine import Engine
from bot.errors import QabotError
from bot.present import esc, telegram_answer, telegram_sources
from bot.telegram.buttons import ButtonHandlers, answer_keyboard, session_of
from bot.telegram.guards import AllowList, Gate, parse_ids
from bot.telegram.sending import keep_typing, send
from bot.telegram.turns import chat_turn, coordinator_for
from bot.workers import AnswerPool

log = logging.getLogger(__name__)

# Opt in to PTB's coming timedelta durations (retry_after and friends; read at call
# time): the old int form warns on every 429, and we never read them as numbers.
os.environ.setdefault("PTB_TIMEDELTA", "1")

# PTB's Application is generic in six types (bot, context, user/chat/bot data, job
# queue); we use the defaults throughout
App = Application[Any, Any, Any, Any, Any, Any]

COMMANDS = [
    ("start", "What I know and how to ask"),
    ("help", "How to use this bot"),
    ("ask", "Ask a question (needed in groups)"),
    ("sources", "The passages behind the last answer"),
    ("reset", "Forget this chat's conversation"),
    ("about", "Version, embedder and index"),
]
HELP = (
    "Send me a question about the documents and I answer with the passages that "
    "support it, numbered [1], [2]…; tap <b>Sources</b> to read them in full, and 👍 or "
    "👎 to tell whether the answer was right.\n"
    "Follow-up questions use this chat's earlier questions.\n\n"
    "/sources – the passages behind the last answer\n"
    "/reset – forget this conversation\n"
    "/about – version and index\n"
    "In groups, mention me, reply to me, or use /ask &lt;question&gt;."
)
ONLY_TEXT = "I can only answer text questions. Please type your question."
UNAVAILABLE = ("Sorry, I can't answer right now: my document index is unavailable. Please "
               "try again in a few minutes.")


# ----- the bot --------------------------------------------------------------------------
class QABot(ButtonHandlers):
    """Handlers and state for one running bot; ``build`` wires them into an Application."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.cfg = settings.telegram
        self.gate = Gate(AllowList(parse_ids(self.cfg.allowed_users),
                                   parse_ids(self.cfg.allowed_chats)))
        self.coordinator = coordinator_for(engine.sessions)
        self._chat_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.pool = AnswerPool(engine)
        self._pool = self.pool.executor

    def build(self, token: str, *, base_url: str | None = None) -> App:
        builder = _builder(token, base_url or self.cfg.base_url, self.cfg.read_timeout,
                           self.cfg.poll_timeout).post_init(self._post_init)
        app: App = builder.build()
        app.add_handler(TypeHandler(Update, self.claim), group=-2)
        app.add_handler(TypeHandler(Update, self.gate), group=-1)
        app.add_handler(MessageHandler(filters.UpdateType.EDITED, self.on_edited))
        app.add_handler(CommandHandler("start", self.cmd_start))
        app.add_handler(CommandHandler("help", self.cmd_help))
        app.add_handler(CommandHandler("reset", self.cmd_reset))
        app.add_handler(CommandHandler("sources", self.cmd_sources))
        app.add_handler(CommandHandler("about", self.cmd_about))
        app.add_handler(CommandHandler("ask", self.cmd_ask))
        app.add_handler(MessageHandler(filters.COMMAND, self.on_unknown_command))
        app.add_handler(MessageHandler(filters.TEXT, self.on_text))
        app.add_handler(MessageHandler(~filters.TEXT & filters.UpdateType.MESSAGE, self.on_other))
        app.add_handler(CallbackQueryHandler(self.on_sources_button, pattern=r"^src:"))
        app.add_handler(CallbackQueryHandler(self.on_rate_button, pattern=r"^rate:"))
        app.add_handler(CallbackQueryHandler(self.on_stale_button))
        app.add_error_handler(on_error)
        return app

    async def claim(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Group -2: an update already handled (a webhook retry, or one both replicas
        received) stops here, so it is answered once."""
        first = await asyncio.get_running_loop().run_in_executor(
            self._pool, self.coordinator.claim_update, update.update_id)
        if not first:
            log.info("update %s was handled already; skipped", update.update_id)
            raise ApplicationHandlerStop

    async def _post_init(self, app: App) -> None:
        await app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])

    # ----- commands ---------------------------------------------------------------
    async def cmd_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """What the bot knows and how to ask."""
        stats = self.engine.stats()
        titles = self.engine.document_titles()[:5]
        listing = "".join(f"\n• {esc(t)}" for t in titles)
        await self._reply(update, [
            f"Hi! I answer questions about <b>{stats.documents}</b> document(s) "
            f"({stats.chunks} passages):{listing}\n\n{HELP}"])

    async def cmd_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """How to use the bot."""
        await self._reply(update, [HELP])

    async def cmd_reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Forget this chat's history."""
        chat = update.effective_chat
        assert chat is not None
        async with self._chat_locks[chat.id]:
            await asyncio.get_running_loop().run_in_executor(
                self._pool, self.engine.reset, session_of(chat.id))
        await self._reply(update, ["Conversation forgotten. Ask me anything."])

    async def cmd_sources(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The passages behind this chat's last answer, in full."""
        chat = update.effective_chat
        assert chat is not None
        turn = await asyncio.get_running_loop().run_in_executor(
            self._pool, self.engine.last_turn, session_of(chat.id))
        if turn is None:
            await self._reply(update, ["No answer yet in this chat: ask a question first."])
            return
        await self._reply(update, telegram_sources(turn.citations, turn.related))

    async def cmd_about(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Version, embedder, index build time."""
        s = self.engine.stats()
        await self._reply(update, [
            f"qabot {__version__}\nembedder: <code>{esc(s.embedder)}</code>\n"
            f"index built: {esc(s.built_at)}\ndocuments: {s.documents}, passages: {s.chunks}"])

    async def cmd_ask(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/ask QUESTION: the way to ask in groups (works in private chats too)."""
        question = " ".join(context.args or [])
        if not question.strip():
            await self._reply(update, ["Usage: /ask your question"])
            return
        await self._answer(update, question)

    # ----- messages ---------------------------------------------------------------
    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A text message is a question (in groups: only when addressed to the bot)."""
        message = update.effective_message
        chat = update.effective_chat
        if message is None or chat is None or message.text is None:
            return
        text = message.text
        if chat.type != ChatType.PRIVATE:
            replied_to_bot = (message.reply_to_message is not None
                              and message.reply_to_message.from_user is not None
                              and message.reply_to_message.from_user.id == context.bot.id)
            ours = _mentions_of(message, context.bot.username, context.bot.id)
            if ours:  # the mention entities Telegram marked, not a substring:
                for mention in ours:  # "@mybot_evil" is another bot
                    text = text.replace(mention, " ")
            elif not replied_to_bot:
                return  # group chatter not meant for us
        await self._answer(update, text)

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stickers, photos, voice, documents…: explain that only text works."""
        chat = update.effective_chat
        if chat is not None and chat.type == ChatType.PRIVATE:
            await self._reply(update, [ONLY_TEXT], html_mode=False)

    async def on_edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Edits are ignored on purpose: answering again would repeat the conversation."""
        log.debug("ignored an edited message in chat %s", update.effective_chat and
                  update.effective_chat.id)

    async def on_unknown_command(self, update: Update,
                                 context: ContextTypes.DEFAULT_TYPE) -> None:
        """Unknown /commands get the list of known ones."""
        chat = update.effective_chat
        if chat is not None and chat.type == ChatType.PRIVATE:
            await self._reply(update, ["I don't know that command.\n\n" + HELP])

    # ----- answering ----------------------------------------------------------------
    async def _answer(self, update: Update, question: str) -> None:
        chat, user = update.effective_chat, update.effective_user
        assert chat is not None
        # counted on arrival, answered in turn: a "slow down" reply must not overtake
        # the answers queued before it in the same chat
        loop = asyncio.get_running_loop()
        over_rate = user is not None and not await loop.run_in_executor(
            self._pool, self.coordinator.allow, user.id, self.cfg.rate_limit_per_minute)
        # one chat's replies stay in order: in this process, and across replicas
        async with self._chat_locks[chat.id], chat_turn(self.coordinator, self._pool, chat.id):
            if over_rate:
                await self._reply(update, [
                    f"You're asking faster than I can keep up ({self.cfg.rate_limit_per_minute}"
                    " questions a minute). Please wait a moment and ask again."],
                    html_mode=False)
                return
            typing = asyncio.create_task(
                keep_typing(update.get_bot(), chat.id, self.cfg.typing_interval))
            try:
                # With an LLM the answer is not streamed into the chat: nothing is shown
                # before the citation check has passed it (bot/llm.py), so "typing…"
                # runs until the checked answer is ready.
                answer = await asyncio.get_running_loop().run_in_executor(
                    self._pool, self.pool.answer, question, session_of(chat.id))
            except QabotError as exc:
                if not exc.for_end_user:  # operator's instructions go to the log only
                    log.error("could not answer in chat %s: %s", chat.id, exc)
                await self._reply(update, [esc(str(exc) if exc.for_end_user else UNAVAILABLE)])
                return
            finally:
                typing.cancel()
            await self._reply(update, telegram_answer(answer), keyboard=answer_keyboard(answer))

    async def _reply(self, update: Update, messages: Sequence[str], *,
                     keyboard: InlineKeyboardMarkup | None = None, html_mode: bool = True) -> None:
        chat, message = update.effective_chat, update.effective_message
        if chat is None:
            return
        await self._send(chat.id, messages, keyboard=keyboard, html_mode=html_mode,
                         reply_to=message.message_id if isinstance(message, Message) else None,
                         bot=update.get_bot())

    async def _send(self, chat_id: int, messages: Sequence[str], *, bot: Any,
                    keyboard: InlineKeyboardMarkup | None = None, html_mode: bool = True,
                    reply_to: int | None = None) -> None:
        await send(bot, chat_id, messages, keyboard=keyboard, html_mode=html_mode,
                   reply_to=reply_to)

    def close(self) -> None:
        self.pool.close()


def _mentions_of(message: Message, username: str | None, bot_id: int) -> list[str]:
    """The texts of the entities in ``message`` that address this bot: ``@username``
    mentions (case-insensitive, as Telegram treats usernames) and text mentions of its
    user."""
    if not username:
        return []
    found = message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION])
    return [text for entity, text in found.items()
            if (entity.type == MessageEntity.MENTION and text.lower() == f"@{username.lower()}")
            or (entity.user is not None and entity.user.id == bot_id)]


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every error; tell the user when a message was being handled."""
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None \
            and not isinstance(context.error, NetworkError):
        try:
            await context.bot.send_message(update.effective_chat.id,
                                           "Sorry, something went wrong. Please try again.")
        except TelegramError:
            log.warning("could not report the error to chat %s", update.effective_chat.id)


def _builder(token: str, base: str, read_timeout: float, poll_timeout: float) -> Any:
    """PTB's Application builder for this bot's token, timeouts and Bot API URL."""
    builder = (
        Application.builder()
        .token(token)
        .concurrent_updates(True)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .read_timeout(read_timeout)
        .write_timeout(read_timeout)
        .get_updates_read_timeout(poll_timeout + 10)
        # answers quote documents: a link in one must not become a preview card
        # (a phishing page shown as if the bot vouched for it)
        .defaults(Defaults(link_preview_options=LinkPreviewOptions(is_disabled=True)))
    )
    if base:
        base = base.rstrip("/")
        builder = builder.base_url(base if base.endswith("/bot") else f"{base}/bot")
        root = base[: -len("/bot")] if base.endswith("/bot") else base
        builder = builder.base_file_url(f"{root}/file/bot")
    return builder
