"""Running the Application: start-up that waits for the Bot API, polling or a webhook,
a clean stop on SIGINT/SIGTERM, and errors without the token in them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import Update
from telegram.error import Forbidden, InvalidToken, TelegramError

from bot.config import Settings, TelegramSettings
from bot.engine import Engine
from bot.errors import BotStoppedError
from bot.telegram.handlers import App, QABot
from bot.telegram.secrets import protect_logs, read_token, redact
from bot.wording import count
from bot.workers import AnswerPool

log = logging.getLogger(__name__)


async def serve(app: App, settings: TelegramSettings, stop: asyncio.Event, *,
                webhook_url: str | None = None, listen: str | None = None,
                port: int | None = None, secret_token: str | None = None,
                about: str = "") -> None:
    """Run until ``stop`` is set: start-up retries while the Bot API is unreachable, then
    long polling (default) or a webhook server. ``about`` (what it serves, to whom) goes
    into the one start line an operator reads."""
    if not await _until_reachable(app.initialize, stop):  # getMe
        return
    assert app.updater is not None
    try:
        if app.post_init:  # registers the commands (setMyCommands)
            await _until_reachable(lambda: app.post_init(app), stop)
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
        mode = (f"webhook {webhook_url} (listening on {listen or settings.listen}:"
                f"{port or settings.port})" if webhook_url else "long polling")
        log.info("qabot telegram: @%s (id %s) running, %s%s", app.bot.username, app.bot.id,
                 mode, f"; {about}" if about else "")
        await _until_stopped(stop)
        log.info("qabot telegram: @%s stopping", app.bot.username)
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
    try:
        bot.pool.start()  # workers open the index now, before the first chat waits on them
    except BaseException:
        bot.close()
        raise

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, settings.telegram, stop, webhook_url=webhook_url, listen=listen,
                    port=port, secret_token=secret_token,
                    about=describe(engine, settings, bot.pool))

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
    log.info("qabot telegram: stopped")


def describe(engine: Engine, settings: Settings, pool: AnswerPool | None = None) -> str:
    """Access, index, answerer and who answers, for the start line: what an operator
    checks first."""
    from bot.config import answerer_kind

    cfg = settings.telegram
    if cfg.allowed_users or cfg.allowed_chats:
        parts = [f"users {cfg.allowed_users}" if cfg.allowed_users else "",
                 f"chats {cfg.allowed_chats}" if cfg.allowed_chats else ""]
        access = "restricted to " + " and ".join(p for p in parts if p)
    else:
        access = "PUBLIC: anyone may ask (telegram.public)"
    stats = engine.stats()
    where = (f"{settings.store.url} ({settings.store.collection})" if settings.store.url
             else str(settings.home))
    line = (f"access {access}; index {where}: {count(stats.documents, 'document')}, "
            f"{count(stats.chunks, 'passage')}, {stats.embedder}; answerer "
            f"{answerer_kind(settings)}")
    if pool is not None:
        line += ("; " + count(pool.workers, "answer worker process", "answer worker processes")
                 if pool.processes else "; answering in this process")
    return line
