"""``qabot eval``: score the bot on a test set, write its predictions and a report,
compare two reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bot.cli_common import Context, masked, pass_ctx, verbose_option
from bot.config import Settings
from bot.errors import QabotError
from bot.progress import Feedback
from bot.wording import count


@click.command(name="eval")
@verbose_option
@click.argument("testset", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--predictions", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one JSON line per question (as it goes; kept on Ctrl-C).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write report.md, metrics.json and PNG charts into this folder.")
@click.option("--ingest-contexts", is_flag=True,
              help="SQuAD/CMRC files: index every context in a separate index first.")
@click.option("--compare", nargs=2, type=click.Path(exists=True, path_type=Path),
              metavar="A B", help="Compare two metrics.json files (or report folders).")
@click.option("--allow-different-settings", is_flag=True,
              help="With --compare: compare reports made with different settings.")
@click.option("--limit", type=int, help="Only the first N questions.")
@click.option("--failures", default=5, show_default=True, help="Show this many failures.")
@pass_ctx
def eval_cmd(obj: Context, testset: Path | None, predictions: Path | None,
             report_dir: Path | None, ingest_contexts: bool,
             compare: tuple[Path, Path] | None, allow_different_settings: bool,
             limit: int | None, failures: int) -> None:
    """Score the bot on a test set (JSONL, or SQuAD/CMRC JSON with --ingest-contexts)."""
    from bot import evaluation, report

    if compare:
        click.echo(report.compare(*compare, allow_different=allow_different_settings))
        return
    if testset is None:
        raise click.UsageError("Give a TESTSET file (or --compare A B).")
    data = evaluation.load_testset(testset)
    if data.needs_gold:
        click.echo(f"Skipping {count(data.needs_gold, 'item')} marked needs_gold (rated 👎, "
                   "no right answer written in yet).", err=True)
    items = data.items[:limit] if limit else data.items
    settings, ingest_seconds = obj.settings, None
    if data.format == "squad":
        if not ingest_contexts:
            raise QabotError(f"{testset} is SQuAD-style: add --ingest-contexts to index its "
                             "contexts (in a separate index; your own index is not touched).")
        settings, ingest_seconds = _index_contexts(settings, data)
    elif ingest_contexts:
        raise QabotError("--ingest-contexts is for SQuAD/CMRC JSON files; a JSONL test set is "
                         "asked against the main index (run `qabot ingest` for it).")
    from bot.engine import Engine
    from bot.sessions import SessionStore

    engine = Engine(settings, sessions=SessionStore(":memory:"))
    rows: list[dict[str, Any]] = []
    try:
        if predictions:
            predictions.parent.mkdir(parents=True, exist_ok=True)
        out = predictions.open("w", encoding="utf-8") if predictions else None
    except OSError as exc:
        raise QabotError(f"Cannot write the predictions to {predictions}: "
                         f"{exc.strerror or exc}. Give --predictions a file in a folder "
                         "you can write to.") from exc

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        if out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()

    try:
        with Feedback("Evaluating") as feedback:
            for done, _ in enumerate(evaluation.run(engine, items, on_result=keep), 1):
                feedback.update(done, len(items), f"{done}/{len(items)} questions")
    except KeyboardInterrupt:
        click.echo(f"Interrupted after {len(rows)} of {len(items)} questions; "
                   "scoring those.", err=True)
    finally:
        if out:
            out.close()
    if not rows:
        raise QabotError("No question was evaluated.")
    metrics = evaluation.metrics(rows, ingest_seconds=ingest_seconds)
    types = evaluation.by_type(rows)
    click.echo(report.metrics_table(metrics, types))
    worst = evaluation.worst(rows, failures)
    for r in worst:
        click.echo(f"✗ {r['id']} {r['question']}\n    gold: {r['gold_answers'] or '(refuse)'}"
                   f"\n    got:  {(r['answer'].splitlines() or ['(nothing)'])[0][:120]}"
                   f"\n    evidence rank: {r['evidence_rank'] or 'not in top 10'}")
    if report_dir:
        from bot import __version__
        from bot.answerers import answerer_for
        from bot.config import effective

        about = {"testset": str(testset), "embedder": engine.stats().embedder,
                 "questions_run": len(rows), "version": __version__,
                 "answerer": str(answerer_for(settings).mode),
                 # every setting, URL passwords masked: compare() checks they agree
                 "settings": {key: masked(value) for key, value, _ in effective(settings)}}
        written = report.write_report(report_dir, metrics=metrics, types=types,
                                      failures=evaluation.worst(rows, 10), rows=rows,
                                      about=about)
        click.echo("Report: " + ", ".join(str(p) for p in written))
    if predictions:
        click.echo(f"Predictions: {predictions}")


def _index_contexts(settings: Settings, data: Any) -> tuple[Settings, float]:
    """A separate index of a SQuAD-style set's contexts under <home>/eval/."""
    from bot.embeddings import make_embeddings
    from bot.ingest import ingest_documents

    home = settings.home / "eval" / f"{data.path.stem}-{data.fingerprint}"
    eval_settings = settings.replace({"paths.home": str(home)})
    embeddings = make_embeddings(settings.embeddings)
    with Feedback("Indexing contexts") as feedback:
        report = ingest_documents(eval_settings, data.contexts, embeddings,
                                  progress=feedback.ingest, total=len(data.contexts))
    click.echo(f"Contexts indexed in {home}: {report.summary()}.", err=True)
    return eval_settings, report.seconds
