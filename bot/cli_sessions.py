"""``qabot sessions``: list conversations, print one, export the rated turns.

Reads the session store only (SQLite under the state folder, or PostgreSQL with
``session.url``), so it works without an index and beside a running bot.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from bot.errors import QabotError
from bot.sessions import SessionBackend, Turn, open_sessions
from bot.wording import count, printable

# `qabot sessions` without --limit: a screenful
LIST_LIMIT = 20


def _store(obj: Any) -> SessionBackend:
    return open_sessions(obj.settings)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _turn_dict(t: Turn) -> dict[str, Any]:
    return {"id": t.id, "at": t.at, "question": t.question, "answer": t.answer,
            "short_answer": t.short or None, "subject": t.subject or None,
            "rating": t.rating, "cited": [c.label for c in t.citations]}


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session.")
@click.option("--limit", default=LIST_LIMIT, show_default=True, help="How many to list.")
@click.pass_context
def sessions(ctx: click.Context, as_json: bool, limit: int) -> None:
    """List conversations (most recent first); `sessions show ID` prints one."""
    if ctx.invoked_subcommand is not None:
        return
    found = _store(ctx.obj).sessions(limit)
    if as_json:
        for s in found:
            click.echo(json.dumps({"id": s.id, "turns": s.turns, "last_question": s.last_question,
                                   "last_at": s.last_at}, ensure_ascii=False))
        return
    if not found:
        click.echo("No conversations yet. Start one: qabot chat")
        return
    for s in found:
        click.echo(f"{s.id}  {_when(s.last_at)}  {count(s.turns, 'turn')}  "
                   f"{printable(s.last_question)[:60]}")
    click.echo("\nShow one: qabot sessions show ID    Resume it: qabot chat --session ID")


@sessions.command()
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per turn.")
@click.pass_obj
def show(obj: Any, session_id: str, as_json: bool) -> None:
    """Print the transcript of session SESSION_ID."""
    turns = _store(obj).transcript(session_id)
    if not turns:
        raise QabotError(f"No session {session_id!r}. List them: qabot sessions")
    for t in turns:
        if as_json:
            click.echo(json.dumps(_turn_dict(t), ensure_ascii=False))
            continue
        mark = {1: "  👍", -1: "  👎"}.get(t.rating or 0, "")
        click.echo(f"[{_when(t.at)}] > {printable(t.question)}{mark}")
        for line in t.answer.splitlines():
            click.echo(f"  {printable(line)}")
        click.echo("")


@sessions.command()
@click.option("--rated", "path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rated turns to this JSONL file (the `qabot eval` format).")
@click.pass_obj
def export(obj: Any, path: Path) -> None:
    """Write the 👍/👎-rated turns as an evaluation set: `qabot eval FILE` then
    measures the bot on what its users asked (fill in the 👎 turns' answers first)."""
    from bot.feedback import NEEDS_GOLD, rated_items, write_jsonl

    store = _store(obj)
    rated = store.rated()
    if not rated:
        raise QabotError("No rated answers yet: rate answers with 👍/👎 in Telegram, or "
                         "/good and /bad in qabot chat.")
    transcripts = {s: store.transcript(s) for s in {s for s, _ in rated}}
    items = rated_items(rated, transcripts, obj.settings.session.history_turns)
    write_jsonl(items, path)
    todo = sum(1 for i in items if i.get(NEEDS_GOLD))
    click.echo(f"Wrote {count(len(items), 'rated turn')} to {path}"
               + (f"; {todo} marked {NEEDS_GOLD}: write the right answer into their "
                  f"\"answers\" and remove the mark, then run: qabot eval {path}"
                  if todo else f". Measure: qabot eval {path}"))
