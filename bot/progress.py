"""Progress on stderr for the CLI's long commands (ingest, eval): a rich bar on a
terminal; anywhere else (a pipe, a log, CI) a plain line every
``PROGRESS_LINE_SECONDS``. Both show a percentage and an ETA against a total fixed at
the start, so the bar never moves backwards (bot/ingest.py ``Progress`` says how an
ingest's total is sized before the first file is read)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from bot.ingest import Progress

# A log, CI or a pipe gets a progress line this often: often enough to show that a
# two-minute ingest is moving, rarely enough not to flood the log.
PROGRESS_LINE_SECONDS = 5.0
# No ETA before this share is done: the first texts include start-up costs and would
# predict nonsense.
ETA_AFTER_FRACTION = 0.02


def eta_text(seconds: float) -> str:
    """75 -> "1m15s", 3725 -> "1h02m", 9 -> "9s"."""
    s = max(round(seconds), 0)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Feedback:
    """``with Feedback("Ingesting") as f: f.update(done, total, detail)``."""

    def __init__(self, label: str, *, stream: Any = None) -> None:
        self.label = label
        self._stream = stream or sys.stderr
        self._bar: Any = None
        self._started = time.monotonic()
        self._last = self._started

    def __enter__(self) -> Feedback:
        if self._stream.isatty():
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(file=self._stream), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None)
        return self

    def update(self, done: float, total: float, detail: str = "") -> None:
        described = f"{self.label} ({detail})" if detail else self.label
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total or None,
                             description=described)
            return
        now = time.monotonic()
        if now - self._last < PROGRESS_LINE_SECONDS:
            return
        self._last = now
        fraction = min(done / total, 1.0) if total > 0 else 0.0
        elapsed = now - self._started
        eta = (f", ETA {eta_text(elapsed * (1 - fraction) / fraction)}"
               if fraction >= ETA_AFTER_FRACTION else "")
        click.echo(f"{self.label}: {fraction:.0%}{f' ({detail})' if detail else ''}{eta}",
                   file=self._stream)

    def ingest(self, p: Progress) -> None:
        self.update(p.work_done, p.work_total,
                    f"{p.files_done}/{p.files_total} files read, {p.embedded:,} texts embedded")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
