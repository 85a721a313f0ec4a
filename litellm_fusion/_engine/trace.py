"""The trace builder: the one place that turns a :class:`~litellm_fusion._engine.run.FusionRun` into the
caller-visible trace dict (shape documented in the README, section "The trace"), with every token and cost
sum taken from :class:`~litellm_fusion._core.usage.Usage`.
"""

from __future__ import annotations

import time
from typing import Any

from litellm_fusion._core.usage import CallRecord, Usage, call_trace
from litellm_fusion._engine.run import FusionRun
from litellm_fusion._engine.vote import count_vote
from litellm_fusion._spec.config import MemberSpec

__all__ = ["build_trace", "writer_trace"]


def writer_trace(writer: MemberSpec, record: CallRecord | None, status: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``synthesizer`` entry: the writer that answered (or the first, when all failed) and the failures before."""
    return {
        "model": writer.model,
        "status": status,
        "latency_ms": round(record.latency_ms, 1) if record else None,
        "usage": record.usage.tokens_dict() if record else None,
        "cost": record.cost if record else None,
        "errors": errors,
        "start_ms": record.start_ms if record else None,
    }


def _judge_trace(run: FusionRun) -> dict[str, Any] | None:
    if run.judge is None:
        return None
    records = run.judge.records
    usage = Usage.total(r.usage for r in records)
    return {
        "model": run.spec.judge.model,
        "status": "ok" if run.judge.failed_reason is None else "failed",
        "failed_reason": run.judge.failed_reason,
        "structured_output": run.judge.structured_output,
        "calls": len(records),
        "latency_ms": round(sum(r.latency_ms for r in records), 1),
        "usage": usage.tokens_dict(),
        # A judge that made calls has a cost (0.0 when unpriced); one that made none has no entry to price.
        "cost": (usage.cost or 0.0) if records else None,
        "error": run.judge.error.as_dict() if run.judge.error else None,
        "start_ms": run.judge_started_ms,
        "nested_calls": [call_trace(r) for r in records],
    }


def _aggregation_trace(run: FusionRun) -> dict[str, Any] | None:
    if run.judge is not None:
        return run.judge.vote_trace(run.names())
    # A unanimous vote short-circuited the judge: the trace still shows the vote that decided.
    return count_vote(run.answers()).as_dict(run.names()) if run.short_circuit == "vote" else None


def build_trace(run: FusionRun) -> dict[str, Any]:
    """The caller-visible record of the run so far (shape documented in the README)."""
    panel = [
        {"letter": run.letters.get(o.index), **o.trace(), "start_ms": None if o.started is None else run.ledger.offset_ms(o.started)}
        for o in run.panel
    ]
    judge_failed = run.judge.failed_reason if run.judge else None
    fell_back = bool(run.synthesizer and run.synthesizer["errors"])
    return {
        "preset": run.request.name,
        "panel": panel,
        "letters": run.names(),
        "analysis": run.judge.analysis if run.judge else None,
        "aggregation": _aggregation_trace(run),
        "judge": _judge_trace(run),
        "judge_failed": judge_failed,
        "synthesizer": run.synthesizer,
        "usage": run.ledger.usage_dict(),
        # Every nested call in order (judge repairs and writer fallbacks included), for audits and the eval.
        "calls": [call_trace(r) for r in run.ledger.records],
        "cost": run.ledger.cost,
        "unpriced_models": run.ledger.unpriced_models,
        "latency_ms": round((time.perf_counter() - run.started) * 1000, 1),
        "failed_models": [o.model for o in run.panel if not o.ok],
        "degraded": any(not o.ok for o in run.panel) or judge_failed is not None or fell_back,
        "quorum": run.spec.quorum,
        "short_circuit": run.short_circuit,
        "cost_estimate": run.request.cost_estimate,
        "invocation": run.invocation,
    }
