"""The stages both call shapes run, in order: the outer decision's bookkeeping, the panel and the judge (with the
short-circuits), and what a writer needs (who writes, from which brief), with the progress each reports.

Nothing here knows whether the answer streams: :mod:`~litellm_fusion._engine.pipeline` delivers it.
"""

from __future__ import annotations

import string
from typing import Any

from litellm_fusion._core.errors import PanelFailedError, SynthesisFailedError
from litellm_fusion._core.usage import CallRecord, Usage, UsageLedger
from litellm_fusion._engine.consensus import SHORT_CIRCUIT_BLOCKERS, agreed_answer, agreed_claim, judge_found_full_consensus
from litellm_fusion._engine.invocation import Decision, effective_mode
from litellm_fusion._engine.judge import analyse
from litellm_fusion._engine.panel import AnswerFn, MemberOutcome, plain_answer, run_panel
from litellm_fusion._engine.progress import (
    FusionStarted,
    JudgeFinished,
    JudgeStarted,
    PanelAgreed,
    SynthesizerFinished,
    WebToolCalled,
)
from litellm_fusion._engine.run import FusionRun
from litellm_fusion._engine.synthesis import synthesis_messages
from litellm_fusion._engine.trace import build_trace
from litellm_fusion._spec.config import FusionSpec, MemberSpec
from litellm_fusion._web.member import WebAnswer, answer_with_web
from litellm_fusion._web.tools import FetcherLike

__all__ = ["report_start", "decision_args", "decided", "panel_and_judge", "writers", "writer_messages", "report_writer"]


def report_start(run: FusionRun) -> None:
    """The first progress event: who is on the panel, who judges and writes, the quorum."""
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


def decision_args(run: FusionRun) -> dict[str, Any]:
    """The arguments of the outer decision (``invocation.decide`` / ``stream_decision``)."""
    request = run.request
    return {
        "mode": effective_mode(run.spec, request.depth),
        "writer": run.spec.synthesizer_or_judge,
        "spec": run.spec,
        "messages": request.messages,
        "final_params": request.final_params,
        "complete": run.complete,
        "ledger": run.ledger,
        "secrets": run.secrets,
        "depth": request.depth,
    }


def decided(run: FusionRun, decision: Decision) -> bool:
    """Record the outer decision; True when the panel runs. A failed single call (depth >= 1) is a 503."""
    run.invocation, run.focus = decision.trace(), decision.question
    if decision.error is not None and not decision.invoked:
        raise SynthesisFailedError(
            f"the single call failed: {decision.error.type}: {decision.error.message}",
            model=run.request.model,
            trace=build_trace(run),
        )
    return decision.invoked


def _panel_report(outcomes: list[MemberOutcome]) -> str:
    return "; ".join(f"{o.model}: {o.status}" + (f" ({o.error.type}: {o.error.message})" if o.error else "") for o in outcomes)


def _answer_fn(run: FusionRun, fetcher: FetcherLike | None) -> AnswerFn:
    """Each member's path: a plain call, or its web mode (decided and validated when the request was built)."""
    plain = plain_answer(run.complete)
    web_modes = run.request.web_modes or ("off",) * len(run.spec.panel)

    async def answer(index: int, member: MemberSpec, kwargs: dict[str, Any], ledger: UsageLedger) -> WebAnswer:
        mode = web_modes[index]
        if mode == "off":
            return await plain(index, member, kwargs, ledger)

        def on_tool_call(call: Any) -> None:
            run.progress.emit(
                WebToolCalled, index=index, model=member.model, tool=call.name, argument=call.argument,
                status=call.status, error=call.error, started_ms=call.start_ms,
                latency_ms=round(call.latency_ms, 1),
            )  # fmt: skip

        return await answer_with_web(
            mode=mode,
            member=member,
            spec=run.spec,
            kwargs=kwargs,
            complete=run.complete,
            ledger=ledger,
            search=run.request.web_search,
            fetcher=fetcher,
            aliases=run.request.aliases,
            on_tool_call=on_tool_call,
        )

    return answer


async def panel_and_judge(run: FusionRun) -> None:
    """Run the panel; below the quorum a 503. Then letter the answers and run the judge, unless the panel agreed."""
    spec = run.spec
    uses_fetch = spec.web.fetch.enabled and any(mode in ("client", "native") for mode in run.request.web_modes)
    fetcher = run.fetcher_factory(spec.web.fetch) if uses_fetch else None
    try:
        run.panel = await run_panel(
            spec=spec,
            messages=run.panel_messages,
            answer=_answer_fn(run, fetcher),
            ledger=run.ledger,
            timeout=run.remaining(spec.panel_timeout),
            secrets=run.secrets,
            progress=run.progress,
        )
    finally:
        if fetcher is not None:
            await fetcher.aclose()
    answered = [o for o in run.panel if o.ok]
    if len(answered) < spec.quorum:
        raise PanelFailedError(
            f"{len(answered)} of {len(run.panel)} panel members answered, {spec.quorum} needed: {_panel_report(run.panel)}",
            model=run.request.model,
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


def _report_judge(run: FusionRun, started_ms: float) -> None:
    judge = run.judge
    assert judge is not None  # called right after analyse()
    analysis = judge.analysis or {}
    run.progress.emit(
        JudgeFinished,
        model=run.spec.judge.model,
        started_ms=round(started_ms, 1),
        latency_ms=round(run.progress.now_ms() - started_ms, 1),
        tokens=Usage.total(r.usage for r in judge.records).total_tokens,
        calls=len(judge.records),
        failed_reason=judge.failed_reason,
        consensus=tuple(str(p) for p in analysis.get("consensus", [])),
        contradictions=tuple(str(c.get("topic", "")) for c in analysis.get("contradictions", [])),
    )


def writers(spec: FusionSpec) -> list[MemberSpec]:
    """The synthesizer, then the judge's model as the one fallback when it is a different model."""
    writer = spec.synthesizer_or_judge
    return [writer] if writer.model == spec.judge.model else [writer, spec.judge]


def writer_messages(run: FusionRun) -> list[dict[str, Any]]:
    """The writer's brief (answers, the judge's lettered analysis, the vote) before the client's conversation."""
    lettered = run.judge.lettered if run.judge else None
    vote = run.judge.vote.as_dict() if run.judge and run.judge.vote else None
    return synthesis_messages(run.request.messages, run.answers(), lettered, run.nonce, vote)


def report_writer(run: FusionRun, writer: MemberSpec, started_ms: float, record: CallRecord | None, error: dict[str, Any] | None) -> None:
    """A writer finished (``record``) or failed (``error``)."""
    run.progress.emit(
        SynthesizerFinished,
        model=writer.model,
        started_ms=round(started_ms, 1),
        latency_ms=round(run.progress.now_ms() - started_ms, 1),
        tokens=record.total_tokens if record else 0,
        status="error" if error else "ok",
        error=f"{error['type']}: {error['message']}" if error else None,
    )
