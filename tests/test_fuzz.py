"""Property-based fuzzing of every input boundary (strategies and checks:
fakes/fuzz_targets.py). A short run here; ``python -m bench.fuzz`` runs 10,000
generated inputs a boundary and writes down what it found."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SEED, make_settings
from hypothesis import HealthCheck, given, settings

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
    check_document,
    check_question,
    check_setting,
    check_testset,
)
from fakes.harness import RunningBot
from fakes.telegram_api import FakeBotAPI

# a short run: every boundary, every make test; the long one is bench/fuzz.py
SHORT = settings(max_examples=60, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed article, plus a link to a file outside the folder whose text no answer
    may ever show."""
    base = tmp_path_factory.mktemp("fuzz-index")
    docs, outside = base / "docs", base / "outside"
    docs.mkdir()
    outside.mkdir()
    shutil.copy(SEED, docs / SEED.name)
    (outside / "secret.txt").write_text(f"霍城县 总投资 {OUTSIDE_MARK} 密码 password\n", "utf-8")
    (docs / "link.txt").symlink_to(outside / "secret.txt")
    settings_ = make_settings(base / "home", docs, **{"embeddings.backend": "hashing"})
    ingest(settings_, [docs], make_embeddings(settings_.embeddings))
    return base / "home"


@pytest.fixture(scope="module")
def engine(fuzz_home: Path) -> Engine:
    return Engine(make_settings(fuzz_home, **{"embeddings.backend": "hashing"}),
                  sessions=SessionStore(":memory:"))


@SHORT
@given(name=FILE_NAME, raw=DOCUMENT_BYTES)
def test_fuzz_loaders_and_chunker(scratch: Path, name: str, raw: bytes) -> None:
    check_document(scratch, name, raw)


@SHORT
@given(question=LONG_TEXT)
def test_fuzz_questions(engine: Engine, question: str) -> None:
    check_question(engine, question)


@SHORT
@given(setting=SETTING)
def test_fuzz_settings(scratch: Path, setting: tuple[str, str]) -> None:
    check_setting(scratch, *setting)


@SHORT
@given(content=TESTSET)
def test_fuzz_evaluation_files(scratch: Path, content: str) -> None:
    check_testset(scratch, content)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def running(fuzz_home: Path) -> Iterator[tuple[FakeBotAPI, _Errors]]:
    fake = FakeBotAPI().start()
    errors = _Errors()
    watched = [logging.getLogger("bot"), logging.getLogger("telegram")]
    for logger in watched:
        logger.addHandler(errors)
    try:
        with RunningBot(fuzz_home, fake, extra={"embeddings.backend": "hashing"}):
            yield fake, errors
            # the bot still answers, and every fuzzed update was handled without an error
            fake.message(424242, 4242, "霍城县江苏医院综合病房大楼总投资多少?")
            fake.wait_for(lambda: fake.sent.get(424242), timeout=60)
            time.sleep(1.0)
    finally:
        for logger in watched:
            logger.removeHandler(errors)
        fake.close()
    assert not errors.records, [r.getMessage() for r in errors.records][:5]
    sent = [m.plain for chat in fake.sent.values() for m in chat]
    assert not any(OUTSIDE_MARK in text for text in sent)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(update=UPDATE)
def test_fuzz_telegram_updates(running: tuple[FakeBotAPI, _Errors], update: dict) -> None:
    fake, errors = running
    fake.push(update)
    assert not errors.records, [r.getMessage() for r in errors.records][:5]
