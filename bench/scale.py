"""How cost grows with the corpus: ingest overhead, query latency, cold start, memory.

1. Ingest throughput: ``qabot``'s ingest of the first ``--ingest-docs`` CMRC passages
   (chunks and sentences) against the raw embedder on exactly the same texts, in one
   run; peak memory of the ingest process.
2. Query latency p50/p95 (warm, in-process, retrieval + answer) at 10^2..10^5 chunks,
   embedded store and Chroma server: chunk texts are real Chinese sentences (CMRC
   passages recombined), their vectors and their sentences' vectors are SYNTHETIC
   (random unit vectors; embedding 10^5 chunks for real takes about an hour here);
   questions and their vectors are real.
   Cold `qabot ask` wall time (median of 3) and the peak memory of that process.

   Peak memory of `qabot ingest` (real embeddings) on 32..256 CMRC passages, and of the
   pipeline alone (hashing embedder) at 10^3..10^5 chunks.

    python -m bench.scale [--sizes 100,1000,10000,100000] [--ingest-docs 40] [--no-server]
                          [--modes embedded,server] [--ingest-memory 32,64,128,256]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bot.builds import read_manifest, write_manifest
from bot.config import load_settings
from bot.embeddings import make_embeddings
from bot.engine import Engine
from bot.index_writing import chunk_metadata
from bot.ingest import chunk_sentences
from bot.sentences import split_sentences
from bot.sessions import SessionStore
from bot.store import MANIFEST_VERSION, PIPELINE_VERSION, Index
from bot.vectors import SentenceWriter

ROOT = Path(__file__).resolve().parent.parent
CMRC = ROOT.parent / "shared" / "data" / "cmrc2018_trial.json"
QUESTIONS = ["霍城县江苏医院综合病房大楼总投资多少?", "泡泡战士由哪家公司开发?",
             "长江全长多少公里?", "两地党政代表团互访了几次?", "江阴组织实施了什么人才计划?",
             "什么是牛车水?"]


# Peak memory is read from the child's own VmHWM at exit: it belongs to the process image
# after exec. (ru_maxrss from wait4 is not: it can include the pages of the forked copy
# of this benchmark process before exec, gigabytes once it has built a 10^5 corpus.)
_WRAPPER = """
import atexit, os, sys
def _hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(os.environ["BENCH_SCALE_HWM"], "w").write(line.split()[1])
atexit.register(_hwm)
sys.argv = ["qabot", *sys.argv[1:]]
from bot.cli import main
main()
"""


def child(args: list[str], home: str, extra_env: dict[str, str] | None = None
          ) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `qabot ...` process."""
    import os

    hwm = Path(tempfile.mkdtemp()) / "hwm"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", _WRAPPER, *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "QABOT_HOME": home, "BENCH_SCALE_HWM": str(hwm),
                        **(extra_env or {})})
    wall = time.perf_counter() - t
    return wall, int(hwm.read_text()) / 1024


def ingest_overhead(n_docs: int) -> None:
    from bot import evaluation
    from bot.chunking import chunk_document

    data = evaluation.load_testset(CMRC)
    docs = data.contexts[:n_docs]
    folder = Path(tempfile.mkdtemp(prefix="qabot-scale-docs-"))
    for d in docs:
        (folder / f"{d.source.split('/')[-1]}.txt").write_text(d.text, "utf-8")
    settings = load_settings()
    texts: list[str] = []
    for d in docs:
        chunks = chunk_document(d, size=settings.chunking.size, overlap=settings.chunking.overlap)
        texts += [c.text for c in chunks]
        texts += list({s[0]: s[1] for c in chunks for s in chunk_sentences(c)}.values())
    emb = make_embeddings(settings.embeddings)
    emb.embed_documents(texts[:8])  # load the model before timing
    # and the libraries: one-time start-up costs (importing chromadb, building jieba's
    # dictionary cache) belong to the whole-process figure, not to the per-text pipeline
    import chromadb  # noqa: F401

    from bot import tokens

    tokens.FULL.tokenize("预热")
    t = time.perf_counter()
    emb.embed_documents(texts)
    raw = time.perf_counter() - t
    from bot.ingest import ingest

    t = time.perf_counter()
    ingest(load_settings(cli={"paths.home": tempfile.mkdtemp()}), [folder], emb)
    in_process = time.perf_counter() - t
    home = tempfile.mkdtemp(prefix="qabot-scale-ingest-")
    wall, peak = child(["ingest", str(folder)], home)
    manifest = read_manifest(Path(home)) or {}
    chunks = manifest["chunk_count"]
    print(f"\n## Ingest: {len(docs)} CMRC passages, {chunks} chunks + "
          f"{len(texts) - chunks} sentences = {len(texts)} texts embedded")
    print("| | seconds | texts/s |\n|---|---|---|")
    print(f"| raw embedder, same texts | {raw:.1f} | {len(texts) / raw:.1f} |")
    print(f"| `ingest()` in-process (model and libraries loaded) | {in_process:.1f} | "
          f"{len(texts) / in_process:.1f} |")
    print(f"| `qabot ingest` (whole process, incl. start-up) | {wall:.1f} | "
          f"{len(texts) / wall:.1f} |")
    print(f"\noverhead over raw embedding: in-process {100 * (in_process / raw - 1):.0f}%, "
          f"whole process {100 * (wall / raw - 1):.0f}%; peak memory of the ingest "
          f"process: {peak:.0f} MiB")


