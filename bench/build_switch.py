"""What the copy-then-switch ingest costs as the index grows.

    python -m bench.build_switch [--sizes 1000,10000,50000]

For each size: a folder of documents of 10 chunks' worth of real CMRC sentences each is
ingested with the hashing embedder (so the numbers are the store's, not the model's).
Then, in one run: the wall time of copying the live build's Chroma store (what every
changing ingest now does first), of an ingest after one document changed (copy + writes
+ BM25 rebuild + switch), of an ingest with nothing changed (no copy), and the build's
size on disk.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.scale import corpus
from bot.builds import copy_store, live_build
from bot.config import load_settings
from bot.embeddings import HashingEmbeddings
from bot.ingest import ingest


def size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    args = ap.parse_args()
    rng = random.Random(7)
    emb = HashingEmbeddings()
    print("| chunks | full ingest s | copy store s | one doc changed s | unchanged s | "
          "build MiB |\n|---|---|---|---|---|---|")
    for n in (int(x) for x in args.sizes.split(",")):
        base = Path(tempfile.mkdtemp(prefix="qabot-switch-"))
        docs = base / "docs"
        docs.mkdir()
        texts = corpus(n, rng)
        for i in range(0, n, 10):
            (docs / f"{i // 10}.txt").write_text("\n".join(texts[i:i + 10]), "utf-8")
        settings = load_settings(cli={"paths.home": str(base / "home"),
                                      "paths.docs": str(docs)}, env={})
        t = time.perf_counter()
        report = ingest(settings, [docs], emb)
        full = time.perf_counter() - t
        build = live_build(settings.home)
        assert build is not None
        t = time.perf_counter()
        copy_store(build / "chroma", base / "copy")
        copy = time.perf_counter() - t
        (docs / "0.txt").write_text("改动过的一行。\n" + (docs / "0.txt").read_text("utf-8"),
                                    "utf-8")
        t = time.perf_counter()
        ingest(settings, [docs], emb)
        changed = time.perf_counter() - t
        t = time.perf_counter()
        ingest(settings, [docs], emb)
        unchanged = time.perf_counter() - t
        live = live_build(settings.home)
        assert live is not None
        print(f"| {report.chunks} | {full:.1f} | {copy:.2f} | {changed:.1f} | "
              f"{unchanged:.2f} | {size_mib(live):.0f} |", flush=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
