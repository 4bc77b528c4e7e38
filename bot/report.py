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
from bot.evaluation import percentile

CHART_METRICS = {"correct": "right decisions", "accuracy": "accuracy",
                 "citation_hit": "citation hit", "f1": "CMRC F1", "hit@5": "hit@5"}


def write_report(out: Path, *, metrics: dict[str, float], types: dict[str, dict[str, float]],
                 failures: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                 about: dict[str, Any]) -> list[Path]:
    """Write report.md, metrics.json, by_type.png and latency.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"metrics": metrics, "by_type": types, "about": about,
               "written_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (out / "metrics.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1), "utf-8")
    charts = _charts(out, types, [r["latency_ms"] for r in rows])
    lines = [f"# Evaluation: {about.get('testset', '')}", "",
             f"{metrics['questions']} questions ({metrics['answerable']} answerable, "
             f"{metrics['unanswerable']} unanswerable); embedder `{about.get('embedder')}`; "
             f"{payload['written_at']}.", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in metrics.items()]
    lines += ["", "## By question type", "",
              "| type | n | right decisions | accuracy | f1 | citation hit | hit@5 |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {t} | {v['n']} | {v['correct']} | {v['accuracy']} | {v['f1']} | "
              f"{v['citation_hit']} | {v['hit@5']} |" for t, v in types.items()]
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
    (out / "report.md").write_text("\n".join(lines) + "\n", "utf-8")
    return [out / "report.md", out / "metrics.json", *charts]


def compare(a: Path, b: Path) -> str:
    """Per metric and per question type: A, B and B - A, for two metrics.json files."""
    first, second = _load(a), _load(b)
    rows = [f"{'metric':<22} {'A':>10} {'B':>10} {'B-A':>10}"]
    keys = list(dict.fromkeys([*first["metrics"], *second["metrics"]]))
    rows += [_diff_row(k, first["metrics"].get(k), second["metrics"].get(k)) for k in keys]
    rows.append("")
    rows.append(f"{'type (right decisions)':<22} {'A':>10} {'B':>10} {'B-A':>10}")
    for t in sorted(first["by_type"].keys() | second["by_type"].keys()):
        rows.append(_diff_row(t, first["by_type"].get(t, {}).get("correct"),
                              second["by_type"].get(t, {}).get("correct")))
    return "\n".join(rows)


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


def _charts(out: Path, types: dict[str, dict[str, float]], latencies: list[float]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # CJK type names need a font with the glyphs; fall back quietly when none is installed
    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "DejaVu Sans"]
    names = list(types)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names) + 2), 4.4))
    width = 0.8 / len(CHART_METRICS)
    for i, (metric, label) in enumerate(CHART_METRICS.items()):
        xs = [x + i * width for x in range(len(names))]
        # "right decisions" covers refusals; the others need answerable questions
        applies = [metric == "correct" or types[n].get("answerable", 1) > 0 for n in names]
        values = [types[n][metric] if ok else 0.0 for n, ok in zip(names, applies, strict=True)]
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
    ax.set_title(f"Answer latency ({len(latencies)} questions)")
    fig.tight_layout()
    hist = out / "latency.png"
    fig.savefig(hist, dpi=110)
    plt.close(fig)
    return [bars, hist]
