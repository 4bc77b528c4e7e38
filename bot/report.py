"""Evaluation output a person would rather look at: report.md, metrics.json, charts,
and the comparison of two runs.

matplotlib is imported only when charts are written, with the Agg backend (no screen).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import QabotError
from bot.evaluation import METRIC_DEFINITIONS, percentile

Metrics = dict[str, float | None]
# settings that do not change what an evaluation measures: where state lives, the
# Telegram front end. Two reports that differ only in these compare without a flag.
NEUTRAL_SECTIONS = ("paths.", "telegram.")

CHART_METRICS = {"correct": "right decisions", "accuracy": "accuracy",
                 "citation_hit": "citation hit", "f1": "CMRC F1", "hit@5": "hit@5"}


def shown(value: float | None) -> str:
    """A metric as every view prints it: n/a where nothing could be measured."""
    return "n/a" if value is None else f"{value}"


def metrics_table(metrics: Metrics, types: dict[str, Metrics]) -> str:
    """The terminal's view: each metric, then right decisions and quality by type."""
    rows = [f"{k:<20} {shown(v)}" for k, v in metrics.items()]
    rows.append("")
    rows.append(f"{'type':<14} {'n':>5} {'right':>7} {'acc':>7} {'f1':>7} {'cite':>7} "
                f"{'hit@5':>7}")
    for t, v in types.items():
        cells = [f"{shown(v[k]) if v[k] is None else format(v[k], '.3f'):>7}"
                 for k in ("correct", "accuracy", "f1", "citation_hit", "hit@5")]
        rows.append(f"{t:<14} {v['n']:>5} " + " ".join(cells))
    return "\n".join(rows)


def write_report(out: Path, *, metrics: Metrics, types: dict[str, Metrics],
                 failures: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                 about: dict[str, Any]) -> list[Path]:
    """Write report.md, metrics.json, by_type.png and latency.png into ``out``.
    ``about`` should hold ``settings`` (every setting) and ``version``: ``compare``
    checks them."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"metrics": metrics, "by_type": types, "about": about,
               "written_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (out / "metrics.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1), "utf-8")
    charts = _charts(out, types, [r["latency_ms"] for r in rows])
    lines = [f"# Evaluation: {about.get('testset', '')}", "",
             f"{metrics['questions']} questions ({metrics['answerable']} answerable, "
             f"{metrics['unanswerable']} unanswerable); embedder `{about.get('embedder')}`; "
             f"answerer `{about.get('answerer', '?')}`; qabot {about.get('version', '?')}; "
             f"{payload['written_at']}.", "", "| metric | value | meaning |", "|---|---|---|"]
    lines += [f"| {k} | {shown(v)} | {METRIC_DEFINITIONS.get(k, '')} |"
              for k, v in metrics.items()]
    lines += ["", "## By question type", "",
              "Right decisions count refusals of unanswerable questions too; the other "
              "columns are over a type's answerable questions (n/a when it has none).", "",
              "| type | n | right decisions | accuracy | f1 | citation hit | hit@5 |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {t} | {v['n']} | {shown(v['correct'])} | {shown(v['accuracy'])} | "
              f"{shown(v['f1'])} | {shown(v['citation_hit'])} | {shown(v['hit@5'])} |"
              for t, v in types.items()]
    lines += ["", *[f"![{p.stem}]({p.name})" for p in charts], "", "## Worst failures", ""]
    for r in failures:
        lines += [f"### {r['id']}: {r['question']}", "",
                  f"- gold: {r['gold_answers'] or '(should refuse)'}",
                  f"- answer: {_one_line(r['answer'])}",
                  f"- evidence rank in top 10: {r['evidence_rank'] or 'not retrieved'}",
                  "- retrieved:"]
        lines += [f"  {i}. {'✓' if d['relevant'] else '✗'} `{d['source']}` "
                  f"{_one_line(d['text'])[:120]}" for i, d in enumerate(r["retrieved"][:3], 1)]
        lines.append("")
    settings = about.get("settings") or {}
    if settings:
        lines += ["## Settings", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | `{json.dumps(v, ensure_ascii=False)}` |" for k, v in settings.items()]
        lines.append("")
    (out / "report.md").write_text("\n".join(lines) + "\n", "utf-8")
    return [out / "report.md", out / "metrics.json", *charts]


def compare(a: Path, b: Path, *, allow_different: bool = False) -> str:
    """Per metric and per question type: A, B and B - A, for two metrics.json files.
    Reports made with different settings or versions (or that do not record them) are
    refused unless ``allow_different``: their differences would not be the change
    being measured."""
    first, second = _load(a), _load(b)
    differences = _differences(first.get("about") or {}, second.get("about") or {})
    if differences and not allow_different:
        raise QabotError(f"{a} and {b} were not made with the same settings: "
                         f"{'; '.join(differences)}. Compare them anyway with "
                         "--allow-different-settings.")
    rows = [f"Differences: {'; '.join(differences)}", ""] if differences else []
    rows += [f"{'metric':<22} {'A':>10} {'B':>10} {'B-A':>10}"]
    keys = list(dict.fromkeys([*first["metrics"], *second["metrics"]]))
    rows += [_diff_row(k, first["metrics"].get(k), second["metrics"].get(k)) for k in keys]
    rows.append("")
    rows.append(f"{'type (right decisions)':<22} {'A':>10} {'B':>10} {'B-A':>10}")
    for t in sorted(first["by_type"].keys() | second["by_type"].keys()):
        rows.append(_diff_row(t, first["by_type"].get(t, {}).get("correct"),
                              second["by_type"].get(t, {}).get("correct")))
    return "\n".join(rows)


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two reports' versions and settings (paths and Telegram
    settings aside), each as "key (A vs B)"."""
    if not a.get("settings") or not b.get("settings"):
        return ["one report records no settings (written before qabot recorded them)"]
    out = []
    if a.get("version") != b.get("version"):
        out.append(f"version ({a.get('version')} vs {b.get('version')})")
    sa, sb = a["settings"], b["settings"]
    for key in sorted(sa.keys() | sb.keys()):
        if key.startswith(NEUTRAL_SECTIONS):
            continue
        if sa.get(key) != sb.get(key):
            out.append(f"{key} ({sa.get(key)!r} vs {sb.get(key)!r})")
    return out


