"""``litellm-fusion eval QUESTIONS.jsonl --config configs.yaml``: the command behind the measured table.

Also runnable on its own: ``python -m litellm_fusion.evaluation QUESTIONS.jsonl --config configs.yaml``.
The table goes to stdout; progress and notes go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import QuestionResult

# .configs and .runner import LiteLLM: they load when the command runs, not when `litellm-fusion --help` builds its parser.

__all__ = ["add_arguments", "eval_command", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``eval`` arguments (the same lines ``litellm_fusion.cli`` declares)."""
    parser.add_argument("questions", help="JSONL question file, or the name of a shipped one (arithmetic)")
    parser.add_argument("--config", required=True, help="YAML file of named configurations, or a shipped one (local_eval)")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--out", default="eval-results", help="directory for table.md, results.json and plot.png (default: eval-results)")
    parser.add_argument("--concurrency", type=int, help="questions in flight per configuration (default: the file's, else 2)")
    parser.add_argument("--only", help="comma-separated configuration names to run (default: all)")
    parser.add_argument("--timeout", type=float, help="seconds per call (default: the file's, else 300)")
    parser.add_argument("--html", metavar="FILE", help="also write the table, the plot and every question as one self-contained HTML page")
    return parser


def _progress(total: int):
    done: dict[str, int] = {}

    def report(result: QuestionResult) -> None:
        done[result.config] = done.get(result.config, 0) + 1
        if result.error:
            outcome = f"error ({result.error['stage']}: {result.error['type']})"
        else:
            outcome = "right" if result.correct else f"wrong (read {result.extracted!r}, expected {result.expected!r})"
        latency = "" if result.latency_ms is None else f" {result.latency_ms / 1000:.1f} s"
        print(f"[{result.config}] {done[result.config]}/{total} {result.id}: {outcome}{latency}", file=sys.stderr, flush=True)

    return report


def eval_command(args: argparse.Namespace) -> int:
    """Run the eval the arguments describe; print the table and write the outputs. Returns the exit code."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from .configs import ConfigError, load_configs, resolve_data_path
    from .decisions import decision_table
    from .report import write_outputs
    from .runner import load_questions, run_eval

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)  # e.g. a warning per call about custom pricing
    try:
        if args.limit is not None and args.limit < 1:
            raise ConfigError("--limit must be >= 1")
        if args.concurrency is not None and args.concurrency < 1:
            raise ConfigError("--concurrency must be >= 1")
        settings = load_configs(args.config)
        configs = settings.configs
        if args.only:
            wanted = [name.strip() for name in args.only.split(",") if name.strip()]
            unknown = [name for name in wanted if name not in {c.name for c in configs}]
            if unknown:
                raise ConfigError(f"--only: no configuration named {', '.join(unknown)}; the file has {', '.join(c.name for c in configs)}")
            configs = [c for c in configs if c.name in wanted]
        questions_file = resolve_data_path(args.questions, (".jsonl",))
        questions = load_questions(questions_file, args.limit)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    concurrency = args.concurrency or settings.concurrency or 2
    timeout = args.timeout or settings.timeout
    print(
        f"eval: {len(questions)} questions from {questions_file} x {len(configs)} configurations "
        f"(concurrency {concurrency}, timeout {timeout or 300:g} s per call)",
        file=sys.stderr,
    )
    try:
        report = run_eval(
            questions,
            configs,
            concurrency=concurrency,
            timeout=timeout,
            grader=settings.grader,
            on_result=_progress(len(questions)),
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report.questions_path = str(questions_file)
    print(report.markdown(), end="")
    written = write_outputs(report, args.out)
    decisions = decision_table(report.to_dict())
    if decisions is not None:  # with invocation: auto/required, how often the panel ran and what it bought
        print("\n" + decisions, end="")
        with open(written["table"], "a", encoding="utf-8") as table:
            table.write("\n" + decisions)
    for summary in report.summaries:
        for err in summary.error_list[:5]:
            print(f"  {summary.name} {err['id']}: {err['stage']} {err['type']}: {err['message'][:200]}", file=sys.stderr)
        if summary.errors > 5:
            print(f"  {summary.name}: {summary.errors - 5} more errors in {written['json']}", file=sys.stderr)
    print(f"wrote {written['table']} and {written['json']}" + (f" and {written['plot']}" if written["plot"] else ""), file=sys.stderr)
    if written["plot_note"]:
        print(f"note: {written['plot_note']}", file=sys.stderr)
    if args.html:
        from ..report.cli import write_eval_report

        write_eval_report(args.html, report.to_dict(), plot=written["plot"], plot_note=written["plot_note"])
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m litellm_fusion.evaluation``."""
    parser = add_arguments(argparse.ArgumentParser(prog="litellm-fusion eval", description="Measure configurations on a question set."))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return eval_command(args)
    except KeyboardInterrupt:
        return 130
