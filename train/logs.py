"""The training scripts' log: one timestamped line to stdout and to a file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def logger(path: Path) -> Callable[[str], None]:
    """``log(msg)`` printing ``HH:MM:SS msg`` and appending it to ``path``. The file is
    opened for each line, so a run that is killed keeps every line it logged."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    return log
