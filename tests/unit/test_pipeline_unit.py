"""The pipeline with a fake completion seam: quorum, fallbacks, deadlines, cancellation, sums."""

from __future__ import annotations

import asyncio
import json
import time

import litellm
import pytest

from litellm_fusion._core.errors import FusionTimeoutError, PanelFailedError, SynthesisFailedError
from litellm_fusion._engine.pipeline import FusionDone, FusionRequest, run_fusion, stream_fusion
from litellm_fusion._engine.progress import ProgressEvent
from litellm_fusion._spec.config import FusionSpec
from litellm_fusion.testing import FakeCompletion, Reply, upstream_error

ANALYSIS = json.dumps({"consensus": ["c"], "contradictions": [], "partial_coverage": [], "unique_insights": [], "blind_spots": []})
MESSAGES = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}]


def request(panel=("openai/a", "openai/b", "openai/c"), timeout=5.0, final_params=None, **spec) -> FusionRequest:
    full = {"panel": list(panel), "judge": "openai/judge", "synthesizer": "openai/writer", **spec}
    return FusionRequest(
        name="t", spec=FusionSpec.model_validate(full), messages=MESSAGES, final_params=final_params or {}, timeout=timeout
    )


def fake(**overrides) -> FakeCompletion:
    script = {
        "openai/a": Reply("4"),
        "openai/b": Reply("four"),
        "openai/c": Reply("5"),
        "openai/judge": Reply(ANALYSIS),
        "openai/writer": Reply("The answer is 4."),
    }
    script.update(overrides)
    return FakeCompletion(script)


async def test_happy_path_sums_every_call_and_forwards_the_whole_conversation():
    seam = fake()
    result = await run_fusion(request(temperature=0.4), complete=seam)
    assert result.response.choices[0].message.content == "The answer is 4."
    assert seam.models_called()[-2:] == ["openai/judge", "openai/writer"]
    calls = len(seam.calls)
    assert result.ledger.prompt_tokens == 10 * calls and result.ledger.completion_tokens == 5 * calls
    assert result.ledger.cost == pytest.approx(0.001 * calls)
    panel_calls = [c for c in seam.calls if c["model"] in {"openai/a", "openai/b", "openai/c"}]
    assert all(c["messages"] == MESSAGES and c["temperature"] == 0.4 for c in panel_calls)
    assert all(c["num_retries"] == 0 and c["max_retries"] == 0 and "timeout" in c for c in seam.calls)
    trace = result.trace
    assert trace["degraded"] is False and trace["failed_models"] == []
    assert sorted(trace["letters"]) == ["A", "B", "C"]


async def test_client_parameters_reach_only_the_synthesizer():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    seam = fake()
    await run_fusion(request(final_params={"tools": tools, "stop": ["END"], "n": 2}), complete=seam)
    for call in seam.calls:
        has = "tools" in call or "stop" in call or "n" in call
        assert has == (call["model"] == "openai/writer"), call["model"]


async def test_one_failed_member_is_recorded_and_does_not_sink_the_request():
    seam = fake(**{"openai/c": Reply(error=upstream_error(litellm.RateLimitError, "slow down"))})
    result = await run_fusion(request(), complete=seam)
    trace = result.trace
    failed = [p for p in trace["panel"] if p["model"] == "openai/c"][0]
    assert failed["status"] == "error" and failed["letter"] is None
    assert failed["error"]["type"] == "RateLimitError" and failed["error"]["status_code"] == 429
    assert trace["failed_models"] == ["openai/c"] and trace["degraded"] is True
    judge_prompt = [c for c in seam.calls if c["model"] == "openai/judge"][0]["messages"][1]["content"]
    assert "Answer C" not in judge_prompt and judge_prompt.count("<<<ANSWER") == 2


async def test_below_quorum_is_a_503_listing_each_member_and_never_calls_the_judge():
    boom = Reply(error=upstream_error(litellm.InternalServerError, "upstream exploded"))
    seam = fake(**{"openai/a": boom, "openai/b": boom})
    with pytest.raises(PanelFailedError) as info:
        await run_fusion(request(min_quorum=2), complete=seam)
    assert info.value.status_code == 503
    message = str(info.value)
    assert "1 of 3 panel members answered, 2 needed" in message
    assert "openai/a: error (InternalServerError" in message and "openai/c: ok" in message
    assert "openai/judge" not in seam.models_called()
    assert info.value.trace["failed_models"] == ["openai/a", "openai/b"]


