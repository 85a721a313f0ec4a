"""panel → judge → synthesizer, under one deadline, with one usage ledger and one trace.

``run_fusion`` returns the synthesizer's response plus the trace; ``stream_fusion`` yields progress events
while the panel and the judge run, the synthesizer's chunks as they arrive, and then a :class:`FusionDone`.
In both, the panel and the judge finish before any answer text, so a failure there is an error, never half
an answer (an HTTP status, or with progress lines already streamed, the stream's error event). Both report
progress (:mod:`litellm_fusion._engine.progress`) to an optional listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import string
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import litellm
from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

from litellm_fusion._core.errors import FusionTimeoutError, PanelFailedError, SynthesisFailedError
from litellm_fusion._core.nested import CallError, CompleteFn
from litellm_fusion._core.usage import CallRecord, UsageLedger, call_trace
from litellm_fusion._engine import prompts
from litellm_fusion._engine.consensus import SHORT_CIRCUIT_BLOCKERS, agreed_answer, agreed_claim, judge_found_full_consensus
from litellm_fusion._engine.invocation import Decision, always_trace, decide, effective_mode, focused_messages, stream_decision
from litellm_fusion._engine.judge import JudgeOutcome, analyse
from litellm_fusion._engine.panel import AnswerFn, MemberOutcome, plain_answer, run_panel
from litellm_fusion._engine.progress import (
    CallFinished,
    FusionStarted,
    JudgeFinished,
    JudgeStarted,
    PanelAgreed,
    Progress,
    ProgressEvent,
    ProgressFn,
    SynthesizerFinished,
    SynthesizerStarted,
    WebToolCalled,
    drained,
    interleaved,
)
from litellm_fusion._engine.synthesis import stream_synthesis, synthesis_messages, synthesize
from litellm_fusion._engine.vote import count_vote
from litellm_fusion._spec.call_kwargs import secrets_of
from litellm_fusion._spec.config import FusionSpec, MemberSpec
from litellm_fusion._web.member import WebAnswer, answer_with_web
from litellm_fusion._web.search import SearchFn
from litellm_fusion._web.tools import FetcherFactory, default_fetcher

__all__ = ["FusionRequest", "FusionResult", "FusionDone", "run_fusion", "stream_fusion"]


@dataclass(frozen=True, kw_only=True)
class FusionRequest:
    """One validated fusion call."""

    name: str
    """The preset (or deployment) name, as in ``fusion/<name>``."""
    spec: FusionSpec
    messages: list[dict[str, Any]]
    final_params: dict[str, Any] = field(default_factory=dict)
    """Client parameters for the synthesizer only (tools, response_format, stop, n, sampling)."""
    timeout: float = 300.0
    """Seconds for the whole request."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Router ``model_name`` → the LiteLLM model behind it, for price and capability look-ups."""
    web_modes: tuple[str, ...] = ()
    """Each panel member's web path (``off`` when empty): see ``web.member.member_web_mode``."""
    web_search: SearchFn | None = None
    """The client loop's search function, when a member may search client-side."""
    cost_estimate: float | None = None
    """The pre-flight worst-case cost, when ``max_cost`` is set."""
    depth: int = 0
    """Fusion fan-outs this request already passed through (``x-litellm-fusion-depth``); >= 1: a single call."""


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


