"""A fake Telegram Bot API server for tests: real HTTP on 127.0.0.1, in its own thread.

It implements what the bot uses (getMe, setMyCommands, deleteWebhook, setWebhook,
getWebhookInfo, long-polled getUpdates with offset and timeout, sendMessage,
editMessageText, sendChatAction, answerCallbackQuery, close, logOut) and answers errors
in the Bot API shape ``{"ok": false, "error_code", "description", "parameters"}``.
Like the real API it rejects texts over 4096 characters ("Bad Request: message is too
long") and HTML that does not parse ("Bad Request: can't parse entities").

Faults are injected per method (``fail``): an HTTP status with a description and an
optional ``retry_after``, a response delay, for ``count`` calls. The server can go
down and come back on the same port (``stop`` / ``start``).

Parameters arrive form-encoded with non-string values JSON-encoded (what PTB sends);
JSON bodies are accepted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from aiohttp import ClientSession, web

from .server import ThreadedServer

TOKEN = "123456:TEST-token-do-not-log"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "QA", "username": "qa_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False}
_TEXT_FIELDS = {"text", "parse_mode", "callback_query_id", "url", "secret_token", "action",
                "callback_data", "description", "language_code"}
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre",
                 "a", "tg-spoiler", "span", "blockquote", "tg-emoji"}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_BAD_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)")


@dataclass
class Fault:
    status: int = 500
    description: str = "Internal Server Error"
    retry_after: int | None = None
    delay: float = 0.0  # seconds before answering (the call still takes effect)
    count: int = 1
    record_first: bool = True  # delay faults: apply the call, then answer late
    body: str | None = None  # answer 200 with this raw body instead (garbage JSON)


@dataclass
class Sent:
    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    reply_to: int | None
    at: float = field(default_factory=time.monotonic)

    @property
    def plain(self) -> str:
        return unescape(_TAG.sub("", self.text)) if self.parse_mode == "HTML" else self.text


class FakeBotAPI(ThreadedServer):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.updates: list[dict[str, Any]] = []
        self.sent: dict[int, list[Sent]] = defaultdict(list)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.chat_actions: list[tuple[int, str, float]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] = {}
        self.webhook_urls: set[str] = set()  # every URL a bot (or replica) registered
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self._next_update = 1
        self._next_message = 1000
        self.edits: list[tuple[int, int, float]] = []  # (chat, message id, monotonic time)
        self._lock = threading.Lock()
        self._new_update: asyncio.Condition | None = None

    # ----- lifecycle ------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._handle)

    async def on_start(self) -> None:
        self._new_update = asyncio.Condition()

    # ----- driving the bot from a test -------------------------------------------------
    def fail(self, method: str, **fault: Any) -> None:
        self.faults[method].append(Fault(**fault))

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            update = {"update_id": self._next_update, **update}
            self._next_update += 1
            self.updates.append(update)
        if self.running:
            self.call(self._notify())
        return update

    def message(self, chat_id: int, user_id: int, text: str | None = None, *,
                chat_type: str = "private", reply_to: dict[str, Any] | None = None,
                edited: bool = False, **content: Any) -> dict[str, Any]:
        """Push a message update; ``content`` holds non-text payloads (sticker=...)."""
        with self._lock:
            self._next_message += 1
            message_id = self._next_message
        msg: dict[str, Any] = {
            "message_id": message_id, "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type,
                     **({"title": f"group {chat_id}"} if chat_type != "private"
                        else {"first_name": f"user{user_id}"})},
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            **content,
        }
        if text is not None:
            msg["text"] = text
            # entities as Telegram marks them: offsets and lengths in UTF-16 code units
            entities = []
            if text.startswith("/"):
                command = text.split()[0]
                entities.append({"type": "bot_command", "offset": 0, "length": _u16(command)})
            entities += [{"type": "mention", "offset": _u16(text[:m.start()]),
                          "length": _u16(m.group(0))}
                         for m in re.finditer(r"(?<!\w)@[A-Za-z0-9_]{5,32}", text)]
            if entities:
                msg["entities"] = entities
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        if edited:
            msg["edit_date"] = int(time.time())
        return self.push({"edited_message" if edited else "message": msg})

    def click(self, chat_id: int, user_id: int, sent: Sent, data: str) -> dict[str, Any]:
        """Push a callback query: the user tapped an inline button on ``sent``."""
        return self.push({"callback_query": {
            "id": f"cb{time.monotonic_ns()}", "chat_instance": str(chat_id),
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            "data": data,
            "message": {"message_id": sent.message_id, "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"}, "text": sent.plain,
                        "from": BOT_USER},
        }})

    def texts(self, chat_id: int) -> list[str]:
        return [m.plain for m in self.sent.get(chat_id, [])]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        try:
            return super().wait_for(predicate, timeout)
        except AssertionError:
            sent = {k: [m.plain[:60] for m in v] for k, v in self.sent.items()}
            raise AssertionError(f"condition not met within {timeout}s; sent so far: "
                                 f"{sent}") from None

    async def deliver_webhook(self, update: dict[str, Any], secret: str | None) -> int:
        """POST an update to the registered webhook as Telegram would; returns the status."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with ClientSession() as session, session.post(
                self.webhook["url"], json=update, headers=headers) as resp:
            return resp.status

    # ----- the API ----------------------------------------------------------------------
    async def _notify(self) -> None:
        assert self._new_update is not None
        async with self._new_update:
            self._new_update.notify_all()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append((method, params))
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        faults = self.faults.get(method)
        if faults:
            fault = faults[0]
            fault.count -= 1
            if fault.count <= 0:
                faults.pop(0)
            if fault.delay:
                if fault.record_first and fault.status < 400:
                    response = await handler(params)
                    await asyncio.sleep(fault.delay)
                    return response
                await asyncio.sleep(fault.delay)
            if fault.body is not None:
                return web.Response(text=fault.body, content_type="application/json")
            if fault.status >= 400:
                return _error(fault.status, fault.description, fault.retry_after)
        return await handler(params)

    async def _api_getMe(self, p: dict[str, Any]) -> web.Response:
        return _ok(BOT_USER)

    async def _api_setMyCommands(self, p: dict[str, Any]) -> web.Response:
        self.commands = list(p.get("commands", []))
        return _ok(True)

    async def _api_deleteWebhook(self, p: dict[str, Any]) -> web.Response:
        self.webhook = {}
        return _ok(True)

    async def _api_setWebhook(self, p: dict[str, Any]) -> web.Response:
        self.webhook = {"url": p["url"], "secret_token": p.get("secret_token")}
        self.webhook_urls.add(p["url"])
        return _ok(True)

    async def _api_getWebhookInfo(self, p: dict[str, Any]) -> web.Response:
        return _ok({"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                    "pending_update_count": 0})

    async def _api_close(self, p: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _api_logOut(self, p: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _api_getUpdates(self, p: dict[str, Any]) -> web.Response:
        offset = int(p.get("offset") or 0)
        timeout = float(p.get("timeout") or 0)
        limit = int(p.get("limit") or 100)
        with self._lock:  # offset confirms everything before it
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        assert self._new_update is not None
        while True:
            with self._lock:
                ready = [u for u in self.updates if u["update_id"] >= offset][:limit]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0:
                return _ok(ready)
            async with self._new_update:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_update.wait(), timeout=min(remaining, 0.5))

    async def _api_sendMessage(self, p: dict[str, Any]) -> web.Response:
        text = str(p.get("text", ""))
        parse_mode = p.get("parse_mode")
        problem = _check_text(text, parse_mode)
        if problem:
            return _error(400, problem)
        chat_id = int(p["chat_id"])
        with self._lock:
            self._next_message += 1
            message_id = self._next_message
        reply = p.get("reply_parameters") or {}
        sent = Sent(chat_id, message_id, text, parse_mode, p.get("reply_markup"),
                    reply.get("message_id") or p.get("reply_to_message_id"))
        self.sent[chat_id].append(sent)
        result = {"message_id": message_id, "date": int(time.time()), "text": sent.plain,
                  "chat": {"id": chat_id, "type": "private"}, "from": BOT_USER}
        return _ok(result)

    async def _api_editMessageText(self, p: dict[str, Any]) -> web.Response:
        text = str(p.get("text", ""))
        problem = _check_text(text, p.get("parse_mode"))
        if problem:
            return _error(400, problem)
        chat_id, message_id = int(p["chat_id"]), int(p["message_id"])
        for m in self.sent.get(chat_id, []):
            if m.message_id == message_id:
                m.text, m.parse_mode = text, p.get("parse_mode")
                m.reply_markup = p.get("reply_markup") or m.reply_markup
                self.edits.append((chat_id, message_id, time.monotonic()))
                return _ok({"message_id": message_id, "date": int(time.time()), "text": m.plain,
                            "chat": {"id": chat_id, "type": "private"}, "from": BOT_USER})
        return _error(400, "Bad Request: message to edit not found")

    async def _api_sendChatAction(self, p: dict[str, Any]) -> web.Response:
        self.chat_actions.append((int(p["chat_id"]), str(p.get("action")), time.monotonic()))
        return _ok(True)

    async def _api_answerCallbackQuery(self, p: dict[str, Any]) -> web.Response:
        self.callback_answers.append(p)
        return _ok(True)


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return dict(await request.json())
    form = await request.post()
    out: dict[str, Any] = dict(request.query)
    for key, value in form.items():
        if not isinstance(value, str):
            continue
        if key in _TEXT_FIELDS:
            out[key] = value
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _check_text(text: str, parse_mode: str | None) -> str | None:
    if not text.strip():
        return "Bad Request: message text is empty"
    visible = text
    if parse_mode == "HTML":
        stack: list[str] = []
        pos = 0
        for m in _TAG.finditer(text):
            if "<" in text[pos:m.start()] or ">" in text[pos:m.start()]:
                return "Bad Request: can't parse entities: unexpected < or >"
            closing, tag = m.group(1), m.group(2).lower()
            if tag not in _ALLOWED_TAGS:
                return f"Bad Request: can't parse entities: Unsupported start tag \"{tag}\""
            if closing:
                if not stack or stack.pop() != tag:
                    return f"Bad Request: can't parse entities: Unmatched end tag \"{tag}\""
            else:
                stack.append(tag)
            pos = m.end()
        if "<" in text[pos:] or ">" in text[pos:]:
            return "Bad Request: can't parse entities: unexpected < or >"
        if stack:
            return f"Bad Request: can't parse entities: unclosed tag \"{stack[-1]}\""
        if _BAD_AMP.search(text):
            return "Bad Request: can't parse entities: Can't find end of the entity"
        visible = unescape(_TAG.sub("", text))
    if len(visible.encode("utf-16-le")) // 2 > 4096:
        return "Bad Request: message is too long"
    return None


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)
