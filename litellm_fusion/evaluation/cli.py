"""``litellm-fusion eval QUESTIONS.jsonl --config configs.yaml``: the command behind the measured table.

Also runnable on its own: ``python -m litellm_fusion.evaluation QUESTIONS.jsonl --config configs.yaml``.
The tables go to stdout; progress and notes go to stderr. Each result is appended to ``OUT/results.jsonl``
as it finishes, and the same command run again resumes from there (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litellm_fusion.evaluation.results import QuestionResult

# .configs and .runner import LiteLLM: they load when the command runs, not when `litellm-fusion --help` builds its parser.

__all__ = ["add_arguments", "eval_command", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``eval`` arguments to ``parser`` and return it: ``litellm-fusion eval`` and ``python -m litellm_fusion.evaluation`` share them."""
    parser.add_argument("questions", help="JSONL question file, or the name of a shipped one (arithmetic)")
    parser.add_argument("--config", required=True, help="YAML file of named configurations, or a shipped one (local_eval)")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument(
        "--out",
        default="eval-results",
        help="directory for results.jsonl (appended as results finish; a rerun resumes from it), table.md, results.json "
        "and plot.png (default: eval-results)",
    )
    parser.add_argument("--fresh", action="store_true", help="start over: remove OUT/results.jsonl instead of resuming from it")
    parser.add_argument(
        "--retry-errors",
        action="store_true",
        help="when resuming, ask again the questions whose call failed (a connection error or a timeout; no answer was graded)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="ask nothing: write the tables from OUT/results.jsonl, over the questions every configuration has answered",
    )
    parser.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="a note kept in results.json, e.g. server=llama-server"
    )
    parser.add_argument("--concurrency", type=int, help="calls in flight, questions taken in order (default: the file's, else 2)")
    parser.add_argument("--only", help="comma-separated configuration names to run (default: all)")
    parser.add_argument("--timeout", type=float, help="seconds per call (default: the file's, else 300)")
    parser.add_argument("--html", metavar="FILE", help="also write the table, the plot and every question as one self-contained HTML page")
    return parser


def _progress(total: int):
    done = 0
    started = time.monotonic()

    def report(result: QuestionResult) -> None:
        nonlocal done
        done += 1
        if result.error:
            outcome = f"error ({result.error['stage']}: {result.error['type']})"
        else:
            outcome = "right" if result.correct else f"wrong (read {result.extracted!r}, expected {result.expected!r})"
        latency = "" if result.latency_ms is None else f" {result.latency_ms / 1000:.1f} s"
        left = (time.monotonic() - started) / done * (total - done)
        eta = "" if done == total else f", about {left:.0f} s left" if left < 90 else f", about {left / 60:.0f} min left"
        print(f"[{done}/{total}{eta}] {result.config} {result.id}: {outcome}{latency}", file=sys.stderr, flush=True)

    return report


def _source_commit() -> dict[str, Any]:
    """The git commit of the code that ran (and whether its checkout had changes), when it is a checkout."""
    root = Path(__file__).resolve().parent.parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def eval_command(args: argparse.Namespace) -> int:
    """Run the eval the arguments describe; print the table and write the outputs. Returns the exit code."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from litellm_fusion.evaluation.configs import ConfigError, load_configs, resolve_data_path
    from litellm_fusion.evaluation.decisions import decision_table
    from litellm_fusion.evaluation.report import markdown_report, write_outputs
    from litellm_fusion.evaluation.results import load_questions
    from litellm_fusion.evaluation.results_log import load_results_log
    from litellm_fusion.evaluation.runner import run_eval

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
        meta = dict(item.split("=", 1) for item in args.meta if "=" in item)
        if len(meta) != len(args.meta):
            raise ConfigError("--meta takes KEY=VALUE, e.g. --meta server=llama-server")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    concurrency = args.concurrency or settings.concurrency or 2
    timeout = args.timeout or settings.timeout
    log = Path(args.out) / "results.jsonl"
    if args.fresh and log.exists():
        log.unlink()
    log.parent.mkdir(parents=True, exist_ok=True)
    done = load_results_log(log, configs, questions, retry_errors=args.retry_errors)
    if args.report_only:
        # Only questions every configuration answered, so the comparisons stay paired.
        questions = [q for q in questions if all((c.name, q.id) in done for c in configs)]
        if not questions:
            print(f"error: --report-only: no question has results from every configuration in {log}", file=sys.stderr)
            return 2
    resumed = sum(1 for q in questions for c in configs if (c.name, q.id) in done)
    total = len(questions) * len(configs)
    print(
        f"eval: {len(questions)} questions from {questions_file} x {len(configs)} configurations "
        f"(concurrency {concurrency}, timeout {timeout or 300:g} s per call); "
        + (f"resuming: {resumed} of {total} results already in {log}" if resumed else f"results appended to {log}"),
        file=sys.stderr,
    )
    try:
        report = run_eval(
            questions,
            configs,
            concurrency=concurrency,
            timeout=timeout,
            grader=settings.grader,
            on_result=_progress(total - resumed),
            results_log=log,
            retry_errors=args.retry_errors,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report.questions_path = str(questions_file)
    source = _source_commit()
    if "commit" in meta:  # the results came from other code (a snapshot, an earlier run): this checkout only reported them
        source = {f"report_{key}": value for key, value in source.items()}
    report.meta.update({**source, "command": sys.argv, **meta})
    print(markdown_report(report), end="")
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
        from litellm_fusion.report.cli import write_eval_report

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
