"""The eval's outputs: markdown tables, the JSON of every result, and a PNG plot (matplotlib, optional).

The main table is a list of :class:`Column` (``COLUMNS``): a header, an alignment and a function of one
summary, so another measurement adds a column by appending one (or passes its own list to
:func:`markdown_table`) without touching the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from litellm_fusion._engine.vote import Recommendation
from litellm_fusion.evaluation.results import ConfigSummary, EvalReport

__all__ = [
    "Column",
    "COLUMNS",
    "OUTCOME_COLUMNS",
    "VOTE_COLUMNS",
    "PlotUnavailable",
    "PLOT_HINT",
    "markdown_table",
    "markdown_report",
    "plot",
    "write_outputs",
]

PLOT_HINT = "pip install 'litellm-fusion[eval]'"


class PlotUnavailable(ImportError):
    """matplotlib is not installed (the table and the JSON do not need it)."""


def _cost_text(s: ConfigSummary) -> str:
    text = f"${s.total_cost:.4f}" if s.total_cost >= 0.01 or s.total_cost == 0 else f"${s.total_cost:.6f}"
    if s.unpriced:
        return f"≥{text} (unpriced calls)" if s.total_cost else "unpriced"
    return text


def _secs(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f} s"


@dataclass(frozen=True)
class Column:
    """One column of a markdown table: its header, ``left`` or ``right`` alignment, and its cell text."""

    header: str
    cell: Callable[[ConfigSummary], str]
    align: str = "right"


def _fusion_count(key: str) -> Callable[[ConfigSummary], str]:
    def cell(s: ConfigSummary) -> str:
        count = (s.fusion_stats or {}).get(key)
        return "-" if count is None or not s.n else f"{count}/{s.n}"

    return cell


def _paired(s: ConfigSummary) -> str:
    p = s.vs_best_solo
    if not p:
        return "-"
    return f"{p['won']}/{p['lost']}/{p['tied']} (p={p['p_value']:.2g})"


def _accuracy(s: ConfigSummary) -> str:
    return f"{s.accuracy:.1%} [{s.ci_low:.0%}, {s.ci_high:.0%}]"


COLUMNS: list[Column] = [
    Column("configuration", lambda s: s.name.replace("|", "\\|"), "left"),
    Column("accuracy [95% CI]", _accuracy),
    Column("n", lambda s: str(s.n)),
    Column("oracle (any member right)", _fusion_count("panel_any_correct")),
    Column("panel vote", _fusion_count("vote_correct")),
    Column("vs best solo W/L/T (McNemar p)", _paired),
    Column("mean tokens", lambda s: "-" if s.mean_tokens is None else f"{s.mean_tokens:,.0f}"),
    Column("total cost", _cost_text),
    Column("p50 latency", lambda s: _secs(s.p50_latency_ms)),
    Column("errors", lambda s: str(s.errors)),
]
"""The main table's columns, in order."""


def _outcome(key: str) -> Callable[[ConfigSummary], str]:
    def cell(s: ConfigSummary) -> str:
        outcomes = (s.fusion_stats or {}).get("outcomes")
        return "-" if outcomes is None else str(outcomes.get(key, 0))

    return cell


def _judge_read(s: ConfigSummary) -> str:
    stats = s.fusion_stats or {}
    return f"{stats.get('judge_read', 0)} ({stats.get('judge_read_in_majority', 0)})"


OUTCOME_COLUMNS: list[Column] = [
    Column("fusion", lambda s: s.name.replace("|", "\\|"), "left"),
    Column("kept a right majority", _outcome("kept_right_majority")),
    Column("lost a right majority", _outcome("lost_right_majority")),
    Column("rescued a right minority", _outcome("rescued_right_minority")),
    Column("missed a right minority", _outcome("missed_right_minority")),
    Column("right when no member was", _outcome("right_when_none_were")),
    Column("wrong, no member right", _outcome("wrong_when_none_were")),
    Column("short-circuited (judge skipped)", lambda s: str((s.fusion_stats or {}).get("short_circuit", 0))),
    Column("judge failed", lambda s: str((s.fusion_stats or {}).get("judge_failed", 0))),
    Column("panel vote tied", _fusion_count("vote_tied")),
    Column("claims read by the judge (in the majority)", _judge_read),
]
"""What each fusion did with its panel's answers, question by question (see ``stats.fusion_outcome``)."""


def _checks(accepted: str, of: str) -> Callable[[ConfigSummary], str]:
    def cell(s: ConfigSummary) -> str:
        checks = (s.fusion_stats or {}).get("judge_checks")
        return "-" if checks is None else f"{checks[accepted]}/{checks[of]}"

    return cell


def _followed(recommendation: str) -> Callable[[ConfigSummary], str]:
    def cell(s: ConfigSummary) -> str:
        entry = ((s.fusion_stats or {}).get("by_recommendation") or {}).get(recommendation)
        return "-" if not entry else f"{entry['right']}/{entry['n']}"

    return cell


