"""Progress events with a fake completion seam: what is emitted, in what order, with which offsets, and how
the adapter turns them into reasoning chunks (untrusted text made inert)."""

from __future__ import annotations

import asyncio
import json

import pytest

from litellm_fusion._engine import progress as p
from litellm_fusion._engine.pipeline import FusionDone, FusionRequest, run_fusion, stream_fusion
from litellm_fusion._engine.progress_text import one_line, progress_text
from litellm_fusion._host.provider import generic_stream
from litellm_fusion._spec.config import FusionSpec
from litellm_fusion.testing import FakeCompletion, Reply, upstream_error

ANALYSIS = json.dumps(
    {
        "consensus": ["it is 4", "line one\nline two"],
        "contradictions": [{"topic": "rounding", "stances": []}],
        "partial_coverage": [],
        "unique_insights": [],
        "blind_spots": [],
    }
)
MESSAGES = [{"role": "user", "content": "2+2?"}]


def request(panel=("openai/a", "openai/b", "openai/c"), **spec) -> FusionRequest:
    full = {"panel": list(panel), "judge": "openai/judge", "synthesizer": "openai/writer", **spec}
    return FusionRequest(name="t", spec=FusionSpec.model_validate(full), messages=MESSAGES, timeout=10.0)


def fake(**overrides) -> FakeCompletion:
    script = {
        "openai/a": Reply("4", delay=0.05),
        "openai/b": Reply("four", delay=0.1),
        "openai/c": Reply(error=upstream_error(message="rate limited\n![x](http://evil.example/p.png)")),
        "openai/judge": Reply(ANALYSIS),
        "openai/writer": Reply("The answer is 4."),
    }
    script.update(overrides)
    return FakeCompletion(script)


async def test_run_fusion_reports_every_stage_in_order_with_offsets():
    events: list[p.ProgressEvent] = []
    await run_fusion(request(), complete=fake(), on_progress=events.append)
    calls = [e for e in events if isinstance(e, p.CallFinished)]
    assert [(c.role, c.model) for c in calls] == [
        ("panel", "openai/a"), ("panel", "openai/b"), ("judge", "openai/judge"), ("synthesizer", "openai/writer")
    ]  # fmt: skip
    assert all(c.tokens == 15 and c.cost == 0.001 and 0 <= c.started_ms <= c.at_ms for c in calls)
    assert calls[1].latency_ms >= 100 and calls[2].started_ms >= calls[1].started_ms + calls[1].latency_ms - 1
    events = [e for e in events if not isinstance(e, p.CallFinished)]
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "FusionStarted" and kinds[1:4] == ["MemberStarted"] * 3
    assert kinds[4:7] == ["MemberFailed", "MemberAnswered", "MemberAnswered"]
    assert kinds[7:] == ["JudgeStarted", "JudgeFinished", "SynthesizerStarted", "SynthesizerFinished"]
    assert [e.at_ms for e in events] == sorted(e.at_ms for e in events)
    answered = {e.model: e for e in events if isinstance(e, p.MemberAnswered)}
    assert answered["openai/a"].latency_ms >= 50 and answered["openai/b"].latency_ms >= 100
    assert answered["openai/a"].tokens == 15
    for event in [*answered.values(), *(e for e in events if isinstance(e, p.JudgeFinished | p.SynthesizerFinished))]:
        # started + latency ends at (or just before) the moment the event was emitted.
        assert 0 <= event.started_ms <= event.at_ms and abs(event.started_ms + event.latency_ms - event.at_ms) < 5
    failed = next(e for e in events if isinstance(e, p.MemberFailed))
    assert failed.model == "openai/c" and failed.error_type == "InternalServerError" and "rate limited" in failed.error
    judge = next(e for e in events if isinstance(e, p.JudgeFinished))
    assert judge.consensus == ("it is 4", "line one\nline two") and judge.contradictions == ("rounding",) and judge.calls == 1


async def test_dropped_stragglers_and_exact_agreement_are_reported():
    events: list[p.ProgressEvent] = []
    seam = fake(**{"openai/b": Reply("4"), "openai/c": Reply("4", delay=5)})
    await run_fusion(request(straggler_grace=0.05, short_circuit="exact"), complete=seam, on_progress=events.append)
    dropped = [e for e in events if isinstance(e, p.MemberDropped)]
    assert [(e.model, e.index) for e in dropped] == [("openai/c", 2)] and "quorum" in dropped[0].reason
    assert [type(e).__name__ for e in events][-1] == "PanelAgreed" and events[-1].how == "exact"


async def test_stream_yields_progress_first_then_chunks_and_closing_early_cancels_the_panel():
    seam = fake(**{"openai/a": Reply("4", delay=5), "openai/b": Reply("4", delay=5)})
    stream = stream_fusion(request(), complete=seam)
    first = await anext(stream)
    assert isinstance(first, p.FusionStarted) and first.panel == ("openai/a", "openai/b", "openai/c") and first.quorum == 2
    assert [type(await anext(stream)).__name__ for _ in range(3)] == ["MemberStarted"] * 3
    for _ in range(200):  # until both slow members are inside their upstream call
        if seam.in_flight == 2:
            break
        await asyncio.sleep(0.01)
    assert seam.in_flight == 2
    await stream.aclose()
    await asyncio.sleep(0)
    assert sorted(seam.cancelled) == ["openai/a", "openai/b"]  # no orphaned member calls


