"""The synthesizer: writes the final answer from the conversation, the panel's answers and the analysis.

It is the only stage that sees the client's ``tools``, ``tool_choice``, ``response_format``, ``stop``,
``n`` and sampling parameters, because its output is what the client receives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from litellm_fusion._core.nested import CompleteFn, timed_call
from litellm_fusion._core.usage import CallRecord, UsageLedger, cost_of, usage_of
from litellm_fusion._engine import prompts
from litellm_fusion._spec.call_kwargs import member_kwargs
from litellm_fusion._spec.config import FusionSpec, MemberSpec

__all__ = ["FINAL_ANSWER_PARAMS", "synthesis_messages", "synthesize", "stream_synthesis"]

FINAL_ANSWER_PARAMS = frozenset(
    {
        "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "response_format",
        "stop", "n", "temperature", "top_p", "seed", "max_tokens", "presence_penalty", "frequency_penalty",
        "logit_bias", "logprobs", "top_logprobs",
    }
)  # fmt: skip
"""Client parameters that shape the final answer, so they go to the synthesizer and to no one else."""


def synthesis_messages(
    messages: list[dict[str, Any]],
    answers: dict[str, str],
    analysis: dict[str, Any] | None,
    nonce: str,
    vote: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The brief as a leading system message, then the client's conversation unchanged.

    ``vote`` (letters, from ``Vote.as_dict()``) switches the brief to the vote-aware one: the counted claims,
    the judge's checks, and when to keep the majority or a checked minority.
    """
    return [{"role": "system", "content": prompts.synthesizer_brief(answers, analysis, nonce, vote)}, *messages]


async def synthesize(
    *,
    writer: MemberSpec,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    final_params: dict[str, Any],
    complete: CompleteFn,
    ledger: UsageLedger,
) -> tuple[Any, CallRecord]:
    """One non-streaming synthesizer call; returns the nested response (to copy from) and its record.

    Its deadline is the request's, enforced around the call by the pipeline.
    """
    kwargs = member_kwargs(writer, spec, messages, extra=final_params)
    return await timed_call(complete, kwargs, role="synthesizer", member=writer, ledger=ledger)


async def stream_synthesis(
    *,
    writer: MemberSpec,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    final_params: dict[str, Any],
    complete: CompleteFn,
    ledger: UsageLedger,
    price_model: str | None = None,
    role: str = "synthesizer",
) -> AsyncIterator[Any]:
    """Stream the synthesizer's chunks as they arrive; its usage and cost go into ``ledger`` at the end.

    ``price_model`` is the LiteLLM model to price the stream by (the model behind a Router name); ``role``
    names the call in the ledger (``outer`` for the invocation decision, which streams the same way).
    """
    kwargs = member_kwargs(writer, spec, messages, extra=final_params)
    kwargs.update(stream=True, stream_options={"include_usage": True})
    started = time.perf_counter()
    stream = await complete(**kwargs)
    usage = None
    try:
        async for chunk in stream:
            if getattr(chunk, "usage", None) is not None:
                usage = chunk.usage
            yield chunk
    finally:
        # A caller that stops reading (or is cancelled) must close the upstream stream now, not whenever
        # the garbage collector finds it: that is the connection to the synthesizer's server.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    prompt_tokens, completion_tokens = usage_of(usage)
    ledger.add(
        CallRecord(
            role=role,
            model=writer.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            # The stream wrapper's stamped cost is 0.0 until LiteLLM's logging runs, so price it from usage.
            cost=cost_of(
                None,
                model=price_model or writer.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                prices=(writer.input_cost_per_token, writer.output_cost_per_token),
            ),
            latency_ms=(time.perf_counter() - started) * 1000,
            start_ms=ledger.offset_ms(started),
        )
    )
