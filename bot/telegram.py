"""Telegram front end: a python-telegram-bot v22 Application over the one answer path.

Each chat is a session (``tg:<chat id>``) stored in SQLite, so follow-ups work and
survive restarts. Answers are HTML with everything escaped, split below Telegram's
4096-character limit on sentence boundaries, with an inline "Sources" button.

Answering is CPU-bound, so it runs in a thread pool; updates are processed
concurrently and a per-chat lock keeps each chat's replies in order. Faults:
``AIORateLimiter`` re-sends after a 429 ``retry_after``; PTB's polling loop backs off on
5xx and refused connections; start-up retries until the Bot API answers. A timed-out
``sendMessage`` is never retried, since Telegram may have delivered it already and a
retry would duplicate the reply.

The token comes from ``TELEGRAM_BOT_TOKEN`` or ``telegram.token_file`` and is scrubbed
from every log record.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import re
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType, MessageLimit, ParseMode
from telegram.error import (
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import __version__
from bot.answering import Answer
from bot.chunking import split_sentences
from bot.config import Settings, TelegramSettings
from bot.engine import Engine
from bot.errors import BotStoppedError, ConfigError, QabotError

log = logging.getLogger(__name__)

# Opt in to PTB's coming timedelta durations (retry_after and friends; read at call
# time): the old int form warns on every 429, and we never read them as numbers.
os.environ.setdefault("PTB_TIMEDELTA", "1")

LIMIT = MessageLimit.MAX_TEXT_LENGTH  # 4096
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
    "support it, numbered [1], [2]…; tap <b>Sources</b> to read them in full.\n"
    "Follow-up questions use this chat's earlier questions.\n\n"
    "/sources – the passages behind the last answer\n"
    "/reset – forget this conversation\n"
    "/about – version and index\n"
    "In groups, mention me, reply to me, or use /ask &lt;question&gt;."
)
ONLY_TEXT = "I can only answer text questions. Please type your question."
NOT_ALLOWED = "Sorry, this bot is private. Ask its owner to add you to the allow-list."
UNAVAILABLE = ("Sorry, I can't answer right now: my document index is unavailable. Please "
               "try again in a few minutes.")


# ----- secrets -----------------------------------------------------------------------
def read_token(settings: TelegramSettings, env: dict[str, str] | None = None) -> str:
    """The bot token from TELEGRAM_BOT_TOKEN or telegram.token_file."""
    env = dict(os.environ) if env is None else env
    token = env.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token and settings.token_file:
        path = Path(settings.token_file).expanduser()
        try:
            token = path.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"Cannot read the token file {path}: {exc.strerror}. Fix "
                              "telegram.token_file or set TELEGRAM_BOT_TOKEN.") from exc
    if not token:
        raise ConfigError("No Telegram bot token. Set TELEGRAM_BOT_TOKEN (from @BotFather), or "
                          "put it in a file outside the repo and set telegram.token_file.")
    return token


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (bot token, webhook secret) replaced by a placeholder."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<token>")
    return text


class RedactFilter(logging.Filter):
    """Replaces the secrets wherever they appear in a log record (URLs, request
    parameters such as setWebhook's ``secret_token``, exception text)."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            clean = redact(text, self.secrets)
            if clean != text:
                record.exc_info = None
                record.msg = f"{record.msg}\n{clean}"
                record.exc_text = None
        return True


def protect_logs(token: str, *secrets: str) -> None:
    """Turn httpx request logging down and scrub the token (and any other secret, such
    as the webhook secret) from every handler."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    scrub = RedactFilter(token, *secrets)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                       "%(message)s")
    for handler in root.handlers:
        handler.addFilter(scrub)


# ----- rendering -----------------------------------------------------------------------
def esc(text: str) -> str:
    return html.escape(text, quote=False)


def tg_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def block(text: str, tag: str | None = None) -> list[str]:
    """Escaped HTML for ``text``, wrapped in ``tag``, cut into pieces that each fit in
    one message; cuts fall between sentences (or characters, for a giant sentence),
    so no piece ever splits a tag or an entity."""
    wrap = (lambda s: f"<{tag}>{s}</{tag}>") if tag else (lambda s: s)
    budget = LIMIT - tg_len(wrap(""))
    whole = wrap(esc(text))
    if tg_len(whole) <= LIMIT:
        return [whole]
    pieces: list[str] = []
    current = ""
    spans = split_sentences(text) or []
    units = []
    pos = 0
    for span in spans:  # keep the whitespace between sentences with the sentence before
        units.append(text[pos:span.end])
        pos = span.end
    units.append(text[pos:])
    for unit in units:
        for part in _hard_cut(unit, budget):
            if current and tg_len(esc(current + part)) > budget:
                pieces.append(wrap(esc(current)))
                current = ""
            current += part
    if current.strip():
        pieces.append(wrap(esc(current)))
    return pieces


def _hard_cut(text: str, budget: int) -> list[str]:
    """Cut text whose escaped form exceeds the budget into pieces that fit."""
    out, current = [], ""
    for ch in text:
        if tg_len(esc(current + ch)) > budget:
            out.append(current)
            current = ""
        current += ch
    if current:
        out.append(current)
    return out


def pack(blocks: Sequence[str], limit: int = LIMIT) -> list[str]:
    """Join self-contained HTML blocks with newlines into as few messages as fit."""
    messages: list[str] = []
    current = ""
    for b in blocks:
        candidate = f"{current}\n{b}" if current else b
        if tg_len(candidate) <= limit:
            current = candidate
        else:
            if current:
                messages.append(current)
            current = b
    if current:
        messages.append(current)
    return messages


def render_answer(answer: Answer) -> list[str]:
    """The answer with its [n] markers and a compact source list, as HTML messages."""
    lines = answer.answer.splitlines()
    blocks: list[str] = []
    if answer.short_answer and lines and lines[0].startswith(answer.short_answer):
        blocks += block(lines[0], "b")
        lines = lines[1:]
    for line in lines:
        blocks += block(line)
    if answer.standalone_query != answer.question:
        blocks += block(f"(follow-up, searched as: {answer.standalone_query})", "i")
    cited = answer.citations or answer.related[:3]
    if cited:
        title = "Sources:" if answer.citations else "Closest passages (they do not answer it):"
        blocks.append("")
        blocks += block(title, "i")
        for c in cited:
            snippet = " ".join(c.text.split())
            snippet = snippet if len(snippet) <= 50 else snippet[:49] + "…"
            blocks += block(f"[{c.n}] {c.source}:{c.start}-{c.end} {snippet}")
    return pack(blocks)


def render_sources(citations: Sequence[dict[str, Any]]) -> list[str]:
    """Every cited passage in full, as HTML messages."""
    if not citations:
        return ["The last answer cited no passages."]
    blocks: list[str] = []
    for c in citations:
        blocks += block(f"[{c['n']}] {c['source']} (chars {c['start']}-{c['end']})", "b")
        blocks += block(str(c["text"]))
        blocks.append("")
    return pack(blocks[:-1])


def _ids(value: str) -> frozenset[int]:
    return frozenset(int(p) for p in value.split(",") if p.strip())


# ----- the bot --------------------------------------------------------------------------
class QABot:
    """Handlers and state for one running bot; ``build`` wires them into an Application."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.cfg = settings.telegram
        self.allowed_users = _ids(self.cfg.allowed_users)
        self.allowed_chats = _ids(self.cfg.allowed_chats)
        self._refused: set[int] = set()
        self._chat_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._asked: dict[int, deque[float]] = defaultdict(deque)
        self._pool = ThreadPoolExecutor(max_workers=self.cfg.workers,
                                        thread_name_prefix="qabot-answer")

    def build(self, token: str, *, base_url: str | None = None) -> Application:
        base = base_url or self.cfg.base_url
        builder = (
            Application.builder()
            .token(token)
            .concurrent_updates(True)
            .rate_limiter(AIORateLimiter(max_retries=3))
            .read_timeout(self.cfg.read_timeout)
            .write_timeout(self.cfg.read_timeout)
            .get_updates_read_timeout(self.cfg.poll_timeout + 10)
            .post_init(self._post_init)
        )
        if base:
            base = base.rstrip("/")
            builder = builder.base_url(base if base.endswith("/bot") else f"{base}/bot")
            root = base[: -len("/bot")] if base.endswith("/bot") else base
            builder = builder.base_file_url(f"{root}/file/bot")
        app = builder.build()
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
        app.add_handler(CallbackQueryHandler(self.on_stale_button))
        app.add_error_handler(self.on_error)
        return app

    async def _post_init(self, app: Application) -> None:
        await app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])

    # ----- gatekeeping ------------------------------------------------------------
    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Allow-lists: others get one polite refusal per chat, then silence."""
        if not (self.allowed_users or self.allowed_chats):
            return
        user, chat = update.effective_user, update.effective_chat
        user_ok = not self.allowed_users or (user is not None and user.id in self.allowed_users)
        chat_ok = not self.allowed_chats or (chat is not None and chat.id in self.allowed_chats)
        if user_ok and chat_ok:
            return
        log.info("refused update from user %s in chat %s", user and user.id, chat and chat.id)
        # Fail closed: the update stops here whatever happens to the refusal. An
        # exception escaping this handler would let PTB run the answering handlers.
        try:
            key = chat.id if chat else (user.id if user else 0)
            # edits and channel posts are ignored for everyone, so outsiders get no
            # refusal for them either
            if key not in self._refused and update.message is not None:
                self._refused.add(key)
                await update.message.reply_text(NOT_ALLOWED)
            if update.callback_query:
                await update.callback_query.answer()
        except Exception as exc:  # any failure still denies
            log.warning("could not send the refusal to chat %s: %s", chat and chat.id,
                        type(exc).__name__)
        raise ApplicationHandlerStop

    def _over_rate(self, user_id: int) -> bool:
        now = time.monotonic()
        asked = self._asked[user_id]
        while asked and now - asked[0] > 60:
            asked.popleft()
        if len(asked) >= self.cfg.rate_limit_per_minute:
            return True
        asked.append(now)
        return False

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
                self._pool, self.engine.reset, _session(chat.id))
        await self._reply(update, ["Conversation forgotten. Ask me anything."])

    async def cmd_sources(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The passages behind this chat's last answer, in full."""
        chat = update.effective_chat
        assert chat is not None
        turn = await asyncio.get_running_loop().run_in_executor(
            self._pool, self.engine.last_turn, _session(chat.id))
        if turn is None:
            await self._reply(update, ["No answer yet in this chat: ask a question first."])
            return
        await self._reply(update, render_sources(turn.citations))

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
            username = context.bot.username
            mention = f"@{username}" if username else None
            replied_to_bot = (message.reply_to_message is not None
                              and message.reply_to_message.from_user is not None
                              and message.reply_to_message.from_user.id == context.bot.id)
            if mention and mention.lower() in text.lower():
                text = re.sub(re.escape(mention), " ", text, flags=re.I)
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

    async def on_sources_button(self, update: Update,
                                context: ContextTypes.DEFAULT_TYPE) -> None:
        """The inline "Sources" button: send the cited passages of that answer."""
        query = update.callback_query
        chat = update.effective_chat
        assert query is not None and chat is not None
        try:
            turn_id = int(str(query.data).split(":", 1)[1])
        except (IndexError, ValueError):
            turn_id = -1
        turn = await asyncio.get_running_loop().run_in_executor(
            self._pool, self.engine.sessions.get, _session(chat.id), turn_id)
        if turn is None:
            await query.answer("That answer is no longer available (the chat was reset). "
                               "Ask again.", show_alert=True)
            return
        await query.answer()
        await self._send(chat.id, render_sources(turn.citations), bot=update.get_bot(),
                         reply_to=query.message.message_id if query.message else None)

    async def on_stale_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Any other callback (old keyboards): acknowledge it so the client stops waiting."""
        if update.callback_query:
            await update.callback_query.answer("This button no longer works. Ask again.")

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log every error; tell the user when a message was being handled."""
        log.error("error while handling an update", exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None \
                and not isinstance(context.error, NetworkError):
            try:
                await context.bot.send_message(update.effective_chat.id,
                                               "Sorry, something went wrong. Please try again.")
            except TelegramError:
                log.warning("could not report the error to chat %s", update.effective_chat.id)

    # ----- answering ----------------------------------------------------------------
    async def _answer(self, update: Update, question: str) -> None:
        chat, user = update.effective_chat, update.effective_user
        assert chat is not None
        # counted on arrival, answered in turn: a "slow down" reply must not overtake
        # the answers queued before it in the same chat
        over_rate = user is not None and self._over_rate(user.id)
        async with self._chat_locks[chat.id]:  # one chat's replies stay in order
            if over_rate:
                await self._reply(update, [
                    f"You're asking faster than I can keep up ({self.cfg.rate_limit_per_minute}"
                    " questions a minute). Please wait a moment and ask again."],
                    html_mode=False)
                return
            typing = asyncio.create_task(self._keep_typing(chat.id, update))
            try:
                # With an LLM the answer is not streamed into the chat: nothing is shown
                # before the citation check has passed it (bot/llm.py), so "typing…"
                # runs until the checked answer is ready.
                answer = await asyncio.get_running_loop().run_in_executor(
                    self._pool, lambda: self.engine.answer(question, session=_session(chat.id)))
            except QabotError as exc:
                if not exc.for_end_user:  # operator's instructions go to the log only
                    log.error("could not answer in chat %s: %s", chat.id, exc)
                await self._reply(update, [esc(str(exc) if exc.for_end_user else UNAVAILABLE)])
                return
            finally:
                typing.cancel()
            keyboard = None
            if (answer.citations or answer.related) and answer.turn_id is not None:
                keyboard = InlineKeyboardMarkup(
                    [[InlineKeyboardButton("Sources", callback_data=f"src:{answer.turn_id}")]])
            await self._reply(update, render_answer(answer), keyboard=keyboard)

    async def _keep_typing(self, chat_id: int, update: Update) -> None:
        """'typing…' now and again every typing_interval seconds until cancelled."""
        bot = update.get_bot()
        while True:
            try:
                await bot.send_chat_action(chat_id, ChatAction.TYPING)
            except TelegramError as exc:  # cosmetic: never fail an answer over it
                log.debug("chat action failed: %s", exc)
            await asyncio.sleep(self.cfg.typing_interval)

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
        """Send parts in order; the keyboard goes on the last part. A timed-out send is
        not retried (it may have arrived: a retry could duplicate it)."""
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

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _session(chat_id: int) -> str:
    return f"tg:{chat_id}"


# ----- running ----------------------------------------------------------------------------
async def serve(app: Application, settings: TelegramSettings, stop: asyncio.Event, *,
                webhook_url: str | None = None, listen: str | None = None,
                port: int | None = None, secret_token: str | None = None) -> None:
    """Run until ``stop`` is set: start-up retries while the Bot API is unreachable, then
    long polling (default) or a webhook server."""
    if not await _until_reachable(app.initialize, stop):  # getMe
        return
    assert app.updater is not None
    try:
        if app.post_init:  # registers the commands (setMyCommands)
            await _until_reachable(lambda: app.post_init(app), stop)  # type: ignore[misc]
        if webhook_url:
            await app.updater.start_webhook(
                listen=listen or settings.listen, port=port or settings.port,
                url_path=_url_path(webhook_url), webhook_url=webhook_url,
                secret_token=secret_token, bootstrap_retries=-1,
                allowed_updates=Update.ALL_TYPES)
        else:
            await app.updater.start_polling(
                timeout=settings.poll_timeout, bootstrap_retries=-1,
                allowed_updates=Update.ALL_TYPES)
        await app.start()
        log.info("bot @%s running (%s)", app.bot.username, "webhook" if webhook_url else "polling")
        await _until_stopped(stop)
    finally:
        if app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()


# PTB names the task of its polling loop so; when the loop gives up (a revoked token)
# the task ends with the exception and nothing else in PTB reports it.
_POLLING_TASK = "Updater:start_polling:polling_task"


async def _until_stopped(stop: asyncio.Event) -> None:
    """Wait for ``stop``; raise if PTB's polling loop ends by itself (it does so only on
    a token the server rejects), so the process exits instead of idling."""
    polling = next((t for t in asyncio.all_tasks() if t.get_name() == _POLLING_TASK), None)
    waiter = asyncio.ensure_future(stop.wait())
    watched = {waiter} | ({polling} if polling else set())
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    if polling in done and not stop.is_set():
        waiter.cancel()
        exc = polling.exception()
        raise exc if exc else BotStoppedError("Polling stopped unexpectedly. Restart the bot.")


async def _until_reachable(action: Any, stop: asyncio.Event) -> bool:
    """Run a start-up call, retrying with backoff while the Bot API is down or failing
    (garbage replies included); a rejected token is not retried. False if ``stop`` was
    set first."""
    delay = 1.0
    while not stop.is_set():
        try:
            await action()
            return True
        except (InvalidToken, Forbidden):
            raise
        except TelegramError as exc:
            log.warning("Bot API not reachable (%s); retrying in %.0f s", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 30)
    return False


def _url_path(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).path.lstrip("/")


def run(engine: Engine, settings: Settings, *, webhook_url: str | None = None,
        listen: str | None = None, port: int | None = None,
        secret_token: str | None = None) -> None:
    """Blocking entry point for ``qabot telegram``: runs until SIGINT/SIGTERM."""
    import signal

    token = read_token(settings.telegram)
    protect_logs(token, secret_token or "")
    bot = QABot(engine, settings)
    app = bot.build(token)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, settings.telegram, stop, webhook_url=webhook_url, listen=listen,
                    port=port, secret_token=secret_token)

    secrets = (token, secret_token or "")
    try:
        asyncio.run(main())
    except (InvalidToken, Forbidden) as exc:
        # raised without its cause: PTB's message and traceback contain the token
        raise BotStoppedError(
            "Telegram rejected the bot token (" + redact(str(exc), secrets) + "). Get a "
            "valid token from @BotFather and set TELEGRAM_BOT_TOKEN.") from None
    except TelegramError as exc:
        raise BotStoppedError(f"The Telegram bot stopped: {redact(str(exc), secrets)}. "
                              "Check the Bot API URL and the network, then restart.") from None
    finally:
        bot.close()
