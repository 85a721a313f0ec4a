"""The decision columns of ``litellm-fusion eval``: how often the panel ran, and what ``auto`` bought.

For each configuration: its ``invocation`` (``-`` for a solo model), how many calls ran the panel, accuracy
overall and per question ``kind`` (``easy`` / ``hard``, when the question file says), mean tokens, total cost
and p50 latency. Built from the JSON the eval writes, so the table can also be assembled from several runs
(``--only`` one configuration per run, in separate ``--out`` directories; a long run resumes by skipping the
directories already written)::

    python -m litellm_fusion.evaluation.decisions eval-results/decision-*/
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["decision_table", "merge_results", "main"]


def _kinds(questions_path: str | None) -> dict[str, str]:
    """Question id -> ``kind`` from the question file (empty when it is gone or has no kinds)."""
    if not questions_path or not Path(questions_path).is_file():
        return {}
    kinds = {}
    for line in Path(questions_path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("kind"), str):
                kinds[str(record["id"])] = record["kind"]
    return kinds


def _mode(config: dict[str, Any]) -> str:
    if config.get("kind") != "fusion":
        return "-"
    return str((config.get("fusion") or {}).get("invocation") or "always")


def _accuracy(results: list[dict[str, Any]]) -> str:
    if not results:
        return "-"
    right = sum(1 for r in results if r.get("correct"))
    return f"{right / len(results):.1%} ({right}/{len(results)})"


def decision_table(data: dict[str, Any]) -> str | None:
    """The markdown decision table of an eval's JSON (``EvalReport.to_dict()`` or ``merge_results``), or None
    when no configuration used ``invocation: auto`` or ``required``."""
    configs = data.get("configs") or []
    if not any(_mode(c) in ("auto", "required") for c in configs):
        return None
    kinds = _kinds(data.get("questions_path"))
    kind_names = sorted(set(kinds.values()))
    head = ["configuration", "invocation", "panel called", "accuracy", *(f"accuracy {k}" for k in kind_names)]
    head += ["mean tokens", "total cost", "p50 latency"]
    rows = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for config in configs:
        results = [r for r in data.get("results") or [] if r.get("config") == config["name"]]
        mode = _mode(config)
        called = sum(1 for r in results if ((r.get("fusion") or {}).get("invocation") or {}).get("invoked"))
        answered = [r for r in results if r.get("latency_ms") is not None]
        tokens = f"{statistics.fmean(r.get('total_tokens') or 0 for r in answered):,.0f}" if answered else "-"
        latency = f"{statistics.median(r['latency_ms'] for r in answered) / 1000:.2f} s" if answered else "-"
        cost = sum(r.get("cost") or 0.0 for r in results)
        cells = [config["name"].replace("|", "\\|"), mode, "-" if mode == "-" else f"{called}/{len(results)}", _accuracy(results)]
        cells += [_accuracy([r for r in results if kinds.get(r.get("id")) == k]) for k in kind_names]
        cells += [tokens, f"${cost:.4f}", latency]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def merge_results(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Several eval outputs (``results.json`` files or the directories holding them) as one."""
    merged: dict[str, Any] = {"configs": [], "results": [], "questions_path": None}
    for path in paths:
        file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
        data = json.loads(file.read_text(encoding="utf-8"))
        merged["configs"] += data.get("configs") or []
        merged["results"] += data.get("results") or []
        merged["questions_path"] = merged["questions_path"] or data.get("questions_path")
    return merged


def main(argv: list[str] | None = None) -> int:
    """Print the decision table of one or more eval output directories."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m litellm_fusion.evaluation.decisions RESULTS_DIR_OR_JSON...", file=sys.stderr)
        return 2
    table = decision_table(merge_results(paths))
    if table is None:
        print("no configuration used invocation: auto or required", file=sys.stderr)
        return 1
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