VOTE_COLUMNS: list[Column] = [
    Column("fusion", lambda s: s.name.replace("|", "\\|"), "left"),
    Column("wrong answers the judge accepted", _checks("wrong_accepted", "wrong_answers")),
    Column("right answers the judge rejected", _checks("right_rejected", "right_answers")),
    *(Column(f"right after {name}", _followed(name)) for name in (*get_args(Recommendation), "short_circuit")),
]
"""The judge's checks against the grader, and how often the fusion was right after each recommendation of
the vote (``right after trust_majority: 6/8``: 8 fusions were told to trust the majority, 6 were right)."""


def markdown_table(summaries: Sequence[ConfigSummary], columns: Sequence[Column] | None = None) -> str:
    """One row per summary, one column per :class:`Column` (default :data:`COLUMNS`)."""
    columns = COLUMNS if columns is None else columns
    rows = [
        "| " + " | ".join(c.header for c in columns) + " |",
        "|" + "|".join("---" if c.align == "left" else "---:" for c in columns) + "|",
    ]
    rows += ["| " + " | ".join(c.cell(s) for c in columns) + " |" for s in summaries]
    return "\n".join(rows) + "\n"


def markdown_report(report: EvalReport) -> str:
    """The main table, then (with fusions) the baseline named, what each fusion did with its panel's answers,
    and (with the vote aggregation) the judge's checks and what the fusion did after each recommendation."""
    text = markdown_table(report.summaries)
    fusions = [s for s in report.summaries if s.kind == "fusion"]
    if fusions:
        text += f"\nPaired baseline (W/L/T: questions the fusion won, lost, tied against it): {report.best_solo or 'none (no solo configuration)'}.\n\n"
        text += markdown_table(fusions, OUTCOME_COLUMNS)
        if any((s.fusion_stats or {}).get("by_recommendation", {}).keys() - {"none"} for s in fusions):
            text += "\nThe vote (right after X: fusions the vote told X, and how many of them were right):\n\n"
            text += markdown_table(fusions, VOTE_COLUMNS)
    return text


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(
            f"no plot: matplotlib is not installed ({PLOT_HINT}); the table and the JSON are written without it"
        ) from None
    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def plot(summaries: Sequence[ConfigSummary], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Two panels, one labelled point per configuration: accuracy against cost (against mean tokens when
    no configuration has a known non-zero cost) and accuracy against p50 latency. Raises
    :class:`PlotUnavailable` without matplotlib."""
    plt = _pyplot()
    by_cost = any(s.total_cost > 0 for s in summaries) and not any(s.unpriced for s in summaries)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    panels = [
        (
            left,
            (lambda s: s.total_cost) if by_cost else (lambda s: s.mean_tokens),
            "total cost (USD)" if by_cost else "mean tokens per question",
        ),
        (right, lambda s: None if s.p50_latency_ms is None else s.p50_latency_ms / 1000, "p50 latency (s)"),
    ]
    for axis, x_of, label in panels:
        for s in summaries:
            x = x_of(s)
            if x is None:
                continue
            marker, color = ("^", "tab:orange") if s.kind == "fusion" else ("o", "tab:blue")
            axis.scatter([x], [100 * s.accuracy], marker=marker, color=color, s=60, zorder=3)
            axis.annotate(s.name, (x, 100 * s.accuracy), textcoords="offset points", xytext=(6, 6), fontsize=8)
        axis.set_xlabel(label)
        axis.set_ylabel("accuracy (%)")
        axis.set_ylim(-5, 105)
        axis.margins(x=0.25)
        axis.set_xlim(left=0)  # costs, tokens and latencies start at 0
        axis.grid(True, alpha=0.3)
    left.set_title("accuracy vs cost" if by_cost else "accuracy vs tokens (no non-zero costs)")
    right.set_title("accuracy vs latency")
    for kind, marker, color in (("solo", "o", "tab:blue"), ("fusion", "^", "tab:orange")):
        if any(s.kind == kind for s in summaries):
            left.scatter([], [], marker=marker, color=color, label=kind)
    left.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_outputs(report: EvalReport, out_dir: str | os.PathLike[str], *, with_plot: bool = True) -> dict[str, Any]:
    """Write ``table.md``, ``results.json`` and (with matplotlib) ``plot.png`` into ``out_dir``.

    Returns ``{"table": path, "json": path, "plot": path or None, "plot_note": why there is no plot or None}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "table.md"
    table.write_text(markdown_report(report), encoding="utf-8")
    results = out / "results.json"
    results.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    written: dict[str, Any] = {"table": table, "json": results, "plot": None, "plot_note": None}
    if with_plot:
        title = f"{Path(report.questions_path).name}: {report.n_questions} questions"
        try:
            written["plot"] = plot(report.summaries, out / "plot.png", title=title)
        except PlotUnavailable as exc:
            written["plot_note"] = str(exc)
    return written
