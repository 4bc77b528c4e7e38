"""Drive N concurrent chats through the real bot and a fake Bot API; report throughput
and reply latency.

Each chat asks ``--per-chat`` questions from the seed test set, one after another (the
next once the previous reply arrived), all chats at once. Latency is from the moment
the update is queued at the fake API to the moment the bot's reply reaches it, so it
includes long polling, answering and sending. The bot is a real ``qabot telegram``
process (default embedder and answerer, settings as shipped but the rate limit), so the
fake API and the chat drivers in this process do not share its interpreter.

    python bench/telegram_load.py [--chats 1,10,20,50] [--per-chat 5] [--workers 1,2]

``--workers`` runs the whole series once per ``telegram.workers`` value: 1 answers in
the bot's own process (threads), 2 or more in that many worker processes
(bot/workers.py); ``ratio`` is replies/s over the same series' one-chat replies/s, the
concurrent/serial throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake Bot API lives with the tests

from fakes.harness import make_settings  # noqa: E402
from fakes.telegram_api import TOKEN, FakeBotAPI  # noqa: E402

from bot.embeddings import make_embeddings  # noqa: E402
from bot.ingest import ingest  # noqa: E402

QUESTIONS = [json.loads(line)["question"] for line in
             (ROOT / "tests" / "data" / "seed_testset.jsonl").read_text("utf-8").splitlines()
             if '"history"' not in line]


def run_chat(fake: FakeBotAPI, chat: int, per_chat: int, latencies: list[float]) -> None:
    for i in range(per_chat):
        question = QUESTIONS[(chat * 7 + i) % len(QUESTIONS)]
        before = len(fake.sent.get(chat, []))
        t = time.monotonic()
        fake.message(chat, chat, question)
        fake.wait_for(lambda c=chat, b=before: len(fake.sent.get(c, [])) > b, timeout=120)
        latencies.append(fake.sent[chat][before].at - t)


def bot_process(home: Path, fake: FakeBotAPI, workers: int) -> subprocess.Popen[str]:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url,
           "QABOT_HOME": str(home), "QABOT_TELEGRAM_PUBLIC": "true",
           "QABOT_TELEGRAM_POLL_TIMEOUT": "10", "QABOT_TELEGRAM_WORKERS": str(workers),
           "QABOT_TELEGRAM_RATE_LIMIT_PER_MINUTE": "100000"}
    return subprocess.Popen([sys.executable, "-m", "bot", "telegram"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def measure(home: Path, chats: int, per_chat: int, workers: int) -> dict[str, float]:
    fake = FakeBotAPI().start()
    latencies: list[float] = []
    proc = bot_process(home, fake, workers)
    try:
        fake.wait_for(lambda: fake.commands, timeout=120)
        for warm in range(max(1, workers)):  # warm-up: every worker answers once
            run_chat(fake, 10_000 + warm, 1, [])
        threads = [threading.Thread(target=run_chat, args=(fake, c, per_chat, latencies))
                   for c in range(1, chats + 1)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        fake.close()
    ms = sorted(x * 1000 for x in latencies)
    return {"workers": workers, "chats": chats, "replies": len(ms),
            "replies_per_s": round(len(ms) / wall, 2),
            "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
            "max_ms": round(ms[-1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", default="1,10,20,50")
    parser.add_argument("--per-chat", type=int, default=5)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="qabot-tgbench-"))
    settings = make_settings(home)
    ingest(settings, [settings.docs_dir], make_embeddings(settings.embeddings))
    print("| workers | chats | replies | replies/s | ratio | p50 ms | p95 ms | max ms |\n"
          "|---|---|---|---|---|---|---|---|")
    for w in (int(x) for x in args.workers.split(",")):
        serial = None
        for n in (int(x) for x in args.chats.split(",")):
            r = measure(home, n, args.per_chat, w)
            serial = serial or (r["replies_per_s"] if n == 1 else None)
            ratio = f"{r['replies_per_s'] / serial:.2f}" if serial else "–"
            print(f"| {w} | {r['chats']} | {r['replies']} | {r['replies_per_s']} | {ratio} | "
                  f"{r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} |", flush=True)


if __name__ == "__main__":
    main()