@dataclass
class _Run:
    """Per-request state, shared by the stages and the trace."""

    request: FusionRequest
    complete: CompleteFn
    rng: random.Random
    fetcher_factory: FetcherFactory
    ledger: UsageLedger = field(default_factory=UsageLedger)
    started: float = field(default_factory=time.perf_counter)
    nonce: str = field(default_factory=prompts.new_nonce)
    panel: list[MemberOutcome] = field(default_factory=list)
    letters: dict[int, str] = field(default_factory=dict)
    judge: JudgeOutcome | None = None
    synthesizer: dict[str, Any] | None = None
    short_circuit: str | None = None
    """``exact`` or ``judge`` when the panel's agreement made later stages unnecessary."""
    agreed: str | None = None
    judge_started_ms: float | None = None
    """When the judge stage started (ms since the request started), for the trace's timeline."""
    invocation: dict[str, Any] | None = None
    """The outer decision's trace entry (``invocation.Decision.trace``)."""
    focus: str | None = None
    """The outer model's focused question for the panel."""
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        # One zero for the events and the trace's start_ms; the ledger sees every nested call that returned.
        self.progress.started = self.ledger.origin
        self.ledger.on_record = self._report_call

    def _report_call(self, record: CallRecord) -> None:
        started_ms = record.start_ms if record.start_ms is not None else round(self.progress.now_ms() - record.latency_ms, 1)
        self.progress.emit(
            CallFinished, role=record.role, model=record.model, started_ms=started_ms,
            latency_ms=round(record.latency_ms, 1), tokens=record.total_tokens, cost=record.cost,
        )  # fmt: skip

    @property
    def spec(self) -> FusionSpec:
        return self.request.spec

    @property
    def panel_messages(self) -> list[dict[str, Any]]:
        """What the panel and the judge read: the conversation, plus the focused question when there is one."""
        return focused_messages(self.request.messages, self.focus)

    def remaining(self, stage_limit: float | None = None) -> float:
        left = max(0.001, self.request.timeout - (time.perf_counter() - self.started))
        return min(left, stage_limit) if stage_limit else left

    def answers(self) -> dict[str, str]:
        """Letter → answer text, with the sources that answer used listed under it."""
        return {letter: _with_sources(self.panel[i]) for i, letter in self.letters.items()}

    def names(self) -> dict[str, str]:
        """Letter → member name; a model listed twice in the panel is told apart as ``model#position``."""
        models = [m.model for m in self.spec.panel]
        return {letter: models[i] if models.count(models[i]) == 1 else f"{models[i]}#{i + 1}" for i, letter in self.letters.items()}


def _with_sources(outcome: MemberOutcome) -> str:
    if not outcome.sources:
        return outcome.content or ""
    listed = "\n".join(f"- {s.title or s.url} <{s.url}>" for s in outcome.sources[:20])
    return f"{outcome.content or ''}\n\n[Web sources this answer used]\n{listed}"


def _panel_report(outcomes: list[MemberOutcome]) -> str:
    return "; ".join(f"{o.model}: {o.status}" + (f" ({o.error.type}: {o.error.message})" if o.error else "") for o in outcomes)


async def _panel_and_judge(run: _Run) -> None:
    spec = run.spec
    uses_fetch = spec.web.fetch.enabled and any(mode in ("client", "native") for mode in run.request.web_modes)
    fetcher = run.fetcher_factory(spec.web.fetch) if uses_fetch else None
    try:
        run.panel = await run_panel(
            spec=spec,
            messages=run.panel_messages,
            answer=_answer_fn(run, fetcher),
            timeout=run.remaining(spec.panel_timeout),
            secrets=secrets_of(spec),
            progress=run.progress,
        )
    finally:
        if fetcher is not None:
            await fetcher.aclose()
    answered = [o for o in run.panel if o.ok]
    if len(answered) < spec.quorum:
        raise PanelFailedError(
            f"{len(answered)} of {len(run.panel)} panel members answered, {spec.quorum} needed: {_panel_report(run.panel)}",
            model=f"fusion/{run.request.name}",
            trace=build_trace(run),
        )
    # Shuffle per request so the judge cannot learn a position bias for a given model.
    order = [o.index for o in answered]
    run.rng.shuffle(order)
    run.letters = {index: string.ascii_uppercase[n] for n, index in enumerate(order)}
    may_short_circuit = spec.short_circuit != "off" and not (SHORT_CIRCUIT_BLOCKERS & run.request.final_params.keys())
    if may_short_circuit:
        texts = [o.content or "" for o in answered]
        run.agreed = agreed_claim(texts) if spec.short_circuit == "vote" else agreed_answer(texts)
        if run.agreed is not None:
            run.short_circuit = "vote" if spec.short_circuit == "vote" else "exact"
            run.progress.emit(PanelAgreed, how=run.short_circuit)
            return
    run.judge_started_ms = run.ledger.offset_ms()
    run.progress.emit(JudgeStarted, model=spec.judge.model, answers=len(answered))
    run.judge = await analyse(
        spec=spec,
        messages=run.panel_messages,
        answers=run.answers(),
        names=run.names(),
        nonce=run.nonce,
        complete=run.complete,
        ledger=run.ledger,
        timeout=run.remaining(spec.judge_timeout),
        aliases=run.request.aliases,
    )
    _report_judge(run, run.judge_started_ms)
    if may_short_circuit and spec.short_circuit == "judge" and judge_found_full_consensus(run.judge.analysis):
        run.short_circuit = "judge"
        run.agreed = answered[0].content
        run.progress.emit(PanelAgreed, how="judge")


