"""The panel: every member asked concurrently, each failure captured, never lost.

A member's fate is one of ``ok``, ``error`` or ``timeout``. Each member has a wall-clock deadline of its
own (LiteLLM's ``timeout`` bounds single reads only, so a slow-dripping server could outlive it).
Cancelling the caller cancels every member's task, which closes its connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import litellm

from litellm_fusion._core.nested import CallError, CompleteFn, timed_call
from litellm_fusion._core.usage import CallRecord, Usage, UsageLedger, call_trace
from litellm_fusion._engine.progress import MemberAnswered, MemberDropped, MemberFailed, MemberStarted, Progress
from litellm_fusion._spec.call_kwargs import member_kwargs
from litellm_fusion._spec.config import FusionSpec, MemberSpec
from litellm_fusion._web.member import WebAnswer

if TYPE_CHECKING:
    from litellm_fusion._web.citations import Source
    from litellm_fusion._web.tools import ToolCallRecord

__all__ = ["MemberOutcome", "AnswerFn", "plain_answer", "run_panel"]


@dataclass(frozen=True, kw_only=True)
class MemberOutcome:
    """What one panel member did."""

    index: int
    """Position in the spec's panel."""
    model: str
    status: str
    """``ok``, ``error``, ``timeout`` or ``dropped`` (cancelled after the quorum's grace)."""
    content: str | None
    finish_reason: str | None
    latency_ms: float
    record: CallRecord | None
    """Tokens and cost summed over the member's calls (several with web tools), when any call returned."""
    error: CallError | None
    web: str | None = None
    """The web path taken: ``off``, ``native``, ``client``, ``presearch``, ``native→client``."""
    sources: tuple[Source, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    notes: tuple[str, ...] = ()
    nested_calls: tuple[CallRecord, ...] = ()
    """Each model call the member made (one, or several in a web tool loop), for the trace's timeline."""
    started: float | None = None
    """``time.perf_counter()`` when ``latency_ms`` started counting (the pipeline turns it into ``start_ms``)."""

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
            "usage": self.record.usage.tokens_dict() if self.record else None,
            "cost": self.record.cost if self.record else None,
            "error": self.error.as_dict() if self.error else None,
            "web": self.web,
            "sources": [{"url": s.url, "title": s.title} for s in self.sources],
            "tool_calls": [c.as_dict() for c in self.tool_calls],
            "notes": list(self.notes),
            "nested_calls": [call_trace(c) for c in self.nested_calls],
        }


class _EmptyAnswer(Exception):
    """The member returned no text."""


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.TimeoutError, litellm.Timeout))


AnswerFn = Callable[[int, MemberSpec, dict[str, Any], UsageLedger], Awaitable[WebAnswer]]
"""How one member answers: ``(position in the panel, member, call kwargs, the member's own ledger)``; a plain
call, or with web tools (``_web.member``). Every call goes into that ledger, which also counts it for the request."""


def plain_answer(complete: CompleteFn) -> AnswerFn:
    """One nested call, no web."""

    async def answer(index: int, member: MemberSpec, kwargs: dict[str, Any], ledger: UsageLedger) -> WebAnswer:
        response, record = await timed_call(complete, kwargs, role="panel", member=member, ledger=ledger)
        return WebAnswer(response=response, records=(record,), mode="off")

    return answer


def _summed(member: MemberSpec, records: tuple[CallRecord, ...]) -> CallRecord | None:
    if not records:
        return None
    usage = Usage.total(r.usage for r in records)
    return CallRecord(
        role="panel",
        model=member.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost=usage.cost,
        latency_ms=sum(r.latency_ms for r in records),
        start_ms=min((r.start_ms for r in records if r.start_ms is not None), default=None),
    )


