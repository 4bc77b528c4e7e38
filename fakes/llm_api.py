"""Fake LLM servers over real HTTP: OpenAI-compatible chat completions and Ollama chat.

Each request takes the next scripted behaviour from ``script`` (or ``default`` when the
script is empty) and is recorded in ``requests``:

* ``Reply(text, chunks=n, delay=s)``: the answer, streamed in ``n`` pieces ``s`` apart
  when the client asks for a stream;
* ``Fail(status, body)``: an HTTP error; ``Hang(seconds)``: no answer for a while;
* ``Malformed()``: a 200 whose body is not JSON; ``Reply("")``: empty content.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .server import ThreadedServer


@dataclass
class Reply:
    text: str
    chunks: int = 3
    delay: float = 0.0


@dataclass
class Fail:
    status: int = 500
    body: str = '{"error": {"message": "internal error", "type": "server_error"}}'


@dataclass
class Hang:
    seconds: float = 30.0


@dataclass
class Malformed:
    pass


Behaviour = Reply | Fail | Hang | Malformed


class FakeLLM(ThreadedServer):
    def __init__(self) -> None:
        super().__init__()
        self.script: list[Behaviour] = []
        self.default: Behaviour = Reply("默认回答 [1]")
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/api/chat", self._ollama)

    def _next(self, body: dict[str, Any]) -> Behaviour:
        self.requests.append(body)
        return self.script.pop(0) if self.script else self.default

    async def _take(self, request: web.Request) -> tuple[dict[str, Any], Reply | web.Response]:
        """Record the request; the scripted reply, or the response a fault produces."""
        body = await request.json()
        behaviour = self._next(body)
        if isinstance(behaviour, Hang):
            await asyncio.sleep(behaviour.seconds)
            return body, web.Response(status=504)
        if isinstance(behaviour, Fail):
            return body, web.Response(status=behaviour.status, text=behaviour.body,
                                      content_type="application/json")
        if isinstance(behaviour, Malformed):
            return body, web.Response(status=200, text="<html>not json",
                                      content_type="application/json")
        return body, behaviour

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._take(request)
        if not isinstance(behaviour, Reply):
            return behaviour
        model = body.get("model", "fake")
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": behaviour.text}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in _pieces(behaviour.text, behaviour.chunks):
            chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": model,
                     "choices": [{"index": 0, "delta": {"content": piece},
                                  "finish_reason": None}]}
            await resp.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
            await asyncio.sleep(behaviour.delay)
        done = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await resp.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        await resp.write_eof()
        return resp

    async def _ollama(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._take(request)
        if not isinstance(behaviour, Reply):
            return behaviour
        base = {"model": body.get("model", "fake"), "created_at": "2026-11-30T00:00:00Z"}
        final = {**base, "message": {"role": "assistant", "content": ""}, "done": True,
                 "done_reason": "stop", "total_duration": 1, "eval_count": 1}
        if body.get("stream") is False:
            return web.json_response({**final, "message": {"role": "assistant",
                                                           "content": behaviour.text}})
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for piece in _pieces(behaviour.text, behaviour.chunks):
            line = {**base, "message": {"role": "assistant", "content": piece}, "done": False}
            await resp.write((json.dumps(line, ensure_ascii=False) + "\n").encode())
            await asyncio.sleep(behaviour.delay)
        await resp.write((json.dumps(final) + "\n").encode())
        await resp.write_eof()
        return resp


def _pieces(text: str, n: int) -> list[str]:
    if not text:
        return [""]
    size = max(1, -(-len(text) // max(1, n)))
    return [text[i:i + size] for i in range(0, len(text), size)]
