"""How long the reader's forward pass takes, by number of windows.

    python bench/reader_speed.py [--repeats 7] [--threads 0] [--graph FILE ...]

The shipped graph (bot/models/reader.onnx) and any other ``--graph`` (say the int8 one
``python -m train.graph --precision int8 --out F`` writes) through ONNX Runtime, with the
embedding layer in numpy in front, as the answer path runs them.

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

from bot.reader import GRAPH_PATH, Reader, windows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--windows", default="1,4,8")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all)")
    ap.add_argument("--graph", type=Path, action="append", default=[],
                    help="another graph to time beside the shipped one")
    args = ap.parse_args()
    shipped = Reader(threads=args.threads)
    for path in [GRAPH_PATH, *args.graph]:
        reader = shipped if path == GRAPH_PATH else Reader(path, meta=shipped.meta,
                                                           threads=args.threads)
        tok = reader.tokenizer
        text = next((ROOT / "seeds").glob("*")).read_text("utf-8")
        q = tok.encode("江阴市政府投入了多少资金?")
        pool = windows(q, tok.encode(text * 4), 0, tok.bos, tok.eos,
                       length=reader.window_tokens, stride=0)
        print(f"{path.name}: window_tokens {reader.window_tokens}, threads {args.threads}")
        for n in (int(x) for x in args.windows.split(",")):
            batch = pool[:n]
            reader.logits(batch)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                reader.logits(batch)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"  {n} windows: median {statistics.median(times):.0f} ms, "
                  f"max {max(times):.0f} ms ({args.repeats} runs)")


if __name__ == "__main__":
    main()