def _diff_row(name: str, a: float | None, b: float | None) -> str:
    fa = "-" if a is None else f"{a:.4g}"
    fb = "-" if b is None else f"{b:.4g}"
    delta = "" if a is None or b is None else f"{b - a:+.4g}"
    return f"{name:<22} {fa:>10} {fb:>10} {delta:>10}"


def _load(path: Path) -> dict[str, Any]:
    path = path / "metrics.json" if path.is_dir() else path
    try:
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        if not (isinstance(data["metrics"], dict) and isinstance(data["by_type"], dict)):
            raise TypeError("metrics and by_type must be objects")
        return data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QabotError(f"{path} is not a metrics.json written by `qabot eval --report` "
                         f"({exc}).") from exc


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _charts(out: Path, types: dict[str, Metrics], latencies: list[float]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    # CJK type names need a font with the glyphs; fall back quietly when none is installed
    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "DejaVu Sans"]
    names = list(types)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names) + 2), 4.4))
    width = 0.8 / len(CHART_METRICS)
    for i, (metric, label) in enumerate(CHART_METRICS.items()):
        xs = [x + i * width for x in range(len(names))]
        # "right decisions" covers refusals; the others need answerable questions and
        # are None (n/a) for a type with none
        applies = [types[n].get(metric) is not None for n in names]
        values = [float(types[n][metric] or 0.0) if ok else 0.0
                  for n, ok in zip(names, applies, strict=True)]
        drawn = ax.bar(xs, values, width, label=label)
        colour = drawn.patches[0].get_facecolor() if drawn.patches else None
        for x, v, ok in zip(xs, values, applies, strict=True):
            if not ok:  # not applicable: no bar, a mark that says so
                ax.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=8, rotation=90,
                        color="dimgrey")
            elif v == 0:  # a zero is a result: a visible stub at the axis
                ax.plot([x - width / 2, x + width / 2], [0.004, 0.004], color=colour, lw=2.5)
                ax.text(x, 0.01, "0", ha="center", va="bottom", fontsize=8)
    ticks = [f"{n}\n(n={types[n]['n']})" for n in names]
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], ticks, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of questions")
    ax.set_title("Quality by question type (right decisions count refusals too; n/a: no "
                 "answerable questions)", pad=28, fontsize=9)
    ax.legend(ncols=len(CHART_METRICS), fontsize=8, loc="lower center",
              bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    bars = out / "by_type.png"
    fig.savefig(bars, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(latencies, bins=min(40, max(5, len(latencies) // 3)), color="#4477aa")
    for pct, style in ((50, "--"), (95, ":")):
        value = percentile(latencies, pct)
        ax.axvline(value, color="#cc6677", ls=style, lw=1.5, label=f"p{pct} {value:.0f} ms")
    ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel("latency per question (ms)")
    ax.set_ylabel("questions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # no half-question ticks
    ax.set_title(f"Answer latency ({len(latencies)} questions)")
    fig.tight_layout()
    hist = out / "latency.png"
    fig.savefig(hist, dpi=110)
    plt.close(fig)
    return [bars, hist]