async def test_judge_failure_still_synthesizes_from_raw_answers():
    seam = fake(**{"openai/judge": Reply(error=upstream_error(litellm.InternalServerError))})
    result = await run_fusion(request(), complete=seam)
    assert result.trace["judge_failed"] == "upstream_error" and result.trace["analysis"] is None
    brief = [c for c in seam.calls if c["model"] == "openai/writer"][0]["messages"][0]["content"]
    assert "analysis is not available" in brief and brief.count("<<<ANSWER") == 3


async def test_synthesizer_failure_falls_back_to_the_judge_model_once():
    seam = fake(
        **{
            "openai/writer": Reply(error=upstream_error(litellm.InternalServerError, "writer down")),
            "openai/judge": [Reply(ANALYSIS), Reply("fallback answer")],
        }
    )
    result = await run_fusion(request(), complete=seam)
    assert result.response.choices[0].message.content == "fallback answer"
    synth = result.trace["synthesizer"]
    assert synth["model"] == "openai/judge" and synth["errors"][0]["model"] == "openai/writer"
    assert result.trace["degraded"] is True


@pytest.mark.parametrize("shape", ["one response", "stream"])
async def test_a_writer_raising_timeout_error_itself_falls_back(shape):
    """A ``TimeoutError`` from the writer's own call (a custom seam, an unmapped client timeout) is that writer's
    failure, so the judge's model writes (the request's deadline is a 408: test_deadline_raises_timeout_and_cancels_the_panel)."""
    seam = fake(**{"openai/writer": Reply(error=TimeoutError("socket read timed out")), "openai/judge": [Reply(ANALYSIS), Reply("fallback answer")]})
    if shape == "one response":
        result = await run_fusion(request(), complete=seam)
        assert result.response.choices[0].message.content == "fallback answer"
        trace = result.trace
    else:
        items = [item async for item in stream_fusion(request(), complete=seam)]
        trace = items[-1].trace
    assert trace["synthesizer"]["model"] == "openai/judge" and trace["synthesizer"]["errors"][0]["type"] == "TimeoutError"


async def test_synthesizer_and_fallback_failing_is_a_503():
    down = Reply(error=upstream_error(litellm.InternalServerError, "down"))
    seam = fake(**{"openai/writer": down, "openai/judge": [Reply(ANALYSIS), down]})
    with pytest.raises(SynthesisFailedError) as info:
        await run_fusion(request(), complete=seam)
    assert info.value.status_code == 503 and "openai/writer" in str(info.value) and "openai/judge" in str(info.value)


async def test_deadline_raises_timeout_and_cancels_the_panel():
    seam = fake(**{"openai/a": Reply("late", delay=10)})
    started = time.perf_counter()
    with pytest.raises(FusionTimeoutError) as info:
        await run_fusion(request(timeout=0.3), complete=seam)
    assert time.perf_counter() - started < 1.0
    assert info.value.status_code == 408 and isinstance(info.value, litellm.Timeout)
    assert seam.cancelled == ["openai/a"] and seam.in_flight == 0


async def test_cancelling_the_caller_cancels_every_member_and_skips_the_judge():
    seam = fake(**{m: Reply("slow", delay=5) for m in ("openai/a", "openai/b", "openai/c")})
    task = asyncio.create_task(run_fusion(request(), complete=seam))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(seam.cancelled) == ["openai/a", "openai/b", "openai/c"] and seam.in_flight == 0
    assert "openai/judge" not in seam.models_called()


async def test_stream_yields_synthesizer_chunks_then_the_sums():
    seam = fake()
    items = [item async for item in stream_fusion(request(), complete=seam) if not isinstance(item, ProgressEvent)]
    done = items[-1]
    assert isinstance(done, FusionDone)
    text = "".join(c.choices[0].delta.content or "" for c in items[:-1])
    assert text == "The answer is 4."
    assert done.ledger.prompt_tokens == 10 * len(seam.calls)
    assert done.trace["synthesizer"]["status"] == "ok" and done.trace["synthesizer"]["usage"]["completion_tokens"] == 5
    writer_call = [c for c in seam.calls if c["model"] == "openai/writer"][0]
    assert writer_call["stream"] is True and writer_call["stream_options"] == {"include_usage": True}


async def test_stream_synthesizer_failure_before_first_chunk_falls_back():
    seam = fake(
        **{"openai/writer": Reply(error=upstream_error(litellm.InternalServerError)), "openai/judge": [Reply(ANALYSIS), Reply("from judge")]}
    )
    items = [item async for item in stream_fusion(request(), complete=seam) if not isinstance(item, ProgressEvent)]
    assert "".join(c.choices[0].delta.content or "" for c in items[:-1]) == "from judge"
    assert items[-1].trace["synthesizer"]["model"] == "openai/judge"


