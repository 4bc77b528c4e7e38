"""Telegram front end: a python-telegram-bot v22 Application over the one answer path.

Each chat is a session (``tg:<chat id>``) stored in SQLite, so follow-ups work and
survive restarts. Answers are HTML rendered by bot/present.py, everything escaped,
split below Telegram's 4096-character limit on sentence boundaries, with an inline
"Sources" button when there are passages to show.

* ``secrets``: the token (``TELEGRAM_BOT_TOKEN`` or ``telegram.token_file``), scrubbed
  from every log record;
* ``guards``: the allow-list gate (PTB filters, fail closed) and the rate limiter;
* ``handlers``: ``QABot``, the commands and the answering; ``buttons``: Sources and
  👍/👎 under an answer; ``turns``: one chat's replies in order, across replicas too;
  ``sending``: reply parts in order, no retry of a timed-out send, the typing indicator;
* ``runner``: ``serve`` and ``run``. Faults: ``AIORateLimiter`` re-sends after a 429
  ``retry_after``; PTB's polling loop backs off on 5xx and refused connections;
  start-up retries until the Bot API answers.
"""

from bot.present import TELEGRAM_LIMIT as LIMIT
from bot.present import block, tg_len
from bot.present import telegram_answer as render_answer
from bot.present import telegram_sources as render_sources
from bot.telegram.guards import NOT_ALLOWED, AllowList, RateLimiter
from bot.telegram.handlers import ONLY_TEXT, UNAVAILABLE, QABot
from bot.telegram.runner import run, serve
from bot.telegram.secrets import RedactFilter, protect_logs, read_token, redact

__all__ = [
    "LIMIT", "NOT_ALLOWED", "ONLY_TEXT", "UNAVAILABLE", "AllowList", "QABot", "RateLimiter",
    "RedactFilter", "block", "protect_logs", "read_token", "redact", "render_answer",
    "render_sources", "run", "serve", "tg_len",
]