def _report_judge(run: _Run, started_ms: float) -> None:
    judge = run.judge
    assert judge is not None  # called right after analyse()
    analysis = judge.analysis or {}
    run.progress.emit(
        JudgeFinished,
        model=run.spec.judge.model,
        started_ms=round(started_ms, 1),
        latency_ms=round(run.progress.now_ms() - started_ms, 1),
        tokens=sum(r.total_tokens for r in judge.records),
        calls=len(judge.records),
        failed_reason=judge.failed_reason,
        consensus=tuple(str(p) for p in analysis.get("consensus", [])),
        contradictions=tuple(str(c.get("topic", "")) for c in analysis.get("contradictions", [])),
    )


def _report_start(run: _Run) -> None:
    spec = run.spec
    run.progress.emit(
        FusionStarted,
        name=run.request.name,
        panel=tuple(m.model for m in spec.panel),
        judge=spec.judge.model,
        synthesizer=spec.synthesizer_or_judge.model,
        quorum=spec.quorum,
        invocation=effective_mode(spec, run.request.depth),
    )


def _report_writer(run: _Run, writer: MemberSpec, started_ms: float, record: CallRecord | None, error: dict[str, Any] | None) -> None:
    run.progress.emit(
        SynthesizerFinished,
        model=writer.model,
        started_ms=round(started_ms, 1),
        latency_ms=round(run.progress.now_ms() - started_ms, 1),
        tokens=record.total_tokens if record else 0,
        status="error" if error else "ok",
        error=f"{error['type']}: {error['message']}" if error else None,
    )


def _answer_fn(run: _Run, fetcher: Any) -> AnswerFn:
    """Each member's path: a plain call, or its web mode (decided and validated when the request was built)."""
    plain = plain_answer(run.complete, run.ledger)
    web_modes = run.request.web_modes or ("off",) * len(run.spec.panel)
    modes = dict(zip((id(m) for m in run.spec.panel), web_modes, strict=True))
    positions = {id(m): i for i, m in enumerate(run.spec.panel)}

    async def answer(member: MemberSpec, kwargs: dict[str, Any]) -> WebAnswer:
        mode = modes.get(id(member), "off")
        if mode == "off":
            return await plain(member, kwargs)

        def on_tool_call(call: Any) -> None:
            run.progress.emit(
                WebToolCalled, index=positions[id(member)], model=member.model, tool=call.name, argument=call.argument,
                status=call.status, error=call.error, started_ms=call.start_ms,
                latency_ms=round(call.latency_ms, 1),
            )  # fmt: skip

        return await answer_with_web(
            mode=mode,
            member=member,
            spec=run.spec,
            kwargs=kwargs,
            complete=run.complete,
            ledger=run.ledger,
            search=run.request.web_search,
            fetcher=fetcher,
            aliases=run.request.aliases,
            on_tool_call=on_tool_call,
        )

    return answer


def _decision_args(run: _Run) -> dict[str, Any]:
    request = run.request
    return {
        "mode": effective_mode(run.spec, request.depth),
        "writer": run.spec.synthesizer_or_judge,
        "spec": run.spec,
        "messages": request.messages,
        "final_params": request.final_params,
        "complete": run.complete,
        "ledger": run.ledger,
        "secrets": secrets_of(run.spec),
        "depth": request.depth,
    }


def _decided(run: _Run, decision: Decision) -> bool:
    """Record the outer decision; True when the panel runs. A failed single call (depth >= 1) is a 503."""
    run.invocation, run.focus = decision.trace(), decision.question
    if decision.error is not None and not decision.invoked:
        raise SynthesisFailedError(
            f"the single call failed: {decision.error.type}: {decision.error.message}",
            model=f"fusion/{run.request.name}",
            trace=build_trace(run),
        )
    return decision.invoked


