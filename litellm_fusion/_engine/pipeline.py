"""panel → judge → synthesizer, under one deadline, with one usage ledger and one trace: both call shapes.

``run_fusion`` returns the synthesizer's response plus the trace; ``stream_fusion`` yields progress events
while the panel and the judge run, the synthesizer's chunks as they arrive, and then a :class:`FusionDone`.
Both are the same run (:func:`_fused`): the setup, the outer decision, the short-circuit, the writer fallback
(the synthesizer fails before its first output → the judge's model writes), the deadline mapped to
:class:`~litellm_fusion._core.errors.FusionTimeoutError` and the failure error are written once. A
:class:`_Shape` says only how the outer call and a writer deliver their output: chunks, or one response.

The panel and the judge finish before any answer text, so a failure there is an error, never half an answer
(an HTTP status, or with progress lines already streamed, the stream's error event). Every stream this module
opens is closed explicitly when its reader stops, is cancelled or fails (never left to the garbage collector:
that would hold the synthesizer's connection open). Progress (:mod:`litellm_fusion._engine.progress`) goes to
an optional listener in both shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import litellm
from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

from litellm_fusion._core.errors import FusionTimeoutError, SynthesisFailedError
from litellm_fusion._core.nested import CallError, CompleteFn
from litellm_fusion._core.usage import UsageLedger
from litellm_fusion._engine.invocation import Decision, always_trace, decide, effective_mode, stream_decision
from litellm_fusion._engine.progress import Progress, ProgressEvent, ProgressFn, SynthesizerStarted, drained, interleaved
from litellm_fusion._engine.run import FusionRequest, FusionRun
from litellm_fusion._engine.stages import decided, decision_args, panel_and_judge, report_start, report_writer, writer_messages, writers
from litellm_fusion._engine.synthesis import stream_synthesis, synthesize
from litellm_fusion._engine.trace import build_trace, writer_trace
from litellm_fusion._spec.config import MemberSpec
from litellm_fusion._web.tools import FetcherFactory, default_fetcher

__all__ = ["FusionRequest", "FusionResult", "FusionDone", "run_fusion", "stream_fusion"]


@dataclass(frozen=True, kw_only=True)
class FusionResult:
    """A finished non-streaming fusion: the synthesizer's response to copy from, the sums, the trace."""

    response: Any
    ledger: UsageLedger
    trace: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class FusionDone:
    """The last item of :func:`stream_fusion`: the sums and the trace, after the last chunk."""

    ledger: UsageLedger
    trace: dict[str, Any]


# ----- what differs between the two shapes ----------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """How the outer call and a writer deliver their output: the only difference between the two shapes."""

    decide: Callable[[FusionRun], AsyncIterator[Any]]
    """The outer call: its answer items (chunks; or its response, when that is the answer), then the Decision."""
    write: Callable[[FusionRun, MemberSpec], AsyncIterator[Any]]
    """One writer's answer items: its chunks, or its one response."""
    agreed: Callable[[str], Any]
    """The panel's agreed answer as an answer item."""


async def _decide_once(run: FusionRun) -> AsyncIterator[Any]:
    decision = await decide(**decision_args(run))
    if decision.response is not None:
        yield decision.response
    yield decision


def _decide_streamed(run: FusionRun) -> AsyncIterator[Any]:
    # The direct answer streams as it arrives; a call of the panel tool is never forwarded.
    return stream_decision(**decision_args(run), price_model=run.request.aliases.get(run.spec.synthesizer_or_judge.model))


async def _write_once(run: FusionRun, writer: MemberSpec) -> AsyncIterator[Any]:
    response, _ = await synthesize(
        writer=writer, spec=run.spec, messages=writer_messages(run), final_params=run.request.final_params,
        complete=run.complete, ledger=run.ledger,
    )  # fmt: skip
    yield response


def _write_streamed(run: FusionRun, writer: MemberSpec) -> AsyncIterator[Any]:
    return stream_synthesis(
        writer=writer, spec=run.spec, messages=writer_messages(run), final_params=run.request.final_params,
        complete=run.complete, ledger=run.ledger, price_model=run.request.aliases.get(writer.model, writer.model),
    )  # fmt: skip


def _agreed_response(text: str) -> Any:
    return litellm.ModelResponse(choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}])


def _agreed_chunk(text: str) -> Any:
    return ModelResponseStream(choices=[StreamingChoices(index=0, delta=Delta(content=text), finish_reason="stop")])


_ONE_RESPONSE = _Shape(decide=_decide_once, write=_write_once, agreed=_agreed_response)
_STREAMED = _Shape(decide=_decide_streamed, write=_write_streamed, agreed=_agreed_chunk)


# ----- the one run ------------------------------------------------------------------------------------------

_END = object()


class _DeadlinePassed(Exception):
    """The request's deadline expired while waiting for an item (a ``TimeoutError`` a writer raises itself is
    an error of that writer, which the fallback writer may recover from)."""


async def _next_by(deadline: float, items: AsyncIterator[Any]) -> Any:
    """The next item of ``items`` (``_END`` after the last): the deadline bounds each wait for an item, not
    the time the consumer holds it."""
    timeout = asyncio.timeout_at(deadline)
    try:
        async with timeout:
            return await anext(items, _END)
    except TimeoutError:
        if timeout.expired():
            raise _DeadlinePassed from None
        raise


@contextlib.contextmanager
def _deadline_mapped(run: FusionRun) -> Iterator[None]:
    try:
        yield
    except (TimeoutError, _DeadlinePassed):
        raise FusionTimeoutError(
            f"no answer within {run.request.timeout:.1f}s (stage reached: {run.stage()})",
            model=run.request.model,
            trace=build_trace(run),
        ) from None


