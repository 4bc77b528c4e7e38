"""Run a real QABot Application against the fake Bot API, in a background thread.

Shared by the Telegram tests and ``bench/telegram_load.py``.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from bot.config import Settings, load_settings
from bot.engine import Engine
from bot.telegram import QABot, serve

from .telegram_api import FakeBotAPI


def make_settings(home: Path, docs: Path | None = None, **overrides: object) -> Settings:
    """Settings with state in ``home`` (and documents in ``docs``), no environment."""
    cli: dict[str, object] = {"paths.home": str(home), **overrides}
    if docs is not None:
        cli["paths.docs"] = str(docs)
    return load_settings(cli=cli, env={})


class RunningBot:
    """A QABot Application served in a background thread until ``stop``."""

    def __init__(self, home: Path, fake: FakeBotAPI, *, webhook: dict | None = None,
                 docs: Path | None = None, extra: dict[str, object] | None = None,
                 **telegram: object) -> None:
        overrides = {f"telegram.{k}": v for k, v in
                     {"poll_timeout": 1, "read_timeout": 3.0, "typing_interval": 0.5,
                      # answers in the test's own process unless a test asks for worker
                      # processes (each opens the index: seconds per bot started)
                      "workers": 1, **telegram}.items()}
        overrides.update(extra or {})
        self.settings = make_settings(home, docs, **overrides)
        self.engine = Engine(self.settings)
        self.bot = QABot(self.engine, self.settings)
        self.app = self.bot.build(fake.token, base_url=fake.base_url)
        self.bot.pool.start()
        self.webhook = webhook or {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            self._ready.set()
            await serve(self.app, self.settings.telegram, self.stop_event, **self.webhook)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self) -> RunningBot:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self._thread.join(30)
        self.bot.close()
        assert not self._thread.is_alive(), "bot did not stop"
        assert self.error is None, self.error
