"""Drive N concurrent chats through the real bot and a fake Bot API; report throughput
and reply latency.

Each chat asks ``--per-chat`` questions from the seed test set, one after another (the
next once the previous reply arrived), all chats at once. Latency is from the moment
the update is queued at the fake API to the moment the bot's reply reaches it, so it
includes long polling, answering and sending. The bot is a real ``qabot telegram``
process (default embedder and answerer, settings as shipped but the rate limit), so the
fake API and the chat drivers in this process do not share its interpreter.

    python -m bench.telegram_load [--chats 1,10,20,50] [--per-chat 5] [--workers 1,2]
    python -m bench.telegram_load --replicas 1,2,3 --workers 1 --chats 1,50

``--workers`` runs the whole series once per ``telegram.workers`` value: 1 answers in
the bot's own process (threads), 2 or more in that many worker processes
(bot/workers.py); ``ratio`` is replies/s over the same series' one-chat replies/s, the
concurrent/serial throughput ratio. ``--replicas 1,2,3`` runs that many ``qabot
telegram --webhook`` processes sharing a PostgreSQL session store (a private server is
started unless ``--session-url`` names one), this process posting each chat's updates to
the replicas in turn as a proxy would; it also counts the PostgreSQL statements per
answer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bot.embeddings import make_embeddings
from bot.ingest import ingest
from fakes.harness import make_settings
from fakes.telegram_api import TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent

SECRET = "bench-webhook-secret"
STATS_FLUSH_S = 11.0  # PostgreSQL 15 publishes an idle backend's statistics every 10 s
QUESTIONS = [json.loads(line)["question"] for line in
             (ROOT / "tests" / "data" / "seed_testset.jsonl").read_text("utf-8").splitlines()
             if '"history"' not in line]


def run_chat(fake: FakeBotAPI, chat: int, per_chat: int, latencies: list[float],
             deliver: Callable[[dict[str, Any], int], None]) -> None:
    for i in range(per_chat):
        question = QUESTIONS[(chat * 7 + i) % len(QUESTIONS)]
        before = len(fake.sent.get(chat, []))
        t = time.monotonic()
        deliver(fake.message(chat, chat, question), chat + i)
        fake.wait_for(lambda c=chat, b=before: len(fake.sent.get(c, [])) > b, timeout=300)
        latencies.append(fake.sent[chat][before].at - t)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def deployment(home: Path, fake: FakeBotAPI, workers: int, replicas: int,
               session_url: str) -> Iterator[Callable[[dict[str, Any], int], None]]:
    """``replicas`` 0: one polling bot. N: N webhook replicas sharing ``session_url``;
    this process is the proxy, posting a chat's updates to the replicas in turn. Yields
    ``deliver(update, n)``."""
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url,
           "QABOT_HOME": str(home), "QABOT_TELEGRAM_PUBLIC": "true",
           "QABOT_TELEGRAM_POLL_TIMEOUT": "10", "QABOT_TELEGRAM_WORKERS": str(workers),
           "QABOT_TELEGRAM_RATE_LIMIT_PER_MINUTE": "100000",
           "TELEGRAM_WEBHOOK_SECRET": SECRET}
    hooks: list[str] = []
    procs = []
    logs = home.parent / f"{home.name}-logs"
    logs.mkdir(exist_ok=True)
    for k in range(max(1, replicas)):
        args = [sys.executable, "-m", "bot", "telegram"]
        if replicas:
            port = _free_port()
            hooks.append(f"http://127.0.0.1:{port}/hook")
            args += ["--webhook", hooks[-1], "--listen", "127.0.0.1", "--port", str(port)]
        log = (logs / f"replica{k}-w{workers}.log").open("a")  # read when a run fails
        procs.append(subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
            env={**env, "QABOT_SESSION_URL": session_url} if replicas else env))
        log.close()

    def deliver(update: dict[str, Any], n: int) -> None:
        if not hooks:
            return  # polling: the fake queued it already
        body = json.dumps(update).encode()
        request = urllib.request.Request(hooks[n % len(hooks)], data=body, headers={
            "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
        with urllib.request.urlopen(request, timeout=30):
            pass

    try:
        if hooks:
            deadline = time.monotonic() + 180
            while len(fake.webhook_urls) < len(hooks) and time.monotonic() < deadline:
                time.sleep(0.2)
        else:
            fake.wait_for(lambda: fake.commands, timeout=180)
        yield deliver
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def forget_updates(url: str) -> None:
    """Each run's fake Bot API numbers its updates from 1 again, as a new bot would: the
    ids the previous run's replicas recorded as handled would make them skip these."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if _has_table(conn):
            conn.execute("DELETE FROM qabot_updates")