def ingest_memory(sizes: list[int]) -> None:
    """Peak memory of `qabot ingest` (real embedder) as the corpus grows."""
    from bot import evaluation

    contexts = evaluation.load_testset(CMRC).contexts
    print("\n## Ingest peak memory by corpus size (real embeddings, CMRC passages)")
    print("| passages | chunks | sentences | seconds | peak MiB |\n|---|---|---|---|---|")
    for n in sizes:
        folder = Path(tempfile.mkdtemp(prefix="qabot-scale-docs-"))
        for d in contexts[:n]:
            (folder / f"{d.source.split('/')[-1]}.txt").write_text(d.text, "utf-8")
        home = tempfile.mkdtemp(prefix="qabot-scale-ingest-")
        wall, peak = child(["ingest", str(folder)], home)
        manifest = read_manifest(Path(home)) or {}
        sentences = sum(len(f.get("sentences", [])) for f in manifest["files"].values())
        print(f"| {min(n, len(contexts))} | {manifest['chunk_count']} | {sentences} | "
              f"{wall:.0f} | {peak:.0f} |", flush=True)


def ingest_memory_hashing(sizes: list[int]) -> None:
    """Peak memory of the ingest pipeline itself at 10^3..10^5 chunks: the hashing
    embedder (no model, constant memory) stands in for the real one, which would take
    hours here; documents of 10 chunks' worth of real CMRC sentences."""
    rng = random.Random(7)
    print("\n## Ingest pipeline peak memory by corpus size (hashing embedder)")
    print("| documents | chunks | sentences | seconds | peak MiB |\n|---|---|---|---|---|")
    for n in sizes:
        folder = Path(tempfile.mkdtemp(prefix="qabot-scale-docs-"))
        texts = corpus(n, rng)  # ~200 characters each
        for i in range(0, n, 10):
            (folder / f"{i // 10}.txt").write_text("\n".join(texts[i:i + 10]), "utf-8")
        home = tempfile.mkdtemp(prefix="qabot-scale-ingest-")
        wall, peak = child(["--embedder", "hashing", "ingest", str(folder)], home)
        manifest = read_manifest(Path(home)) or {}
        sentences = sum(len(f.get("sentences", [])) for f in manifest["files"].values())
        print(f"| {len(manifest['files'])} | {manifest['chunk_count']} | {sentences} | "
              f"{wall:.0f} | {peak:.0f} |", flush=True)


def corpus(n: int, rng: random.Random) -> list[str]:
    from bot import evaluation

    sents = []
    for d in evaluation.load_testset(CMRC).contexts:
        sents += [d.text[s.start:s.end] for s in split_sentences(d.text)]
    out = []
    for i in range(n):
        k = rng.randint(2, 4)
        out.append(f"{i} " + "".join(rng.choice(sents) for _ in range(k))[:200])
    return out


