"""The eval's outputs: a markdown table, the JSON of every result, and a PNG plot (matplotlib, optional)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .runner import ConfigSummary, EvalReport

__all__ = ["PlotUnavailable", "PLOT_HINT", "markdown_table", "plot", "write_outputs"]

PLOT_HINT = "pip install 'litellm-fusion[eval]'"


class PlotUnavailable(ImportError):
    """matplotlib is not installed (the table and the JSON do not need it)."""


def _cost(s: ConfigSummary) -> str:
    text = f"${s.total_cost:.4f}" if s.total_cost >= 0.01 or s.total_cost == 0 else f"${s.total_cost:.6f}"
    if s.unpriced:
        return f"≥{text} (unpriced calls)" if s.total_cost else "unpriced"
    return text


def _secs(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f} s"


def markdown_table(summaries: Sequence[ConfigSummary]) -> str:
    """configuration | accuracy | n | mean tokens | total cost | p50 latency | errors."""
    rows = [
        "| configuration | accuracy | n | mean tokens | total cost | p50 latency | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        tokens = "-" if s.mean_tokens is None else f"{s.mean_tokens:,.0f}"
        name = s.name.replace("|", "\\|")
        rows.append(f"| {name} | {s.accuracy:.1%} | {s.n} | {tokens} | {_cost(s)} | {_secs(s.p50_latency_ms)} | {s.errors} |")
    return "\n".join(rows) + "\n"


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
    table.write_text(report.markdown(), encoding="utf-8")
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
