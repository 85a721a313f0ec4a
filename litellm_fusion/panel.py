"""The panel: every member asked concurrently, each failure captured, never lost.

A member's fate is one of ``ok``, ``error`` or ``timeout``. Each member has a wall-clock deadline of its
own (LiteLLM's ``timeout`` bounds single reads only, so a slow-dripping server could outlive it).
Cancelling the caller cancels every member's task, which closes its connection.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import litellm

from .config import FusionSpec, MemberSpec
from .nested import CallError, CompleteFn, member_kwargs, timed_call
from .usage import CallRecord, UsageLedger

__all__ = ["MemberOutcome", "run_panel"]


@dataclass(frozen=True, kw_only=True)
class MemberOutcome:
    """What one panel member did."""

    index: int
    """Position in the spec's panel."""
    model: str
    status: str
    """``ok``, ``error`` or ``timeout``."""
    content: str | None
    finish_reason: str | None
    latency_ms: float
    record: CallRecord | None
    """Tokens and cost, when the call returned."""
    error: CallError | None

    @property
    def ok(self) -> bool:
        """True when the member gave a usable answer."""
        return self.status == "ok"

    def trace(self) -> dict[str, Any]:
        """The trace entry for this member (without its letter, which the pipeline adds)."""
        return {
            "model": self.model,
            "status": self.status,
            "content": self.content,
            "finish_reason": self.finish_reason,
            "latency_ms": round(self.latency_ms, 1),
            "usage": self.record.usage_dict() if self.record else None,
            "cost": self.record.cost if self.record else None,
            "error": self.error.as_dict() if self.error else None,
            "sources": [],
        }


class _EmptyAnswer(Exception):
    """The member returned no text."""


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.TimeoutError, litellm.Timeout))


async def _ask(
    index: int,
    member: MemberSpec,
    *,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    complete: CompleteFn,
    ledger: UsageLedger,
    timeout: float,
    secrets: tuple[str, ...],
) -> MemberOutcome:
    limit = min(member.timeout, timeout) if member.timeout else timeout
    kwargs = member_kwargs(member, spec, messages, timeout=limit, default_temperature=spec.temperature)
    started = time.perf_counter()
    record: CallRecord | None = None
    try:
        async with asyncio.timeout(limit):
            response, record = await timed_call(complete, kwargs, role="panel", member=member, ledger=ledger)
        choice = response.choices[0]
        content = choice.message.content
        if not (content or "").strip():
            # An empty answer is a failure, never a blank passed to the judge as if it were an answer.
            raise _EmptyAnswer(f"empty answer (finish_reason={choice.finish_reason!r})")
        status, error, finish_reason = "ok", None, choice.finish_reason
    except Exception as exc:  # a member's failure is data for the trace; CancelledError still propagates
        status = "timeout" if _is_timeout(exc) else "error"
        content, finish_reason = None, None
        error = CallError.from_exception(exc, secrets=secrets)
        if isinstance(exc, _EmptyAnswer):
            error = CallError(type="EmptyAnswer", status_code=None, message=str(exc))
        elif status == "timeout" and not isinstance(exc, litellm.Timeout):
            error = CallError(type="Timeout", status_code=408, message=f"no answer within {limit:.1f}s")
    return MemberOutcome(
        index=index,
        model=member.model,
        status=status,
        content=content,
        finish_reason=finish_reason,
        latency_ms=(time.perf_counter() - started) * 1000,
        record=record,
        error=error,
    )


async def run_panel(
    *,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    complete: CompleteFn,
    ledger: UsageLedger,
    timeout: float,
    secrets: tuple[str, ...] = (),
) -> list[MemberOutcome]:
    """Ask every member at once and return one outcome per member, in panel order.

    This waits for every member (each bounded by its own deadline); the quorum decision is the
    caller's, made on the returned outcomes.
    """
    tasks = [
        asyncio.create_task(
            _ask(i, member, spec=spec, messages=messages, complete=complete, ledger=ledger, timeout=timeout, secrets=secrets),
            name=f"fusion-panel-{i}-{member.model}",
        )
        for i, member in enumerate(spec.panel)
    ]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
