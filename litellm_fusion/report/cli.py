"""``litellm-fusion report TRACE.json -o FILE`` and the ``--html FILE`` writers of ``ask``, ``demo`` and ``eval``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from litellm_fusion.report.eval_page import eval_page
from litellm_fusion.report.load import TraceFormatError, read_report_input
from litellm_fusion.report.trace_page import trace_page

__all__ = ["add_parser", "report_command", "write_trace_report", "write_eval_report", "HTML_HELP"]

HTML_HELP = "also write the run as a self-contained HTML report to FILE"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``commands`` (an argparse subparsers object)."""
    parser = commands.add_parser(
        "report",
        help="turn a saved fusion trace into a self-contained HTML page",
        description="Read a fusion trace (the proxy response's `fusion` field or the whole response, or `ask/demo --json` output) "
        "and write one HTML file: question, answer, the panel side by side, the analysis and a timeline of every nested call.",
    )
    parser.add_argument("trace", metavar="TRACE.json", help="the saved JSON (- reads stdin)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")
    parser.add_argument("--question", help="the question, when the file does not have it (a bare trace)")
    return parser


def _write(path: str, text: str) -> Path:
    out = Path(path)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def write_trace_report(path: str, trace: dict[str, Any], *, question: str | None, answer: str | None, error: str | None = None) -> Path:
    """Write the report page of one run (``error``: why it failed, when it did) to ``path`` and say so on stderr."""
    out = _write(path, trace_page(trace, question=question, answer=answer, error=error))
    print(f"wrote the HTML report to {out}", file=sys.stderr)
    return out


def write_eval_report(path: str, data: dict[str, Any], *, plot: Path | None, plot_note: str | None) -> Path:
    """Write the eval page (``data`` is ``EvalReport.to_dict()``; ``plot`` the PNG written beside it, inlined) to ``path``."""
    png = Path(plot).read_bytes() if plot else None
    out = _write(path, eval_page(data, plot_png=png, plot_note=plot_note))
    print(f"wrote the HTML page to {out}", file=sys.stderr)
    return out


def report_command(args: argparse.Namespace) -> int:
    """``litellm-fusion report``: exit 0 when written, 2 when the input is not a trace (the message says why)."""
    try:
        found = read_report_input(args.trace, question=args.question)
    except TraceFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        write_trace_report(args.output, found.trace, question=found.question, answer=found.answer)
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
