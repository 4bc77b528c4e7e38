"""Who may use the bot and how fast: the allow-list gate, the per-user rate limit, and
the one-process coordinator (updates handled once, rate counted here, no lock across
processes; bot/pg.py has the one replicas share).

The gate runs before every other handler (group -1) and fails closed: an update it
cannot check, or whose refusal cannot be sent, is stopped all the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes, filters

log = logging.getLogger(__name__)

NOT_ALLOWED = "Sorry, this bot is private. Ask its owner to add you to the allow-list."


def parse_ids(value: str) -> frozenset[int]:
    """``"111, 222"`` -> {111, 222} (telegram.allowed_users / allowed_chats)."""
    return frozenset(int(p) for p in value.split(",") if p.strip())


class AllowList:
    """telegram.allowed_users and allowed_chats; empty lists let everyone in.

    Messages (new or edited, channel posts) are checked by PTB's own ``filters.User`` and
    ``filters.Chat``. Those filters see only message updates, so the others (a tap on an
    inline button) are checked on the update's user and chat against the same ids."""

    def __init__(self, users: frozenset[int], chats: frozenset[int]) -> None:
        self.users, self.chats = users, chats
        self.messages: filters.BaseFilter = filters.ALL
        if users:
            self.messages = self.messages & filters.User(user_id=users)
        if chats:
            self.messages = self.messages & filters.Chat(chat_id=chats)

    @property
    def active(self) -> bool:
        return bool(self.users or self.chats)

    def admits(self, update: Update) -> bool:
        if not self.active:
            return True
        try:
            if update.callback_query is None and update.effective_message is not None:
                return bool(self.messages.check_update(update))
            user, chat = update.effective_user, update.effective_chat
            user_ok = not self.users or (user is not None and user.id in self.users)
            chat_ok = not self.chats or (chat is not None and chat.id in self.chats)
            return user_ok and chat_ok
        except Exception:  # an update the check cannot read is denied
            log.warning("could not check an update against the allow-list; denied")
            return False


class Gate:
    """The group -1 handler: outsiders get one polite refusal per chat, then silence."""

    def __init__(self, allow: AllowList) -> None:
        self.allow = allow
        self._refused: set[int] = set()

    async def __call__(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if self.allow.admits(update):
            return
        user, chat = update.effective_user, update.effective_chat
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


class RateLimiter:
    """At most ``per_minute`` questions per user in any sliding 60-second window."""

    WINDOW_S = 60.0

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._asked: dict[int, deque[float]] = defaultdict(deque)

    def allow(self, user_id: int) -> bool:
        """Count a question; False (and not counted) when the user is over the limit."""
        now = self.clock()
        asked = self._asked[user_id]
        while asked and now - asked[0] > self.WINDOW_S:
            asked.popleft()
        if len(asked) >= self.per_minute:
            return False
        asked.append(now)
        return True


class LocalCoordinator:
    """What replicas would have to agree on, for one process: which updates it handled
    (the last ``UPDATES_REMEMBERED``: a webhook retry comes within minutes), how many
    questions each user asked (``RateLimiter``), and chat turns, which the process's own
    per-chat ordering makes always free."""

    UPDATES_REMEMBERED = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self._limiters: dict[int, RateLimiter] = {}
        self._lock = threading.Lock()

    def claim_update(self, update_id: int) -> bool:
        with self._lock:
            if update_id in self._seen:
                return False
            self._seen.add(update_id)
            self._order.append(update_id)
            if len(self._order) > self.UPDATES_REMEMBERED:
                self._seen.discard(self._order.popleft())
            return True

    def allow(self, user_id: int, per_minute: int) -> bool:
        with self._lock:
            limiter = self._limiters.get(per_minute)
            if limiter is None:
                limiter = self._limiters[per_minute] = RateLimiter(per_minute, self.clock)
            return limiter.allow(user_id)

    # one process orders its own chats (an asyncio lock per chat): its turn is always free
    def try_chat_turn(self, chat_id: int) -> str | None:
        return ""

    def renew_chat_turn(self, chat_id: int, token: str) -> None:
        return None

    def end_chat_turn(self, chat_id: int, token: str) -> None:
        return None
