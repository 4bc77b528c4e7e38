"""DRCD questions over an index of their own paragraphs, with unanswerable ones.

Used where a choice needs real retrieval over DRCD: ``train/calibrate_reader.py``
(the reader's no-answer threshold, on the reader's validation articles) and
``train/scorer.py`` (the sentence-score weights: fitted on training articles, chosen
on the validation articles). Never CMRC or the seed test set: those are test sets.

Text is converted to simplified characters, like the bot's usual documents. Within
each article about a third of the paragraphs are left out of the index: their
questions become *unanswerable* (asked about a topic the documents cover, but the
answer is not there; a question is used so only when its answer text occurs in no
indexed paragraph). The rest stay answerable. With ``cut_share``, that share of the
indexed paragraphs also loses one question's answer sentence
(``train.reader.without_sentence``): that question becomes unanswerable with its
entity and topic still in the documents, SQuAD 2.0's hardest kind.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from bot import evaluation
from bot.loading import Document

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = ("drcd_dev.json", "drcd_test.json")


def titles() -> list[str]:
    """Every DRCD article title, in file order."""
    return [a["title"] for name in FILES
            for a in json.loads((DATA / name).read_text("utf-8"))["data"]]


def question_set(wanted: set[str], seed: int, limit: int, prefix: str = "drcd-val",
                 cut_share: float = 0.0) -> tuple[list[evaluation.Item], list[Document]]:
    """Questions (shuffled, at most ``limit``; 0: all) and the documents to index, from
    the articles titled in ``wanted``."""
    import opencc

    from train.reader import locate, without_sentence

    t2s = opencc.OpenCC("t2s")
    rng = random.Random(seed)
    kept: list[tuple[str, str, str]] = []  # (source, title, text)
    asked: list[tuple[dict[str, Any], bool, str]] = []  # (qa, answerable, source)
    # its own draws, so that cut_share=0 leaves the sets other trainers were fitted on
    # exactly as they were
    cut_rng = random.Random(seed + 1)
    cut_ids: set[str] = set()
    cut_sources: set[str] = set()
    for name in FILES:
        for article in json.loads((DATA / name).read_text("utf-8"))["data"]:
            if article["title"] not in wanted:
                continue
            title = t2s.convert(article["title"])
            paragraphs = list(enumerate(article["paragraphs"]))
            rng.shuffle(paragraphs)
            out = max(1, len(paragraphs) // 3) if len(paragraphs) > 1 else 0
            for k, (p_index, para) in enumerate(paragraphs):
                source = f"{prefix}/{article.get('id', title)}-{p_index}"
                text = t2s.convert(para["context"])
                if k >= out and para["qas"] and cut_rng.random() < cut_share:
                    qa = cut_rng.choice(para["qas"])
                    answer = t2s.convert(qa["answers"][0]["text"])
                    at = locate(text, answer, qa["answers"][0]["answer_start"])
                    rest = None if at is None else without_sentence(text, at,
                                                                    at + len(answer))
                    if rest is not None:
                        text = rest
                        cut_ids.add(qa["id"])
                        cut_sources.add(source)
                if k >= out:
                    kept.append((source, title, text))
                for qa in para["qas"]:
                    asked.append(({"id": qa["id"], "question": t2s.convert(qa["question"]),
                                   "answer": t2s.convert(qa["answers"][0]["text"])},
                                  k >= out and qa["id"] not in cut_ids, source))
    indexed = "\n".join(text for _, _, text in kept)
    items = []
    for qa, answerable, source in asked:
        if not answerable and qa["answer"] in indexed:
            continue  # the answer is elsewhere in the documents: not unanswerable
        if answerable and source in cut_sources and qa["answer"] not in indexed:
            continue  # its answer went with another question's cut sentence
        kind = "cut" if qa["id"] in cut_ids else "unanswerable"
        items.append(evaluation.Item(id=qa["id"], question=qa["question"],
                                     answers=[qa["answer"]] if answerable else [],
                                     evidence=qa["answer"] if answerable else "",
                                     type="answerable" if answerable else kind,
                                     context=source if answerable else ""))
    rng.shuffle(items)
    docs = []
    for source, title, text in kept:
        body = f"{title}\n{text}\n"
        docs.append(Document(path=Path(source), source=source, text=body,
                             sha256=hashlib.sha256(body.encode()).hexdigest(),
                             meta={"title": title}, header=(0, len(title))))
    return (items[:limit] if limit else items), docs
