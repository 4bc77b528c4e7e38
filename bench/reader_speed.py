"""How long the reader's numpy forward pass takes, by number of windows.

    python bench/reader_speed.py [--repeats 7]

Full windows of the committed model's length (``window_tokens`` in
bot/models/reader.json), built from the seed article; median and max of
``--repeats`` timed runs after one warm-up. End-to-end answer latency (retrieval
included) is what ``qabot eval`` reports as latency_p50_ms / latency_p95_ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.reader import Reader, windows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--windows", default="1,4,8")
    args = ap.parse_args()
    reader = Reader()
    tok = reader.tokenizer
    text = next((ROOT / "seeds").glob("*")).read_text("utf-8")
    q = tok.encode("江阴市政府投入了多少资金?")
    pool = windows(q, tok.encode(text * 4), 0, tok.bos, tok.eos,
                   length=reader.window_tokens, stride=0)
    print(f"window_tokens {reader.window_tokens}, {len(pool)} windows available")
    for n in (int(x) for x in args.windows.split(",")):
        batch = pool[:n]
        reader.logits(batch)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            reader.logits(batch)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{n} windows: median {statistics.median(times):.0f} ms, "
              f"max {max(times):.0f} ms ({args.repeats} runs)")


if __name__ == "__main__":
    main()