def _has_table(conn: Any) -> bool:
    row = conn.execute("SELECT to_regclass('qabot_updates')").fetchone()
    return bool(row and row[0])


def transactions(url: str) -> int:
    """Committed and rolled-back transactions on the session database so far (each
    statement of the bot's autocommit connections is one round trip)."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def measure(home: Path, chats: int, per_chat: int, workers: int, replicas: int = 0,
            session_url: str = "") -> dict[str, float]:
    if replicas:
        forget_updates(session_url)
    fake = FakeBotAPI().start()
    latencies: list[float] = []
    trips = 0
    try:
        with deployment(home, fake, workers, replicas, session_url) as deliver:
            for warm in range(max(1, workers) * max(1, replicas)):  # every worker once
                run_chat(fake, 10_000 + warm, 1, [], deliver)
            if replicas:
                # PostgreSQL publishes an idle connection's counts after 10 s
                time.sleep(STATS_FLUSH_S)
                trips = transactions(session_url)
            threads = [threading.Thread(target=run_chat,
                                        args=(fake, c, per_chat, latencies, deliver))
                       for c in range(1, chats + 1)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - started
    finally:
        fake.close()
    # read once the replicas have exited: a closing connection publishes its counts
    trips = transactions(session_url) - trips if replicas else 0
    ms = sorted(x * 1000 for x in latencies)
    return {"workers": workers, "replicas": replicas, "chats": chats, "replies": len(ms),
            "replies_per_s": round(len(ms) / wall, 2),
            "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
            "max_ms": round(ms[-1], 1),
            "pg_per_answer": round(trips / max(1, len(ms)), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", default="1,10,20,50")
    parser.add_argument("--per-chat", type=int, default=5)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--replicas", default="0",
                        help="comma list: 0 is one polling bot; N >= 1 is N webhook "
                             "replicas sharing PostgreSQL sessions")
    parser.add_argument("--session-url", default="",
                        help="PostgreSQL for --replicas (default: start a private one)")
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="qabot-tgbench-"))
    settings = make_settings(home)
    ingest(settings, [settings.docs_dir], make_embeddings(settings.embeddings))
    replica_counts = [int(x) for x in args.replicas.split(",")]
    with contextlib.ExitStack() as stack:
        url = args.session_url
        if any(replica_counts) and not url:
            from fakes import postgres

            url = stack.enter_context(postgres.running(home.parent / f"{home.name}-pg"))
        print("| replicas | workers | chats | replies | replies/s | ratio | p50 ms | p95 ms | "
              "max ms | PostgreSQL statements per answer |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
        for r in replica_counts:
            for w in (int(x) for x in args.workers.split(",")):
                serial = None
                for n in (int(x) for x in args.chats.split(",")):
                    m = measure(home, n, args.per_chat, w, r, url)
                    serial = serial or (m["replies_per_s"] if n == 1 else None)
                    ratio = f"{m['replies_per_s'] / serial:.2f}" if serial else "–"
                    trips = m["pg_per_answer"] if r else "–"
                    print(f"| {r or 'polling'} | {w} | {n} | {m['replies']} | "
                          f"{m['replies_per_s']} | {ratio} | {m['p50_ms']} | {m['p95_ms']} | "
                          f"{m['max_ms']} | {trips} |", flush=True)


if __name__ == "__main__":
    main()
