"""Peak memory of ingesting ONE large document, and of the BM25 rebuild alone.

Writes a single UTF-8 text file of N MB made of DRCD sentences, one per line, each
tagged with a counter so no two chunks are identical (deduplication would otherwise
shrink the index), then runs ``qabot --embedder hashing ingest`` on it in a fresh
home under ``/usr/bin/time -v``. The hashing embedder keeps the measurement on the
pipeline (chunking, Chroma, BM25) instead of the neural embedder's hour-long run.
Afterwards it reopens the index in a fresh process and rebuilds BM25 from Chroma,
reporting the rise in peak RSS that the rebuild alone causes (jieba's dictionary is
loaded by a search before the baseline is read).

    python -m bench.big_document [--mb 1,10] [--source ../shared/data/drcd_dev.json]

Figures and dates: docs/benchmarks.md, "Memory of one large document".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "drcd_dev.json"

_REBUILD = """
import resource, sys
from bot.config import load_settings
from bot.embeddings import HashingEmbeddings
from bot.store import Index
settings = load_settings(cli={"embeddings.backend": "hashing"})
index = Index.open(settings, HashingEmbeddings())
index.bm25_search("霍城县", 1)  # loads jieba's dictionary first: not the rebuild's cost
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
index.rebuild_bm25()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


def sentences(source: Path) -> Iterator[str]:
    data = json.loads(source.read_text("utf-8"))
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for sentence in re.findall(r"[^。！？]+[。！？]", paragraph["context"]):
                yield sentence.strip()


def write_document(path: Path, megabytes: float, source: Path) -> None:
    pool = list(sentences(source))
    target = int(megabytes * 1_000_000)
    written = 0
    with path.open("w", encoding="utf-8") as out:
        n = 0
        while written < target:
            line = f"{pool[n % len(pool)]}（第{n}句）\n"
            out.write(line)
            written += len(line.encode("utf-8"))
            n += 1


def peak_mib(stderr: str) -> float:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if not match:
        raise RuntimeError(f"no peak RSS in /usr/bin/time output:\n{stderr[-2000:]}")
    return int(match.group(1)) / 1024


def measure(megabytes: float, source: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        write_document(docs / "big.txt", megabytes, source)
        env = {**os.environ, "QABOT_HOME": str(Path(tmp) / "home")}
        started = time.perf_counter()
        run = subprocess.run(
            ["/usr/bin/time", "-v", str(Path(sys.executable).parent / "qabot"),
             "--embedder", "hashing", "ingest", str(docs)],
            env=env, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - started
        if run.returncode != 0:
            raise RuntimeError(run.stderr[-2000:])
        chunks = re.search(r"(\d+) chunks", run.stdout)
        rebuild = subprocess.run([sys.executable, "-c", _REBUILD], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True)
        before, after = (int(v) / 1024 for v in rebuild.stdout.split())
        return {"mb": megabytes, "chunks": int(chunks.group(1)) if chunks else None,
                "ingest_peak_mib": round(peak_mib(run.stderr)), "ingest_s": round(wall, 1),
                "open_peak_mib": round(before), "bm25_rebuild_rise_mib": round(after - before)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", default="1,10", help="comma-separated file sizes in MB")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    for size in (float(s) for s in args.mb.split(",")):
        print(json.dumps(measure(size, args.source)), flush=True)


if __name__ == "__main__":
    main()
