"""How long the reader's forward pass takes, by number of windows.

    python -m bench.reader_speed [--repeats 7] [--threads 0] [--graph FILE ...]

The shipped graph (bot/models/reader.onnx) and any other ``--graph`` (say the int8 one
``python -m train.graph --precision int8 --out F`` writes) through ONNX Runtime, with the
embedding layer in numpy in front, as the answer path runs them. ``--numpy-commit C``
times the numpy transformer the graph replaced, as of commit C (its bot/encoder.py,
bot/reader.py and weights read from git), in the same run.

Full windows of the committed model's length (``window_tokens`` in
bot/models/reader.json), built from the seed article; median and max of
``--repeats`` timed runs after one warm-up. End-to-end answer latency (retrieval
included) is what ``qabot eval`` reports as latency_p50_ms / latency_p95_ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.reader import GRAPH_PATH, Reader, windows

ROOT = Path(__file__).resolve().parent.parent


def numpy_reader(commit: str) -> Any:
    """The numpy ``Reader`` of ``commit`` (before ONNX Runtime), loaded from git."""
    scratch = Path(tempfile.mkdtemp(prefix="qabot-numpy-reader-"))

    def show(path: str) -> bytes:
        return subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True,
                              capture_output=True).stdout

    (scratch / "old_encoder.py").write_bytes(show("bot/encoder.py"))
    (scratch / "old_reader.py").write_bytes(
        show("bot/reader.py").replace(b"from bot.encoder import", b"from old_encoder import"))
    (scratch / "reader.npz").write_bytes(show("bot/models/reader.npz"))
    (scratch / "reader.json").write_bytes(show("bot/models/reader.json"))
    module = None
    for name in ("old_encoder", "old_reader"):  # the encoder first: the reader imports it
        spec = importlib.util.spec_from_file_location(name, scratch / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    assert module is not None
    return module.Reader(scratch / "reader.npz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--windows", default="1,4,8")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all)")
    ap.add_argument("--graph", type=Path, action="append", default=[],
                    help="another graph to time beside the shipped one")
    ap.add_argument("--numpy-commit", help="also time the numpy reader of this commit")
    args = ap.parse_args()
    shipped = Reader(threads=args.threads)
    readers: list[tuple[str, Any]] = [(GRAPH_PATH.name, shipped)]
    readers += [(p.name, Reader(p, meta=shipped.meta, threads=args.threads))
                for p in args.graph]
    if args.numpy_commit:
        readers.append((f"numpy at {args.numpy_commit}", numpy_reader(args.numpy_commit)))
    for name, reader in readers:
        tok = reader.tokenizer
        text = next((ROOT / "seeds").glob("*")).read_text("utf-8")
        q = tok.encode("江阴市政府投入了多少资金?")
        pool = windows(q, tok.encode(text * 4), 0, tok.bos, tok.eos,
                       length=reader.window_tokens, stride=0)
        print(f"{name}: window_tokens {reader.window_tokens}, threads {args.threads}")
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
