"""A real aiohttp server on 127.0.0.1 in its own thread and event loop, for fakes.

Subclasses add their routes in ``routes``. ``stop`` stops answering (connections are
refused) but keeps state; ``start`` serves again on the same port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web


class ThreadedServer:
    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def on_start(self) -> None:
        """Called in the server's loop before it listens (e.g. to make conditions)."""

    def start(self) -> Any:
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
            self._thread.start()
        self.call(self._start_site())
        return self

    def stop(self) -> None:
        self.call(self._stop_site())

    def close(self) -> None:
        if self._loop is None:
            return
        self.call(self._stop_site())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(5)

    @property
    def running(self) -> bool:
        return self._runner is not None

    def call(self, coro: Any) -> Any:
        """Run a coroutine in the server's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"condition not met within {timeout}s")

    async def _start_site(self) -> None:
        if self._runner is not None:
            return
        await self.on_start()
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop_site(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
