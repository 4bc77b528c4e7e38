"""Drive N concurrent chats through the real bot and a fake Bot API; report throughput
and reply latency.

Each chat asks ``--per-chat`` questions from the seed test set, one after another (the
next once the previous reply arrived), all chats at once. Latency is from the moment
the update is queued at the fake API to the moment the bot's reply reaches it, so it
includes long polling, answering and sending. The engine uses the default embedder.

    python bench/telegram_load.py [--chats 1,10,20,50] [--per-chat 5] [--workers 1,2]

``--workers`` runs the whole series once per ``telegram.workers`` value: 1 answers in
the bot's own process (threads), 2 or more in that many worker processes
(bot/workers.py); ``ratio`` is replies/s over the same series' one-chat replies/s, the
concurrent/serial throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake Bot API and runner live with the tests

from fakes.harness import RunningBot, make_settings  # noqa: E402
from fakes.telegram_api import FakeBotAPI  # noqa: E402

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


def measure(home: Path, chats: int, per_chat: int, workers: int) -> dict[str, float]:
    fake = FakeBotAPI().start()
    latencies: list[float] = []
    try:
        with RunningBot(home, fake, poll_timeout=10, rate_limit_per_minute=1000,
                        workers=workers):
            fake.wait_for(lambda: fake.commands, timeout=60)
            run_chat(fake, 10_000, 1, [])  # warm-up: first query loads caches
            threads = [threading.Thread(target=run_chat, args=(fake, c, per_chat, latencies))
                       for c in range(1, chats + 1)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - started
    finally:
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
