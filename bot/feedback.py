"""Users' 👍/👎 ratings as an evaluation set: ``qabot sessions export --rated FILE``.

Each rated turn becomes one line of the evaluation JSONL format (bot/evaluation.py),
with the session's earlier questions as its ``history`` so ``qabot eval FILE``
replays the conversation:

* 👍 on an answer: its short answer is the gold (or the whole answer when it had none);
* 👍 on a refusal: the user agrees the documents do not say: an unanswerable item;
* 👎: the bot's answer is kept as ``bot_answer`` and the item is marked
  ``"needs_gold": true`` with empty answers; the operator writes the right answer into
  ``answers`` (or leaves it empty for "the documents do not say") and removes the
  mark. ``qabot eval`` skips marked items and says how many are left to fill in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot.files import atomic_write
from bot.sessions import Turn

NEEDS_GOLD = "needs_gold"


def rated_items(rated: Iterable[tuple[str, Turn]], transcripts: dict[str, list[Turn]],
                history_turns: int) -> list[dict[str, Any]]:
    """One evaluation item per rated turn (``rated``: (session, turn), oldest first)."""
    items = []
    for session, turn in rated:
        earlier = [t.question for t in transcripts.get(session, []) if
                   t.id is not None and turn.id is not None and t.id < turn.id]
        history = earlier[-history_turns:] if history_turns else []
        refused = not turn.citations
        row: dict[str, Any] = {"id": f"rated-{turn.id}", "question": turn.question,
                               "history": history, "session": session}
        if turn.rating and turn.rating > 0:
            row.update(answers=[] if refused else [turn.short or turn.answer],
                       type="rated-unanswerable" if refused else "rated-good")
        else:
            row.update(answers=[], type="rated-bad", bot_answer=turn.answer)
            row[NEEDS_GOLD] = True
        items.append(row)
    return items


def write_jsonl(items: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items))