def build_synthetic(n: int, url: str | None) -> tuple[str, dict[str, str]]:
    rng = random.Random(n)
    home = tempfile.mkdtemp(prefix=f"qabot-scale-{n}-")
    cli: dict[str, object] = {"paths.home": home}
    env: dict[str, str] = {}
    if url:
        cli.update({"store.url": url, "store.collection": f"scale-{n}-{rng.randint(0, 10**6)}"})
        env = {"QABOT_STORE_URL": url, "QABOT_STORE_COLLECTION": str(cli["store.collection"])}
    settings = load_settings(cli=cli)
    emb = make_embeddings(settings.embeddings)
    manifest = {"version": MANIFEST_VERSION, "pipeline": PIPELINE_VERSION,
                "embedder": emb.identity, "chunk_count": 0, "files": {},
                "chunking": {"size": settings.chunking.size,
                             "overlap": settings.chunking.overlap}}
    index = Index(settings, emb, manifest, build=Path(home))  # the single-build layout
    texts = corpus(n, rng)
    vectors = np.random.default_rng(n).normal(size=(n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    from bot.chunking import Chunk

    sentence_rng = np.random.default_rng(n + 1)
    # a local build keeps sentence vectors in sentences/ (bot/vectors.py), a server in a
    # collection
    writer = None if url else SentenceWriter(Path(home) / "sentences")
    for i in range(0, n, 5000):
        ids = [f"c{j}" for j in range(i, min(n, i + 5000))]
        chunks = [Chunk(cid, f"synthetic/{int(cid[1:])}.txt", 0, len(texts[int(cid[1:])]),
                        texts[int(cid[1:])]) for cid in ids]
        index._chunks._collection.add(ids=ids, embeddings=vectors[i:i + len(ids)].tolist(),
                                      documents=[c.text for c in chunks],
                                      metadatas=[chunk_metadata(c) for c in chunks])
        # the answerer and retrieval read sentence vectors: store them too
        # (synthetic as well), as an ingest would
        sentences = {sid: (text, meta) for c in chunks
                     for sid, text, meta in chunk_sentences(c)}
        svecs = sentence_rng.normal(size=(len(sentences), 384)).astype(np.float32)
        svecs /= np.linalg.norm(svecs, axis=1, keepdims=True)
        for j in range(0, len(sentences), 5000):
            part = list(sentences.items())[j:j + 5000]
            if writer is not None:
                writer.add([sid for sid, _ in part], svecs[j:j + len(part)])
                continue
            index._sentences_raw.add(
                ids=[sid for sid, _ in part], embeddings=svecs[j:j + len(part)].tolist(),
                documents=[t for _, (t, _m) in part], metadatas=[m for _, (_t, m) in part])
    manifest["chunk_count"] = n
    if writer is not None:
        manifest["sentence_count"] = writer.commit()
    manifest["built_at"] = "synthetic"
    manifest["build_id"] = f"synthetic-{n}-{rng.randint(0, 10**9)}"
    index.rebuild_bm25()
    write_manifest(Path(home), manifest)
    if url:
        from bot.chroma import write_info

        write_info(index._client, settings, manifest)
    return home, env


def query_latency(home: str, env: dict[str, str]) -> tuple[float, float]:
    cli: dict[str, object] = {"paths.home": home}
    if env:
        cli.update({"store.url": env["QABOT_STORE_URL"],
                    "store.collection": env["QABOT_STORE_COLLECTION"]})
    engine = Engine(load_settings(cli=cli), sessions=SessionStore(":memory:"))
    for q in QUESTIONS:  # warm
        engine.answer(q)
    times = []
    for _ in range(5):
        for q in QUESTIONS:
            t = time.perf_counter()
            engine.answer(q)
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--ingest-docs", type=int, default=40)
    parser.add_argument("--ingest-memory", default="32,64,128,256",
                        help="CMRC passage counts for the ingest memory table ('' skips)")
    parser.add_argument("--ingest-memory-hashing", default="1000,10000,100000",
                        help="chunk counts for the pipeline memory table ('' skips)")
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--modes", default="embedded,server")
    args = parser.parse_args()
    if not CMRC.is_file():
        print(f"{CMRC} not found: this benchmark needs the CMRC 2018 trial set.")
        return
    if args.ingest_docs:
        ingest_overhead(args.ingest_docs)
    if args.ingest_memory:
        ingest_memory([int(x) for x in args.ingest_memory.split(",")])
    if args.ingest_memory_hashing:
        ingest_memory_hashing([int(x) for x in args.ingest_memory_hashing.split(",")])
    server = None
    url = None
    if not args.no_server:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([str(Path(sys.executable).with_name("chroma")), "run",
                                   "--path", tempfile.mkdtemp(), "--host", "127.0.0.1",
                                   "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        time.sleep(5)
    print("\n## Query cost by corpus size (synthetic vectors, real texts and questions)")
    print("| chunks | store | build s | warm p50 ms | warm p95 ms | cold ask s | "
          "serving peak MiB | first start elsewhere s |\n|---|---|---|---|---|---|---|---|")
    try:
        for n in (int(x) for x in args.sizes.split(",") if x):
            for mode, where in (("embedded", None), ("server", url)):
                if (mode == "server" and not url) or mode not in args.modes.split(","):
                    continue
                t = time.perf_counter()
                home, env = build_synthetic(n, where)
                build = time.perf_counter() - t
                p50, p95 = query_latency(home, env)
                colds = [child(["ask", "--json", QUESTIONS[0]], home, env) for _ in range(3)]
                cold = statistics.median(c[0] for c in colds)
                peak = max(c[1] for c in colds)
                # a serving process on another machine: no manifest, no BM25 copy yet
                first = child(["ask", "--json", QUESTIONS[0]], tempfile.mkdtemp(), env)[0] \
                    if mode == "server" else float("nan")
                print(f"| {n} | {mode} | {build:.0f} | {p50:.1f} | {p95:.1f} | {cold:.2f} | "
                      f"{peak:.0f} | {first:.2f} |", flush=True)
    finally:
        if server:
            server.terminate()


if __name__ == "__main__":
    main()
