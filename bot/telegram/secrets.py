"""The bot token and the webhook secret: read once, scrubbed from every log record."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from bot.config import TelegramSettings
from bot.errors import ConfigError


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
