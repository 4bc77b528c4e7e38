"""The long fuzz run: generated inputs at every boundary, counted.

The same strategies and checks as tests/test_fuzz.py (fakes/fuzz_targets.py), with
``--examples`` inputs a boundary (default 10,000). Each input has ``--deadline`` seconds;
one that takes longer is stopped and counted as a hang. An unexpected exception (not one
of the project's named errors) or text from outside the ingested folder in an answer
counts as unexpected; the first few of each are printed. Telegram updates go to the
real bot through the fake Bot API in batches; a batch not handled within the deadline
counts as a hang, and an error logged while handling one as unexpected.

    python -m bench.fuzz [--examples 10000] [--deadline 10] [--only questions,...]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.embeddings import make_embeddings
from bot.engine import Engine
from bot.ingest import ingest
from bot.sessions import SessionStore
from fakes.fuzz_targets import (
    DOCUMENT_BYTES,
    FILE_NAME,
    LONG_TEXT,
    OUTSIDE_MARK,
    SETTING,
    TESTSET,
    UPDATE,
    Unexpected,
    check_document,
    check_question,
    check_setting,
    check_testset,
)
from fakes.harness import RunningBot, make_settings
from fakes.telegram_api import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent

BOUNDARIES = ("documents", "questions", "settings", "testsets", "telegram")
TELEGRAM_BATCH = 100


class Hang(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise Hang


class Tally:
    def __init__(self, name: str) -> None:
        self.name, self.inputs, self.unexpected, self.hangs = name, 0, 0, 0
        self.examples: list[str] = []
        self.started = time.perf_counter()

    def line(self) -> str:
        seconds = time.perf_counter() - self.started
        return (f"| {self.name} | {self.inputs:,} | {self.unexpected} | {self.hangs} | "
                f"{seconds:.0f} s |")


def fuzz(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None],
         examples: int, deadline: float) -> Tally:
    tally = Tally(name)

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def body(value: Any) -> None:
        tally.inputs += 1
        signal.setitimer(signal.ITIMER_REAL, deadline)
        try:
            check(value)
        except Hang:
            tally.hangs += 1
            tally.examples.append(f"hang: {value!r:.200}")
        except Unexpected as exc:
            tally.unexpected += 1
            tally.examples.append(f"{exc}"[:300])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    body()
    return tally


def fuzz_telegram(home: Path, examples: int, deadline: float) -> Tally:
    tally = Tally("telegram updates")
    updates: list[dict[str, Any]] = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(UPDATE)
    def collect(update: dict[str, Any]) -> None:
        updates.append(update)

    collect()

    class Errors(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            tally.unexpected += 1
            tally.examples.append(record.getMessage()[:300])

    handler = Errors(logging.ERROR)
    for logger in ("bot", "telegram"):
        logging.getLogger(logger).addHandler(handler)
    fake = FakeBotAPI().start()
    try:
        with RunningBot(home, fake, extra={"embeddings.backend": "hashing"},
                        rate_limit_per_minute=1_000_000):
            for i in range(0, len(updates), TELEGRAM_BATCH):
                for update in updates[i:i + TELEGRAM_BATCH]:
                    fake.push(update)
                    tally.inputs += 1
                try:  # the batch is handled when the bot has confirmed every update
                    fake.wait_for(lambda: not fake.updates, timeout=deadline * TELEGRAM_BATCH)
                except AssertionError:
                    tally.hangs += 1
            fake.message(424242, 4242, "霍城县江苏医院综合病房大楼总投资多少?")
            fake.wait_for(lambda: fake.sent.get(424242), timeout=120)
            time.sleep(2)
    finally:
        fake.close()
        for logger in ("bot", "telegram"):
            logging.getLogger(logger).removeHandler(handler)
    sent = [m.plain for chat in fake.sent.values() for m in chat]
    leaked = sum(OUTSIDE_MARK in text for text in sent)
    tally.unexpected += leaked
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=10.0)
    parser.add_argument("--only", default=",".join(BOUNDARIES))
    args = parser.parse_args()
    only = set(args.only.split(","))
    signal.signal(signal.SIGALRM, _alarm)
    logging.basicConfig(level=logging.CRITICAL)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        docs, outside, scratch = base / "docs", base / "outside", base / "scratch"
        for d in (docs, outside, scratch):
            d.mkdir()
        shutil.copy(next((ROOT / "seeds").glob("*.txt")), docs)
        (outside / "secret.txt").write_text(f"霍城县 总投资 {OUTSIDE_MARK} 密码\n", "utf-8")
        (docs / "link.txt").symlink_to(outside / "secret.txt")
        settings_ = make_settings(base / "home", docs, **{"embeddings.backend": "hashing"})
        ingest(settings_, [docs], make_embeddings(settings_.embeddings))
        engine = Engine(settings_, sessions=SessionStore(":memory:"))

        plans: list[tuple[str, Callable[[], Tally]]] = [
            ("documents", lambda: fuzz("document bytes and names", st.tuples(FILE_NAME,
                                       DOCUMENT_BYTES), lambda v: check_document(scratch, *v),
                                       args.examples, args.deadline)),
            ("questions", lambda: fuzz("questions", LONG_TEXT,
                                       lambda q: check_question(engine, q),
                                       args.examples, args.deadline)),
            ("settings", lambda: fuzz("config values", SETTING,
                                      lambda v: check_setting(scratch, *v),
                                      args.examples, args.deadline)),
            ("testsets", lambda: fuzz("evaluation files", TESTSET,
                                      lambda c: check_testset(scratch, c),
                                      args.examples, args.deadline)),
            ("telegram", lambda: fuzz_telegram(base / "home", args.examples, args.deadline)),
        ]
        print("| boundary | inputs | unexpected | hangs | time |\n|---|---|---|---|---|",
              flush=True)
        tallies = []
        for key, plan in plans:
            if key in only:
                tally = plan()
                tallies.append(tally)
                print(tally.line(), flush=True)
        for tally in tallies:
            for example in tally.examples[:5]:
                print(f"  {tally.name}: {example}")
        sys.exit(1 if any(t.unexpected or t.hangs for t in tallies) else 0)


if __name__ == "__main__":
    main()
