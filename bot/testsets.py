"""Test sets: the project's JSON Lines and SQuAD/CMRC JSON, detected by content.

* the project's JSON Lines, one question per line::

    {"id": "num-01", "question": "...", "answers": ["1.4亿元"], "evidence": "...",
     "history": ["earlier question", ...], "type": "number"}

  ``answers: []`` marks a question the documents cannot answer; ``history`` and
  ``type`` are optional. A retrieved or cited passage is *relevant* when it contains
  the evidence (after folding width, case and whitespace).
* SQuAD v1.1 / CMRC 2018 JSON (``data[].paragraphs[].context/qas``). Every context is a
  document (its id kept as the source name); a passage is *relevant* when it comes from
  the question's gold context.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import QabotError
from bot.loading import Document


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    answers: list[str]
    evidence: str = ""
    history: tuple[str, ...] = ()
    type: str = "unlabelled"
    context: str | None = None  # SQuAD-style: the gold context's source name

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class TestSet:
    path: Path
    format: str  # "jsonl" | "squad"
    items: list[Item]
    contexts: list[Document]  # SQuAD-style only: every context as a document
    # rated turns still waiting for the operator's gold answer (bot/feedback.py): skipped
    needs_gold: int = 0

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for doc in self.contexts:
            digest.update(doc.sha256.encode())
        return digest.hexdigest()[:12]


def load_testset(path: Path) -> TestSet:
    """Read a test set, detecting JSON Lines or SQuAD/CMRC JSON by its content."""
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise QabotError(f"Cannot read test set {path}: {exc}. Give a UTF-8 file.") from exc
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("data"), list):
        items, contexts = _squad(whole, path)
        return TestSet(path, "squad", items, contexts)
    items, waiting = _jsonl(text, path)
    return TestSet(path, "jsonl", items, [], waiting)


def _answer_texts(answers: Any, where: str) -> list[str]:
    """A list of answers as strings: plain strings, or SQuAD-style ``{"text": ...}``
    objects. Anything else is an error naming ``where``."""
    if not isinstance(answers, list):
        raise QabotError(f"{where}: \"answers\" must be a list of strings or of "
                         '{"text": ...} objects (empty for a question the documents do not '
                         f"answer); got {json.dumps(answers, ensure_ascii=False)[:80]}.")
    out = []
    for i, answer in enumerate(answers):
        if isinstance(answer, dict) and isinstance(answer.get("text"), str):
            answer = answer["text"]
        if not isinstance(answer, str):
            raise QabotError(f"{where}: answer {i + 1} must be a string or a "
                             '{"text": "..."} object; got '
                             f"{json.dumps(answer, ensure_ascii=False)[:80]}.")
        out.append(answer)
    return out


def _jsonl(text: str, path: Path) -> tuple[list[Item], int]:
    """The items, and how many were skipped as still needing a gold answer."""
    items = []
    waiting = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("question"), str):
                raise QabotError(f"{path} line {n} is not a test item: each line needs at "
                                 'least {"question": "...", "answers": [...]}.')
            if row.get("needs_gold"):  # a 👎 turn the operator has not answered yet
                waiting += 1
                continue
            history = row.get("history") or []
            if not (isinstance(history, list) and all(isinstance(h, str) for h in history)):
                raise QabotError(
                    f"{path} line {n}: \"history\" must be a list of the earlier questions "
                    'as strings, e.g. "history": ["天华民乐团是在哪里成立的?"]; got '
                    f"{json.dumps(history, ensure_ascii=False)[:80]}.")
            answers = _answer_texts(row.get("answers", []), f"{path} line {n}")
            items.append(Item(
                id=str(row.get("id", n)), question=row["question"],
                answers=answers,
                evidence=str(row.get("evidence", "")),
                history=tuple(history),
                type=str(row.get("type", "unlabelled")),
            ))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise QabotError(f"{path} line {n} is not a test item ({exc}). Each line needs "
                             'at least {"question": ..., "answers": [...]}.') from exc
    if not items and waiting:
        raise QabotError(f"Every item of {path} is marked needs_gold ({waiting}): write the "
                         'right answer into each one\'s "answers" (empty when the documents do '
                         "not say) and remove the mark, then evaluate again.")
    if not items:
        raise QabotError(f"{path} holds no questions.")
    return items, waiting


def _squad(data: dict[str, Any], path: Path) -> tuple[list[Item], list[Document]]:
    name = re.sub(r"\W+", "-", path.stem).strip("-") or "squad"
    items: list[Item] = []
    contexts: list[Document] = []
    def need(value: Any, kind: type, where: str, what: str) -> Any:
        if not isinstance(value, kind):
            got = "it is missing" if value is None else \
                f"got {json.dumps(value, ensure_ascii=False)[:80]}"
            raise QabotError(f"{path}: {where} must be {what}; {got}. SQuAD/CMRC JSON "
                             'is {"data": [{"paragraphs": [{"context": "...", "qas": '
                             '[{"question": "...", "answers": [{"text": "..."}]}]}]}]}.')
        return value

    try:
        for a, article in enumerate(data["data"]):
            need(article, dict, f"data[{a}]", "an object")
            title = str(article.get("title", "")).strip()
            paragraphs = need(article.get("paragraphs"), list, f"data[{a}].paragraphs",
                              "a list")
            for p, para in enumerate(paragraphs):
                at = f"data[{a}].paragraphs[{p}]"
                need(para, dict, at, "an object")
                cid = str(para.get("id") or f"{a}-{p}")
                body = need(para.get("context"), str, f"{at}.context", "a string")
                need(para.get("qas"), list, f"{at}.qas", "a list")
                text = f"{title}\n{body}\n" if title else f"{body}\n"
                source = f"{name}/{cid}"
                contexts.append(Document(
                    path=Path(source), source=source, text=text,
                    sha256=hashlib.sha256(text.encode()).hexdigest(),
                    meta={"title": title} if title else {},
                    header=(0, len(title)) if title else None))
                for q, qa in enumerate(para["qas"]):
                    need(qa, dict, f"{at}.qas[{q}]", "an object")
                    question = need(qa.get("question"), str, f"{at}.qas[{q}].question",
                                    "a string")
                    answers = list(dict.fromkeys(_answer_texts(
                        qa.get("answers", []), f"{path}: {at}.qas[{q}]")))
                    items.append(Item(id=str(qa.get("id", len(items))),
                                      question=question, answers=answers,
                                      evidence=answers[0] if answers else "",
                                      type=str(qa.get("type", "squad")), context=source))
    except (KeyError, TypeError) as exc:
        raise QabotError(f"{path} looks like SQuAD JSON but an entry lacks {exc}. Each "
                         "paragraph needs 'context' and 'qas'.") from exc
    if not items:
        raise QabotError(f"{path} holds no questions.")
    return items, contexts