async def _call_member(
    index: int,
    member: MemberSpec,
    *,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    answer: AnswerFn,
    ledger: UsageLedger,
    timeout: float,
    secrets: tuple[str, ...],
    progress: Progress,
) -> MemberOutcome:
    """One member's call under its own deadline; a failure comes back as the outcome's status, not raised."""
    limit = min(member.timeout, timeout) if member.timeout else timeout
    kwargs = member_kwargs(member, spec, messages, default_temperature=spec.temperature)
    started = time.perf_counter()
    started_ms = round((started - progress.started) * 1000, 1)  # the same zero as the trace's start_ms
    progress.emit(MemberStarted, index=index, model=member.model)
    result: WebAnswer | None = None
    own = ledger.scoped()
    try:
        async with asyncio.timeout(limit):
            result = await answer(index, member, kwargs, own)
        if not result.response.choices:
            raise _EmptyAnswer("no choices in the response")
        choice = result.response.choices[0]
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
    # A member that failed mid-way (a web loop's third call, say) still lists what it spent.
    calls = result.records if result else tuple(r for r in own.records if r.role == "panel")
    outcome = MemberOutcome(
        index=index,
        model=member.model,
        status=status,
        content=content,
        finish_reason=finish_reason,
        latency_ms=(time.perf_counter() - started) * 1000,
        record=_summed(member, calls),
        error=error,
        web=result.mode if result else None,
        sources=result.sources if result else (),
        tool_calls=result.tool_calls if result else (),
        notes=result.notes if result else (),
        nested_calls=calls,
        started=started,
    )
    _report(outcome, started_ms, progress)
    return outcome


def _report(outcome: MemberOutcome, started_ms: float, progress: Progress) -> None:
    common = {"index": outcome.index, "model": outcome.model, "started_ms": started_ms, "latency_ms": round(outcome.latency_ms, 1)}
    if outcome.ok:
        tokens = outcome.record.total_tokens if outcome.record else 0
        progress.emit(MemberAnswered, **common, tokens=tokens, web_calls=len(outcome.tool_calls), sources=len(outcome.sources))
    else:
        error = outcome.error or CallError(type=outcome.status, status_code=None, message=outcome.status)
        progress.emit(MemberFailed, **common, status=outcome.status, error_type=error.type, error=error.message)


def _dropped(index: int, member: MemberSpec, started: float, why: str) -> MemberOutcome:
    return MemberOutcome(
        index=index,
        model=member.model,
        status="dropped",
        content=None,
        finish_reason=None,
        latency_ms=(time.perf_counter() - started) * 1000,
        record=None,
        error=CallError(type="Dropped", status_code=None, message=why),
        started=started,
    )


async def run_panel(
    *,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    answer: AnswerFn,
    ledger: UsageLedger,
    timeout: float,
    secrets: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> list[MemberOutcome]:
    """Ask every member at once and return one outcome per member, in panel order.

    Stops waiting when every member is done, or ``spec.straggler_grace`` seconds after ``spec.quorum``
    members answered (the rest are cancelled and marked ``dropped``), or as soon as the quorum can no
    longer be reached. Each member is also bounded by its own deadline (``timeout``). Each member's
    start and end (answered, failed, dropped) is reported to ``progress``; its calls go into ``ledger``.
    """
    progress = progress or Progress()
    started = time.perf_counter()
    started_ms = round((started - progress.started) * 1000, 1)
    tasks = {
        asyncio.create_task(
            _call_member(i, member, spec=spec, messages=messages, answer=answer, ledger=ledger, timeout=timeout,
                         secrets=secrets, progress=progress),  # fmt: skip
            name=f"fusion-panel-{i}-{member.model}",
        ): i
        for i, member in enumerate(spec.panel)
    }
    outcomes: dict[int, MemberOutcome] = {}
    pending = set(tasks)
    grace_ends: float | None = None
    try:
        while pending:
            wait = None if grace_ends is None else max(0.0, grace_ends - time.perf_counter())
            done, pending = await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                outcomes[tasks[task]] = task.result()
            answered = sum(o.ok for o in outcomes.values())
            if answered + len(pending) < spec.quorum:
                break  # the quorum is out of reach: fail now instead of waiting for stragglers
            if grace_ends is None and answered >= spec.quorum and spec.straggler_grace is not None:
                grace_ends = time.perf_counter() + spec.straggler_grace
            if grace_ends is not None and time.perf_counter() >= grace_ends:
                break
    finally:
        for task in pending:
            task.cancel()
        # Wait for the cancellations to land, so the stragglers' connections are closed on return.
        await asyncio.gather(*pending, return_exceptions=True)
    if not pending:
        return [outcomes[i] for i in range(len(spec.panel))]
    answered = sum(o.ok for o in outcomes.values())
    why = (
        f"cancelled {spec.straggler_grace or 0:g}s after the quorum ({spec.quorum}) answered"
        if answered >= spec.quorum
        else f"cancelled: the quorum ({spec.quorum}) could no longer be reached"
    )
    for task in pending:
        index = tasks[task]
        outcomes[index] = _dropped(index, spec.panel[index], started, why)
        progress.emit(MemberDropped, index=index, model=spec.panel[index].model, started_ms=started_ms, reason=why)
    return [outcomes[i] for i in range(len(spec.panel))]