def _done(run: FusionRun) -> FusionDone:
    return FusionDone(ledger=run.ledger, trace=build_trace(run))


async def _fused(
    request: FusionRequest,
    shape: _Shape,
    *,
    complete: CompleteFn,
    rng: random.Random | None,
    fetcher_factory: FetcherFactory | None,
    on_progress: ProgressFn | None,
) -> AsyncIterator[Any]:
    """Progress events as they happen, the answer items, then one :class:`FusionDone`."""
    events: asyncio.Queue[ProgressEvent] = asyncio.Queue()
    run = FusionRun(
        request=request, complete=complete, rng=rng or random.Random(), fetcher_factory=fetcher_factory or default_fetcher,
        progress=Progress(events.put_nowait, on_progress),
    )  # fmt: skip
    deadline = asyncio.get_running_loop().time() + request.timeout

    async def panel_and_judge_by_deadline() -> None:
        async with asyncio.timeout_at(deadline):
            await panel_and_judge(run)

    report_start(run)
    with _deadline_mapped(run):
        for event in drained(events):  # the first line goes out before any upstream call
            yield event
        if effective_mode(request.spec, request.depth) == "always":
            run.invocation = always_trace(request.depth)
        else:
            async with contextlib.aclosing(shape.decide(run)) as outer:
                while (item := await _next_by(deadline, outer)) is not _END:
                    if not isinstance(item, Decision):
                        yield item
                    elif not decided(run, item):
                        yield _done(run)
                        return
        # A consumer that stops reading must cancel the panel now, not when the GC finds the iterator.
        async with contextlib.aclosing(interleaved(panel_and_judge_by_deadline(), events)) as progress_events:
            async for event in progress_events:
                yield event
        if run.agreed is not None:
            yield shape.agreed(run.agreed)
            yield _done(run)
            return
        errors: list[dict[str, Any]] = []
        for writer in writers(run.spec):
            writer_started = run.progress.now_ms()
            run.progress.emit(SynthesizerStarted, model=writer.model)
            for event in drained(events):
                yield event
            sent_any = False
            async with contextlib.aclosing(shape.write(run, writer)) as items:
                try:
                    while (item := await _next_by(deadline, items)) is not _END:
                        sent_any = True
                        yield item
                except _DeadlinePassed:
                    raise
                except Exception as exc:  # before the first item: the one fallback writer, then a 503
                    if sent_any:
                        raise
                    errors.append({"model": writer.model, **CallError.from_exception(exc, secrets=run.secrets).as_dict()})
                    report_writer(run, writer, writer_started, None, errors[-1])
                    for event in drained(events):
                        yield event
                    continue
            record = next((r for r in reversed(run.ledger.records) if r.role == "synthesizer"), None)
            report_writer(run, writer, writer_started, record, None)
            for event in drained(events):
                yield event
            run.synthesizer = writer_trace(writer, record, "ok", errors)
            yield _done(run)
            return
    run.synthesizer = writer_trace(writers(run.spec)[0], None, "error", errors)
    raise SynthesisFailedError(
        "the synthesizer failed: " + "; ".join(f"{e['model']}: {e['type']}: {e['message']}" for e in errors),
        model=request.model,
        trace=build_trace(run),
    )


async def run_fusion(
    request: FusionRequest,
    *,
    complete: CompleteFn = litellm.acompletion,
    rng: random.Random | None = None,
    fetcher_factory: FetcherFactory | None = None,
    on_progress: ProgressFn | None = None,
) -> FusionResult:
    """Run one fusion call to the end and return the synthesizer's response with the summed usage and trace.

    ``complete`` is the nested-call seam; ``fetcher_factory`` builds the web fetcher from the fetch limits
    (the seam tests use to admit their local fixture server; the default admits public addresses only);
    ``on_progress`` receives each progress event as it happens.
    """
    response: Any = None
    run = _fused(request, _ONE_RESPONSE, complete=complete, rng=rng, fetcher_factory=fetcher_factory, on_progress=on_progress)
    async with contextlib.aclosing(run) as items:
        async for item in items:
            if isinstance(item, FusionDone):
                return FusionResult(response=response, ledger=item.ledger, trace=item.trace)
            if not isinstance(item, ProgressEvent):
                response = item  # the one answer: the direct one, the agreed one or the writer's
    raise AssertionError("unreachable: a fusion run ends with a FusionDone or raises")


async def stream_fusion(
    request: FusionRequest,
    *,
    complete: CompleteFn = litellm.acompletion,
    rng: random.Random | None = None,
    fetcher_factory: FetcherFactory | None = None,
    on_progress: ProgressFn | None = None,
) -> AsyncIterator[Any]:
    """Yield :class:`~litellm_fusion._engine.progress.ProgressEvent` items while the panel and the judge run (the
    first at once), then the synthesizer's chunks as they arrive, then one :class:`FusionDone`.

    Every event is also given to ``on_progress``. The panel and the judge finish before the first chunk.
    If the synthesizer fails before its first chunk, the judge's model writes instead; after the first
    chunk a failure ends the stream with an error. Closing this iterator (or cancelling its reader) closes
    the synthesizer's upstream stream before it returns.
    """
    run = _fused(request, _STREAMED, complete=complete, rng=rng, fetcher_factory=fetcher_factory, on_progress=on_progress)
    async with contextlib.aclosing(run) as items:
        async for item in items:
            yield item
