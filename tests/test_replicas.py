"""Two `qabot telegram --webhook` replicas behind one (simulated) proxy, sharing a real
PostgreSQL (sessions, handled updates, rate limits, chat locks) and a real `chroma run`
server (the index), against the fake Bot API: the layout docs/deploy.md describes,
started here with the commands that page gives.

The proxy is this test: it POSTs each update to one replica or the other, as a load
balancer would, and once to both (a retry that reached both)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, SEED

from bot.telegram import NOT_ALLOWED
from fakes.postgres import PASSWORD
from fakes.telegram_api import TOKEN, FakeBotAPI

pytestmark = pytest.mark.slow
SECRET = "replica-webhook-s3cret"
RATE = 4  # questions per user per minute, across both replicas


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, update: dict) -> int:
    request = urllib.request.Request(url, data=json.dumps(update).encode(), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


@pytest.fixture
def deployment(tmp_path: Path, chroma_server: str, postgres_url: str):
    """An index on the Chroma server, then two replicas: yields (fake, [hook urls],
    [processes])."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / SEED.name).write_bytes(SEED.read_bytes())
    collection = f"replicas{os.getpid()}"
    base = {**os.environ, "QABOT_STORE_URL": chroma_server,
            "QABOT_STORE_COLLECTION": collection}
    done = subprocess.run([sys.executable, "-m", "bot", "ingest", str(docs)], cwd=ROOT,
                          env={**base, "QABOT_HOME": str(tmp_path / "ingest")},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    fake = FakeBotAPI().start()
    hooks, procs = [], []
    try:
        for name in ("a", "b"):
            port = _port()
            hooks.append(f"http://127.0.0.1:{port}/hook")
            env = {**base, "QABOT_HOME": str(tmp_path / name),  # each its own machine
                   "QABOT_SESSION_URL": postgres_url, "TELEGRAM_BOT_TOKEN": TOKEN,
                   "TELEGRAM_BASE_URL": fake.base_url, "TELEGRAM_WEBHOOK_SECRET": SECRET,
                   "QABOT_TELEGRAM_ALLOWED_USERS": "11,22",
                   "QABOT_TELEGRAM_RATE_LIMIT_PER_MINUTE": str(RATE),
                   "QABOT_TELEGRAM_WORKERS": "1"}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bot", "telegram", "--webhook", hooks[-1],
                 "--listen", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True))
        for hook in hooks:
            _wait_listening(hook)
        yield fake, hooks, procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        fake.close()


def _wait_listening(hook: str) -> None:
    port = int(hook.rsplit(":", 1)[1].split("/")[0])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError(f"replica at {hook} never listened")


def test_two_replicas_share_chats_updates_strangers_and_rate_limits(deployment) -> None:
    fake, (a, b), procs = deployment

    def texts(chat: int, n: int) -> list[str]:
        return fake.wait_for(lambda: len(fake.texts(chat)) >= n and fake.texts(chat), 90)

    # a question on one replica, its follow-up on the other
    assert _post(a, fake.message(1, 11, "澄远·火种计划是什么?")) == 200
    texts(1, 1)
    assert _post(b, fake.message(1, 11, "它帮助了多少个村?")) == 200
    _, follow_up = texts(1, 2)
    assert "帮助全县9个薄弱村" in follow_up.split("Sources:")[0]
    assert "（指：澄远·火种计划）" in follow_up

    # one update delivered to both replicas (a retry that reached both): one reply
    twice = fake.message(2, 22, "霍城县江苏医院综合病房大楼总投资多少?")
    assert (_post(a, twice), _post(b, twice)) == (200, 200)
    assert texts(2, 1)[0].startswith("1.4亿元")
    time.sleep(3)  # time for a second reply, were there one
    assert len(fake.texts(2)) == 1

    # a stranger is denied by both, and never answered
    _post(a, fake.message(3, 33, "霍城县江苏医院综合病房大楼总投资多少?"))
    _post(b, fake.message(3, 33, "两地党政代表团互访了几次?"))
    strangers = texts(3, 2)
    assert strangers == [NOT_ALLOWED, NOT_ALLOWED]  # one refusal from each replica

    # the rate limit counts across replicas: user 22 asked once above
    for k, hook in enumerate([a, b, a, b]):
        _post(hook, fake.message(2, 22, f"江阴组织实施了什么人才计划?{'?' * k}"))
    replies = texts(2, 5)
    time.sleep(2)
    replies = fake.texts(2)
    over = [t for t in replies if "faster than I can keep up" in t]
    # five questions in the minute, four allowed: whichever replica counted the fifth
    # said so (its reply may overtake answers still being read on the other)
    assert len(replies) == 5 and len(over) == 1

    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    outs = [proc.communicate(timeout=60)[0] for proc in procs]
    for out in outs:
        assert "answer worker" in out or "answering in this process" in out
        assert PASSWORD not in out and TOKEN not in out and SECRET not in out
        assert "Traceback" not in out