async def test_reasoning_chunks_come_before_content_and_only_when_asked():
    async def chunks(**spec):
        return [c async for c in generic_stream(stream_fusion(request(**spec), complete=fake()), spec.get("expose", "full"),
                                                 spec.get("progress", "reasoning"), "fusion/t")]  # fmt: skip

    shown = await chunks()
    reasoning = [c.choices[0].delta.reasoning_content for c in shown if not isinstance(c, dict)]
    content = [c["text"] for c in shown if isinstance(c, dict)]
    assert "".join(content) == "The answer is 4."
    assert all(not isinstance(c, dict) for c in shown[: len(reasoning)])  # every reasoning chunk precedes the content
    assert len({c.id for c in shown if not isinstance(c, dict)}) == 1
    text = "".join(reasoning)
    assert text.startswith("Fusion t: asking 3 models (openai/a, openai/b, openai/c); 2 answers needed;")
    assert "- openai/c failed after" in text and "rate limited \\!\\[x\\]\\(http://evil.example/p.png\\)" in text
    assert "  - agreed: line one line two\n" in text and "  - contested: rounding\n" in text
    assert text.endswith("Writer openai/writer is writing the answer…\n")
    assert all(line and "![" not in line for line in text.splitlines())
    for quiet in (await chunks(progress="none"), await chunks(expose="none")):
        assert all(isinstance(c, dict) for c in quiet) and "".join(c["text"] for c in quiet) == "The answer is 4."


def test_one_line_makes_untrusted_text_inert_and_short():
    assert one_line("a\nb\r\n\tc\u2028d\x1b[31m") == "a b c d \\[31m"
    assert one_line("<img src=x onerror=alert(1)> **bold** [l](u) `c`") == (
        "\\<img src=x onerror=alert\\(1\\)\\> \\*\\*bold\\*\\* \\[l\\]\\(u\\) \\`c\\`"
    )
    assert one_line("x" * 500, 50) == "x" * 49 + "…"
    assert one_line(None) == ""


@pytest.mark.parametrize(
    ("how", "skipped"),
    [("exact", "no judge or synthesizer needed"), ("vote", "no judge or synthesizer needed"), ("judge", "no synthesizer needed")],
)
def test_panel_agreed_says_which_stages_are_skipped(how, skipped):
    assert progress_text(p.PanelAgreed(at_ms=1, how=how)).strip() == f"The panel agrees ({how}): {skipped}."


async def test_interleaved_cancelled_while_waiting_leaves_no_pending_get():
    queue: asyncio.Queue[p.ProgressEvent] = asyncio.Queue()

    async def consume() -> None:
        async for _ in p.interleaved(asyncio.sleep(10), queue):
            pass

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    consumer.cancel()
    try:
        await consumer
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not [t for t in left if "Queue.get" in t.get_coro().__qualname__], left


async def test_fusion_done_still_ends_the_stream():
    items = [item async for item in stream_fusion(request(), complete=fake())]
    assert isinstance(items[-1], FusionDone) and isinstance(items[-2], p.SynthesizerFinished)
    assert isinstance(items[-3], p.CallFinished) and items[-3].role == "synthesizer" and items[-3].tokens == 15


async def test_a_listener_sees_an_async_sdk_call_and_non_streaming_responses_are_unchanged():
    import litellm

    from litellm_fusion._host.provider import FusionLLM
    from litellm_fusion._spec.config import PresetStore

    handler = FusionLLM(presets=PresetStore(), complete=fake())
    saved = litellm.custom_provider_map
    litellm.custom_provider_map = [{"provider": "progressfusion", "custom_handler": handler}]
    spec = {"panel": ["openai/a", "openai/b", "openai/c"], "judge": "openai/judge", "synthesizer": "openai/writer"}
    events: list[p.ProgressEvent] = []
    try:
        with p.listening(events.append):
            response = await litellm.acompletion(model="progressfusion/x", messages=MESSAGES, fusion=spec)
        outside = await litellm.acompletion(model="progressfusion/x", messages=MESSAGES, fusion=spec)
    finally:
        litellm.custom_provider_map = saved
    assert response.choices[0].message.content == outside.choices[0].message.content == "The answer is 4."
    assert getattr(response.choices[0].message, "reasoning_content", None) is None
    assert isinstance(events[0], p.FusionStarted) and events[0].name == "x"
    assert isinstance(events[-1], p.SynthesizerFinished) and events[-1].status == "ok"
    assert sum(isinstance(e, p.FusionStarted) for e in events) == 1  # the call outside the block reported nothing here


async def test_event_offsets_share_the_traces_clock():
    events: list[p.ProgressEvent] = []
    result = await run_fusion(request(), complete=fake(), on_progress=events.append)
    starts = {e.model: e.started_ms for e in events if isinstance(e, p.MemberAnswered | p.MemberFailed)}
    assert starts == {m["model"]: m["start_ms"] for m in result.trace["panel"]}
    judge = next(e for e in events if isinstance(e, p.JudgeFinished))
    assert judge.started_ms == result.trace["judge"]["start_ms"]
