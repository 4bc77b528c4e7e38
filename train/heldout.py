"""The held-out CMRC validation set, as SQuAD JSON for ``qabot eval --ingest-contexts``.

    python -m train.heldout --out reports/heldout-cmrc.json
    qabot --home /tmp/h eval --ingest-contexts reports/heldout-cmrc.json --report reports/h

The articles are CMRC 2018 train's validation split of ``train.reader`` (10 % of the
titles, seed 13: ``split_titles``), which no reader from this project trained on and no
parameter was fitted on. It **chooses** between answer-path variants (the answer-type
check, the reader to ship); it is never a test figure (CMRC trial is).

Half of the articles (by a seeded draw) have one question's answer sentence cut out of
the passage (``train.reader.without_sentence``): that question becomes unanswerable
with its entity and topic still in the documents (the hardest case for a refusal),
and the article's other questions stay, answerable, when their answer is still there.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from train.reader import load_cmrc, split_titles, without_sentence


def build(seed: int = 13, cut_share: float = 0.5, titles: set[str] | None = None
          ) -> dict[str, Any]:
    """The set over the validation titles, or over ``titles`` (CMRC train titles,
    ``cmrc:``-prefixed as ``load_cmrc`` gives them) with the same cuts."""
    rng = random.Random(seed)
    articles = load_cmrc(random.Random(seed))
    wanted = split_titles(articles, seed) if titles is None else titles
    data = []
    for a in sorted((a for a in articles if a["title"] in wanted), key=lambda a: a["title"]):
        for p_index, p in enumerate(a["paragraphs"]):
            ctx, qas = p["context"], p["qas"]
            if not qas:
                continue
            cut = rng.choice(qas) if rng.random() < cut_share else None
            if cut is not None:
                rest = without_sentence(ctx, cut["start"], cut["start"] + len(cut["text"]))
                if rest is None:
                    cut = None
                else:
                    ctx = rest
            out = []
            for qa in qas:
                if qa is cut:
                    out.append({"id": qa["id"], "question": qa["question"], "answers": [],
                                "type": "unanswerable"})
                elif qa["text"] in ctx:
                    out.append({"id": qa["id"], "question": qa["question"],
                                "answers": [{"text": qa["text"]}], "type": "answerable"})
            data.append({"title": a["title"].removeprefix("cmrc:"), "paragraphs": [
                {"id": f"{a['title']}-{p_index}", "context": ctx, "qas": out}]})
    return {"version": "qabot-heldout-cmrc", "data": data}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="reports/heldout-cmrc.json")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)
    out = build(args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False), "utf-8")
    qs = [q for a in out["data"] for p in a["paragraphs"] for q in p["qas"]]
    print(f"{args.out}: {len(out['data'])} articles, {len(qs)} questions, "
          f"{sum(not q['answers'] for q in qs)} unanswerable")


if __name__ == "__main__":
    main()