async def test_empty_member_answer_is_a_failure_not_a_blank_answer():
    seam = fake(**{"openai/b": Reply("   ")})
    result = await run_fusion(request(), complete=seam)
    member = [p for p in result.trace["panel"] if p["model"] == "openai/b"][0]
    assert member["status"] == "error" and member["error"]["type"] == "EmptyAnswer"


async def test_default_quorum_is_a_majority_and_stragglers_are_dropped_after_the_grace():
    seam = fake(**{"openai/c": Reply("late", delay=5)})
    started = time.perf_counter()
    result = await run_fusion(request(straggler_grace=0.2), complete=seam)
    assert time.perf_counter() - started < 1.0
    assert seam.cancelled == ["openai/c"] and seam.in_flight == 0
    member = [p for p in result.trace["panel"] if p["model"] == "openai/c"][0]
    assert member["status"] == "dropped" and "after the quorum (2) answered" in member["error"]["message"]
    assert result.trace["quorum"] == 2 and result.trace["degraded"] is True


async def test_no_grace_waits_for_every_member():
    seam = fake(**{"openai/c": Reply("late but here", delay=0.3)})
    result = await run_fusion(request(straggler_grace=None), complete=seam)
    assert all(p["status"] == "ok" for p in result.trace["panel"])


async def test_unreachable_quorum_fails_fast_without_waiting_for_stragglers():
    boom = Reply(error=upstream_error(litellm.InternalServerError))
    seam = fake(**{"openai/a": boom, "openai/b": boom, "openai/c": Reply("slow", delay=5)})
    started = time.perf_counter()
    with pytest.raises(PanelFailedError) as info:
        await run_fusion(request(min_quorum=2), complete=seam)
    assert time.perf_counter() - started < 1.0 and seam.cancelled == ["openai/c"]
    assert "quorum (2) could no longer be reached" in str(info.value)


async def test_panel_timeout_bounds_members_by_wall_clock():
    seam = fake(**{"openai/c": Reply("late", delay=5)})
    result = await run_fusion(request(panel_timeout=0.2, straggler_grace=None), complete=seam)
    member = [p for p in result.trace["panel"] if p["model"] == "openai/c"][0]
    assert member["status"] == "timeout" and member["error"]["status_code"] == 408


async def test_judge_timeout_degrades_to_raw_answers():
    seam = fake(**{"openai/judge": Reply(ANALYSIS, delay=5)})
    started = time.perf_counter()
    result = await run_fusion(request(judge_timeout=0.2), complete=seam)
    assert time.perf_counter() - started < 1.5
    assert result.trace["judge_failed"] == "timeout"
    assert result.response.choices[0].message.content == "The answer is 4."


async def test_exact_short_circuit_skips_judge_and_synthesizer():
    seam = fake(**{"openai/a": Reply("Four."), "openai/b": Reply(" four"), "openai/c": Reply("FOUR")})
    result = await run_fusion(request(short_circuit="exact"), complete=seam)
    assert result.response.choices[0].message.content == "Four."
    assert result.trace["short_circuit"] == "exact" and result.trace["synthesizer"] is None
    assert set(seam.models_called()) == {"openai/a", "openai/b", "openai/c"}
    assert result.ledger.cost == pytest.approx(0.003)


async def test_short_circuit_needs_agreement_and_no_client_tools():
    seam = fake()  # "4", "four", "5": no agreement
    assert (await run_fusion(request(short_circuit="exact"), complete=seam)).trace["short_circuit"] is None
    agree = {m: Reply("4") for m in ("openai/a", "openai/b", "openai/c")}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    seam = fake(**agree)
    result = await run_fusion(request(short_circuit="exact", final_params={"tools": tools}), complete=seam)
    assert result.trace["short_circuit"] is None and "openai/writer" in seam.models_called()


async def test_judge_short_circuit_skips_only_the_synthesizer():
    seam = fake()
    result = await run_fusion(request(short_circuit="judge"), complete=seam)
    assert result.trace["short_circuit"] == "judge" and "openai/writer" not in seam.models_called()
    assert result.response.choices[0].message.content in {"4", "four", "5"}


async def test_stream_short_circuit_yields_the_agreed_answer():
    seam = fake(**{m: Reply("4") for m in ("openai/a", "openai/b", "openai/c")})
    items = [item async for item in stream_fusion(request(short_circuit="exact"), complete=seam) if not isinstance(item, ProgressEvent)]
    assert items[0].choices[0].delta.content == "4" and items[-1].trace["short_circuit"] == "exact"