def _writers(spec: FusionSpec) -> list[MemberSpec]:
    """The synthesizer, then the judge's model as the one fallback when it is a different model."""
    writer = spec.synthesizer_or_judge
    return [writer] if writer.model == spec.judge.model else [writer, spec.judge]


def _synth_messages(run: _Run) -> list[dict[str, Any]]:
    lettered = run.judge.lettered if run.judge else None
    vote = run.judge.vote.as_dict() if run.judge and run.judge.vote else None
    return synthesis_messages(run.request.messages, run.answers(), lettered, run.nonce, vote)


def _synth_trace(writer: MemberSpec, record: CallRecord | None, status: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": writer.model,
        "status": status,
        "latency_ms": round(record.latency_ms, 1) if record else None,
        "usage": record.usage_dict() if record else None,
        "cost": record.cost if record else None,
        "errors": errors,
        "start_ms": record.start_ms if record else None,
    }


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
    run = _Run(
        request=request, complete=complete, rng=rng or random.Random(), fetcher_factory=fetcher_factory or default_fetcher,
        progress=Progress(on_progress),
    )  # fmt: skip
    _report_start(run)
    try:
        async with asyncio.timeout(request.timeout):
            if effective_mode(request.spec, request.depth) == "always":
                run.invocation = always_trace(request.depth)
            else:
                decision = await decide(**_decision_args(run))
                if not _decided(run, decision):
                    return FusionResult(response=decision.response, ledger=run.ledger, trace=build_trace(run))
            await _panel_and_judge(run)
            if run.agreed is not None:
                response = litellm.ModelResponse(
                    choices=[{"index": 0, "message": {"role": "assistant", "content": run.agreed}, "finish_reason": "stop"}]
                )
                return FusionResult(response=response, ledger=run.ledger, trace=build_trace(run))
            errors: list[dict[str, Any]] = []
            for writer in _writers(run.spec):
                writer_started = run.progress.now_ms()
                run.progress.emit(SynthesizerStarted, model=writer.model)
                try:
                    response, record = await synthesize(
                        writer=writer,
                        spec=run.spec,
                        messages=_synth_messages(run),
                        final_params=request.final_params,
                        complete=complete,
                        ledger=run.ledger,
                    )
                except Exception as exc:  # one fallback writer, then a mapped error
                    errors.append({"model": writer.model, **CallError.from_exception(exc, secrets=secrets_of(run.spec)).as_dict()})
                    _report_writer(run, writer, writer_started, None, errors[-1])
                    continue
                _report_writer(run, writer, writer_started, record, None)
                run.synthesizer = _synth_trace(writer, record, "ok", errors)
                return FusionResult(response=response, ledger=run.ledger, trace=build_trace(run))
    except TimeoutError:
        raise FusionTimeoutError(
            f"no answer within {request.timeout:.1f}s (stage reached: {_stage(run)})",
            model=f"fusion/{request.name}",
            trace=build_trace(run),
        ) from None
    run.synthesizer = _synth_trace(_writers(run.spec)[0], None, "error", errors)
    raise SynthesisFailedError(
        "the synthesizer failed: " + "; ".join(f"{e['model']}: {e['type']}: {e['message']}" for e in errors),
        model=f"fusion/{request.name}",
        trace=build_trace(run),
    )


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
    chunk a failure ends the stream with an error.
    """
    events: asyncio.Queue[ProgressEvent] = asyncio.Queue()
    run = _Run(
        request=request, complete=complete, rng=rng or random.Random(), fetcher_factory=fetcher_factory or default_fetcher,
        progress=Progress(events.put_nowait, on_progress),
    )  # fmt: skip
    deadline = asyncio.get_running_loop().time() + request.timeout

    async def panel_and_judge() -> None:
        async with asyncio.timeout_at(deadline):
            await _panel_and_judge(run)

    _report_start(run)
    try:
        for event in drained(events):  # the first line goes out before any upstream call
            yield event
        if effective_mode(request.spec, request.depth) == "always":
            run.invocation = always_trace(request.depth)
        else:
            # The direct answer streams as it arrives; a call of the panel tool is never forwarded.
            outer = stream_decision(**_decision_args(run), price_model=request.aliases.get(run.spec.synthesizer_or_judge.model))
            try:
                while True:
                    async with asyncio.timeout_at(deadline):
                        try:
                            item = await anext(outer)
                        except StopAsyncIteration:
                            break
                    if isinstance(item, Decision):
                        if not _decided(run, item):
                            yield FusionDone(ledger=run.ledger, trace=build_trace(run))
                            return
                    else:
                        yield item
            finally:
                await outer.aclose()
        # aclosing: a consumer that stops reading must cancel the panel now, not when the GC finds the iterator.
        async with contextlib.aclosing(interleaved(panel_and_judge(), events)) as progress_events:
            async for event in progress_events:
                yield event
        if run.agreed is not None:
            yield ModelResponseStream(choices=[StreamingChoices(index=0, delta=Delta(content=run.agreed), finish_reason="stop")])
            yield FusionDone(ledger=run.ledger, trace=build_trace(run))
            return
        errors: list[dict[str, Any]] = []
        for writer in _writers(run.spec):
            writer_started = run.progress.now_ms()
            run.progress.emit(SynthesizerStarted, model=writer.model)
            for event in drained(events):
                yield event
            chunks = stream_synthesis(
                writer=writer,
                spec=run.spec,
                messages=_synth_messages(run),
                final_params=request.final_params,
                complete=complete,
                ledger=run.ledger,
                price_model=request.aliases.get(writer.model, writer.model),
            )
            sent_any = False
            try:
                while True:
                    # The deadline covers each wait for the next chunk, not the time the consumer holds it.
                    async with asyncio.timeout_at(deadline):
                        try:
                            chunk = await anext(chunks)
                        except StopAsyncIteration:
                            break
                    sent_any = True
                    yield chunk
            except Exception as exc:
                await chunks.aclose()
                if sent_any or isinstance(exc, TimeoutError):
                    raise
                errors.append({"model": writer.model, **CallError.from_exception(exc, secrets=secrets_of(run.spec)).as_dict()})
                _report_writer(run, writer, writer_started, None, errors[-1])
                for event in drained(events):
                    yield event
                continue
            record = next((r for r in reversed(run.ledger.records) if r.role == "synthesizer"), None)
            _report_writer(run, writer, writer_started, record, None)
            for event in drained(events):
                yield event
            run.synthesizer = _synth_trace(writer, record, "ok", errors)
            yield FusionDone(ledger=run.ledger, trace=build_trace(run))
            return
    except TimeoutError:
        raise FusionTimeoutError(
            f"no answer within {request.timeout:.1f}s (stage reached: {_stage(run)})",
            model=f"fusion/{request.name}",
            trace=build_trace(run),
        ) from None
    run.synthesizer = _synth_trace(_writers(run.spec)[0], None, "error", errors)
    raise SynthesisFailedError(
        "the synthesizer failed: " + "; ".join(f"{e['model']}: {e['type']}: {e['message']}" for e in errors),
        model=f"fusion/{request.name}",
        trace=build_trace(run),
    )


def _stage(run: _Run) -> str:
    if not run.panel:
        return "panel"
    return "judge" if run.judge is None else "synthesizer"


def _judge_trace(run: _Run) -> dict[str, Any] | None:
    if run.judge is None:
        return None
    records = run.judge.records
    return {
        "model": run.spec.judge.model,
        "status": "ok" if run.judge.failed_reason is None else "failed",
        "failed_reason": run.judge.failed_reason,
        "structured_output": run.judge.structured_output,
        "calls": len(records),
        "latency_ms": round(sum(r.latency_ms for r in records), 1),
        "usage": {
            "prompt_tokens": sum(r.prompt_tokens for r in records),
            "completion_tokens": sum(r.completion_tokens for r in records),
            "total_tokens": sum(r.total_tokens for r in records),
        },
        "cost": sum(r.cost or 0.0 for r in records) if records else None,
        "error": run.judge.error.as_dict() if run.judge.error else None,
        "start_ms": run.judge_started_ms,
        "nested_calls": [call_trace(r) for r in records],
    }


def _aggregation_trace(run: _Run) -> dict[str, Any] | None:
    if run.judge is not None:
        return run.judge.vote_trace(run.names())
    # A unanimous vote short-circuited the judge: the trace still shows the vote that decided.
    return count_vote(run.answers()).as_dict(run.names()) if run.short_circuit == "vote" else None


def build_trace(run: _Run) -> dict[str, Any]:
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
