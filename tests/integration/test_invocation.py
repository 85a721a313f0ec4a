"""``invocation: always | auto | required``, the fusion tool, the server-tool shape and the depth guard (SDK).

A scripted outer model (the synthesizer's model on the scripted server) either answers directly, calls the
panel tool, or calls a client tool; the tests check what the caller gets and what the upstream saw.
"""

from __future__ import annotations

import json
from typing import Any

import litellm
import pytest
from conftest import JUDGE_MODEL, MESSAGES, PANEL_MODELS, SYNTH_MODEL, SYNTH_TEXT, fusion_call, upstream

from litellm_fusion._engine.invocation import DEPTH_HEADER, FUSION_TOOL_NAME, focused_messages
from litellm_fusion.testing import Script, ScriptedServer, ToolCall

SYNTH = upstream(SYNTH_MODEL)
JUDGE = upstream(JUDGE_MODEL)
PANEL = [upstream(m) for m in PANEL_MODELS]
DIRECT = "Paris, directly."
FOCUS = "Which city is the capital of France?"
MODES = [(False, False), (False, True), (True, False), (True, True)]
MODE_IDS = ["async", "async-stream", "sync", "sync-stream"]
CLIENT_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture(autouse=True)
def _registered(fusion_registered):
    yield fusion_registered




def text_of(result: Any) -> str:
    if isinstance(result, list):
        return "".join((c.choices[0].delta.content or "") for c in result if c.choices)
    return result.choices[0].message.content or ""


def trace_of(result: Any) -> dict[str, Any]:
    if isinstance(result, list):
        for chunk in result:
            for choice in chunk.choices or []:
                fields = getattr(choice.delta, "provider_specific_fields", None) or {}
                if "fusion" in fields:
                    return fields["fusion"]
        raise AssertionError("no trace in the stream")
    return result._hidden_params["fusion"]


def usage_of(result: Any) -> Any:
    if isinstance(result, list):
        return next(c.usage for c in reversed(result) if getattr(c, "usage", None) is not None)
    return result.usage


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


def outer_calls_panel(question: str | None = FOCUS) -> list[Script]:
    """The synthesizer's model: first the outer call (calls the panel tool), then the synthesis."""
    arguments = {"question": question} if question else {}
    return [Script(tool_calls=[ToolCall(FUSION_TOOL_NAME, arguments)]), Script(text=SYNTH_TEXT)]


@pytest.mark.parametrize(("sync", "stream"), MODES, ids=MODE_IDS)
async def test_auto_direct_answer_is_one_call(upstream_server: ScriptedServer, spec: dict[str, Any], sync: bool, stream: bool) -> None:
    upstream_server.set_script(SYNTH, Script(text=DIRECT, prompt_tokens=40, completion_tokens=3, chunk_chars=3))
    result = await fusion_call(sync=sync, stream=stream, fusion={**spec, "invocation": "auto"})

    assert text_of(result) == DIRECT
    assert [r.model for r in upstream_server.requests] == [SYNTH], "no panel, judge or synthesis call"
    outer = upstream_server.requests[0].body
    assert tool_names(outer) == [FUSION_TOOL_NAME]
    assert outer["tool_choice"] == "auto"
    assert outer["messages"] == MESSAGES, "the outer model sees the client's conversation unchanged"
    trace = trace_of(result)
    invocation = trace["invocation"]
    assert invocation["mode"] == "auto" and invocation["invoked"] is False
    assert invocation["reason"] == "the outer model answered directly"
    assert trace["panel"] == [] and trace["judge"] is None and trace["synthesizer"] is None
    usage = usage_of(result)
    assert (usage.prompt_tokens, usage.completion_tokens) == (40, 3)
    expected_cost = litellm.cost_per_token(model=SYNTH_MODEL, prompt_tokens=40, completion_tokens=3)
    assert usage.cost == pytest.approx(sum(expected_cost)) and usage.cost > 0
    assert invocation["outer"]["cost"] == pytest.approx(usage.cost)
    assert trace["cost"] == pytest.approx(usage.cost)
    if stream:
        # The direct answer streamed as the outer model wrote it, not as one block at the end.
        assert sum(1 for c in result if c.choices and c.choices[0].delta.content) >= 3


@pytest.mark.parametrize(("sync", "stream"), MODES, ids=MODE_IDS)
async def test_auto_tool_call_runs_the_panel(upstream_server: ScriptedServer, spec: dict[str, Any], sync: bool, stream: bool) -> None:
    upstream_server.set_script(SYNTH, outer_calls_panel())
    result = await fusion_call(sync=sync, stream=stream, fusion={**spec, "invocation": "auto"})

    assert text_of(result) == SYNTH_TEXT
    models = [r.model for r in upstream_server.requests]
    assert models[0] == SYNTH and models[-1] == SYNTH and sorted(models[1:4]) == sorted(PANEL) and models[4] == JUDGE
    for request in upstream_server.requests[1:4]:
        assert request.body["messages"] == focused_messages(MESSAGES, FOCUS), "the panel sees the conversation and the question"
        assert "tools" not in request.body
    synthesis = upstream_server.requests[-1].body
    assert FUSION_TOOL_NAME not in tool_names(synthesis), "the synthesizer never gets the panel tool"
    trace = trace_of(result)
    assert trace["invocation"]["invoked"] is True and trace["invocation"]["question"] == FOCUS
    assert len(trace["panel"]) == 3 and trace["synthesizer"]["status"] == "ok"
    records_cost = trace["invocation"]["outer"]["cost"] + sum(m["cost"] for m in trace["panel"]) + trace["judge"]["cost"]
    records_cost += trace["synthesizer"]["cost"]
    assert usage_of(result).cost == pytest.approx(records_cost)
    if stream:
        assert not any(c.choices and c.choices[0].delta.tool_calls for c in result), "the panel tool call is never forwarded"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_required_forces_the_tool(upstream_server: ScriptedServer, spec: dict[str, Any], stream: bool) -> None:
    upstream_server.set_script(SYNTH, outer_calls_panel(question=None))
    result = await fusion_call(stream=stream, fusion={**spec, "invocation": "required"})

    assert text_of(result) == SYNTH_TEXT
    outer = upstream_server.requests[0].body
    assert outer["tool_choice"] == {"type": "function", "function": {"name": FUSION_TOOL_NAME}}
    assert upstream_server.requests[1].body["messages"] == MESSAGES, "no focused question: the conversation alone"
    assert trace_of(result)["invocation"] == {**trace_of(result)["invocation"], "mode": "required", "invoked": True, "question": None}


async def test_required_runs_the_panel_even_when_the_model_ignores_tool_choice(
    upstream_server: ScriptedServer, spec: dict[str, Any]
) -> None:
    upstream_server.set_script(SYNTH, [Script(text="I will just answer."), Script(text=SYNTH_TEXT)])
    result = await fusion_call(fusion={**spec, "invocation": "required"})
    assert text_of(result) == SYNTH_TEXT
    assert len(upstream_server.requests) == 6
    assert "did not call the tool" in trace_of(result)["invocation"]["reason"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_client_tools_still_work(upstream_server: ScriptedServer, spec: dict[str, Any], stream: bool) -> None:
    upstream_server.set_script(SYNTH, Script(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    result = await fusion_call(stream=stream, fusion={**spec, "invocation": "auto"}, tools=[CLIENT_TOOL])

    assert [r.model for r in upstream_server.requests] == [SYNTH]
    assert tool_names(upstream_server.requests[0].body) == ["get_weather", FUSION_TOOL_NAME]
    if stream:
        calls = [tc for c in result if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
        assert calls[0].function.name == "get_weather"
        assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris"}
    else:
        (tool_call,) = result.choices[0].message.tool_calls
        assert tool_call.function.name == "get_weather" and json.loads(tool_call.function.arguments) == {"city": "Paris"}
        assert result.choices[0].finish_reason == "tool_calls"
    assert trace_of(result)["invocation"]["reason"] == "the outer model called the client's tools"


async def test_panel_call_keeps_client_tools_for_the_synthesizer(upstream_server: ScriptedServer, spec: dict[str, Any]) -> None:
    upstream_server.set_script(SYNTH, outer_calls_panel())
    await fusion_call(fusion={**spec, "invocation": "auto"}, tools=[CLIENT_TOOL])
    assert tool_names(upstream_server.requests[-1].body) == ["get_weather"]


TEXT_CALL = f'{{"name": "{FUSION_TOOL_NAME}", "arguments": {{"question": "{FOCUS}"}}}}'


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    "text",
    [f"<tool_call>\n{TEXT_CALL}\n</tool_call>", f"```json\n{TEXT_CALL}\n```", TEXT_CALL, f"```json\n{TEXT_CALL}\n```\nAnswer: 153"],
    ids=["tagged", "fenced", "bare", "fenced-then-invented-result"],
)
async def test_tool_call_written_as_text_calls_the_panel(
    upstream_server: ScriptedServer, spec: dict[str, Any], stream: bool, text: str
) -> None:
    """llama-cpp-python with a model's own chat template returns the call as text (Qwen: tagged or fenced)."""
    upstream_server.set_script(SYNTH, [Script(text=text, chunk_chars=5), Script(text=SYNTH_TEXT)])
    result = await fusion_call(stream=stream, fusion={**spec, "invocation": "auto"})
    assert text_of(result) == SYNTH_TEXT, "the call's text is never forwarded"
    assert trace_of(result)["invocation"]["question"] == FOCUS
    assert len(upstream_server.requests) == 6


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    "text",
    ["<tool_call> is how some models write calls; this is an answer.", "```python\nprint(42)\n```", '{"name": "other", "x": 1}'],
    ids=["tag-prose", "code-fence", "other-json"],
)
async def test_text_that_only_looks_like_a_tool_call_is_forwarded(
    upstream_server: ScriptedServer, spec: dict[str, Any], stream: bool, text: str
) -> None:
    upstream_server.set_script(SYNTH, Script(text=text, chunk_chars=4))
    result = await fusion_call(stream=stream, fusion={**spec, "invocation": "auto"})
    assert text_of(result) == text
    assert len(upstream_server.requests) == 1


async def test_outer_call_failure_falls_back_to_the_panel(upstream_server: ScriptedServer, spec: dict[str, Any]) -> None:
    upstream_server.set_script(SYNTH, [Script(status=500, error_message="outer down"), Script(text=SYNTH_TEXT)])
    result = await fusion_call(fusion={**spec, "invocation": "auto", "num_retries": 0})
    assert text_of(result) == SYNTH_TEXT
    invocation = trace_of(result)["invocation"]
    assert invocation["invoked"] is True and invocation["outer"]["status"] == "error"
    assert "outer call failed" in invocation["reason"]


async def test_always_makes_no_outer_call(upstream_server: ScriptedServer, spec: dict[str, Any]) -> None:
    result = await fusion_call(fusion=spec)
    assert [r.model for r in upstream_server.requests].count(SYNTH) == 1
    assert trace_of(result)["invocation"]["mode"] == "always"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_server_tool_shape_means_auto(upstream_server: ScriptedServer, spec: dict[str, Any], stream: bool) -> None:
    upstream_server.set_script(SYNTH, Script(text=DIRECT))
    server_tool = {"type": "openrouter:fusion", "parameters": {"analysis_models": spec["panel"][:2]}}
    result = await fusion_call(stream=stream, fusion=spec, tools=[server_tool, CLIENT_TOOL])
    assert text_of(result) == DIRECT
    assert tool_names(upstream_server.requests[0].body) == ["get_weather", FUSION_TOOL_NAME]
    assert trace_of(result)["invocation"]["mode"] == "auto"


async def test_server_tool_with_tool_choice_required_forces_the_panel(upstream_server: ScriptedServer, spec: dict[str, Any]) -> None:
    upstream_server.set_script(SYNTH, outer_calls_panel())
    server_tool = {"type": "openrouter:fusion", "parameters": {"analysis_models": spec["panel"][:2]}}
    without_panel = {k: v for k, v in spec.items() if k != "panel"}  # a `fusion` field's panel would win over the tool's
    result = await fusion_call(fusion=without_panel, tools=[server_tool], tool_choice="required")
    assert text_of(result) == SYNTH_TEXT
    trace = trace_of(result)
    assert trace["invocation"]["mode"] == "required"
    assert len(trace["panel"]) == 2, "analysis_models replaced the panel"
    assert "tools" not in upstream_server.requests[-1].body and "tool_choice" not in upstream_server.requests[-1].body


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"fusion_patch": {"invocation": "sometimes"}}, "fusion.invocation"),
        ({"tools": [{"type": "function", "function": {"name": FUSION_TOOL_NAME, "parameters": {}}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "openrouter:fusion", "parameters": {"analysis_models": ["x"], "judges": 2}}]}, "tools[0].parameters.judges"),
        ({"tools": [{"type": "openrouter:fusion", "parameters": [1]}]}, "tools[0].parameters"),
    ],
    ids=["unknown-invocation", "tool-name-clash", "server-tool-unknown-parameter", "server-tool-parameters-not-object"],
)
async def test_bad_input_is_a_400_with_no_upstream_call(
    upstream_server: ScriptedServer, spec: dict[str, Any], extra: dict[str, Any], field: str
) -> None:
    fusion = {**spec, **extra.pop("fusion_patch", {})}
    with pytest.raises(litellm.BadRequestError) as caught:
        await fusion_call(fusion=fusion, **extra)
    assert field in str(caught.value)
    assert upstream_server.requests == []


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_nested_calls_carry_the_depth_header(upstream_server: ScriptedServer, spec: dict[str, Any], stream: bool) -> None:
    upstream_server.set_script(SYNTH, outer_calls_panel())
    await fusion_call(stream=stream, fusion={**spec, "invocation": "auto"})
    assert len(upstream_server.requests) == 6
    assert {r.headers.get(DEPTH_HEADER) for r in upstream_server.requests} == {"1"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("invocation", ["always", "auto", "required"])
async def test_depth_one_answers_as_a_single_call(
    upstream_server: ScriptedServer, spec: dict[str, Any], invocation: str, stream: bool
) -> None:
    """What a proxy does with a fusion request from another fusion: one call, no tool, no fan-out."""
    upstream_server.set_script(SYNTH, Script(text=DIRECT))
    proxied = {"headers": {DEPTH_HEADER: "1"}}
    result = await fusion_call(stream=stream, fusion={**spec, "invocation": invocation}, proxy_server_request=proxied)
    assert text_of(result) == DIRECT
    assert [r.model for r in upstream_server.requests] == [SYNTH]
    assert "tools" not in upstream_server.requests[0].body
    assert upstream_server.requests[0].headers[DEPTH_HEADER] == "2"
    invocation_trace = trace_of(result)["invocation"]
    assert invocation_trace["mode"] == "single" and invocation_trace["invoked"] is False and invocation_trace["depth"] == 1


async def test_outer_call_is_on_the_trace_timeline(upstream_server: ScriptedServer, spec: dict[str, Any]) -> None:
    upstream_server.set_script(SYNTH, outer_calls_panel())
    trace = trace_of(await fusion_call(fusion={**spec, "invocation": "auto"}))
    outer_start = trace["invocation"]["outer"]["start_ms"]
    assert outer_start is not None and 0 <= outer_start
    assert all(m["start_ms"] >= outer_start + trace["invocation"]["outer"]["latency_ms"] - 1 for m in trace["panel"]), (
        "the panel starts after it"
    )


def reasoning_of(chunks: list[Any]) -> tuple[str, int, int]:
    """The stream's progress text, the index of its last reasoning chunk and of its first content chunk."""
    marks = [(i, c.choices[0].delta) for i, c in enumerate(chunks) if c.choices]
    reasoning = [(i, d.reasoning_content) for i, d in marks if getattr(d, "reasoning_content", None)]
    first_content = min(i for i, d in marks if d.content)
    return "".join(r for _, r in reasoning), max(i for i, _ in reasoning), first_content


async def test_auto_progress_says_the_writer_decides_and_a_direct_answer_follows(upstream_server: ScriptedServer, spec: dict[str, Any]):
    upstream_server.set_script(SYNTH, Script(text=DIRECT, chunk_chars=3))
    chunks = await fusion_call(stream=True, fusion={**spec, "invocation": "auto"})
    text, last_reasoning, first_content = reasoning_of(chunks)
    panel = ", ".join(PANEL_MODELS)
    assert text == f"Fusion test: writer {SYNTH_MODEL} decides whether to ask its panel of 3 models ({panel}); judge {JUDGE_MODEL}.\n"
    assert last_reasoning < first_content and text_of(chunks) == DIRECT


async def test_auto_progress_shows_the_panel_it_called_before_the_answer(upstream_server: ScriptedServer, spec: dict[str, Any]):
    upstream_server.set_script(SYNTH, outer_calls_panel())
    chunks = await fusion_call(stream=True, fusion={**spec, "invocation": "auto"})
    text, last_reasoning, first_content = reasoning_of(chunks)
    lines = text.splitlines()
    assert lines[0].startswith(f"Fusion test: writer {SYNTH_MODEL} decides whether to ask its panel")
    assert sum(line.endswith("is answering…") for line in lines) == 3 and sum(" answered in " in line for line in lines) == 3
    assert lines[-1] == f"Writer {SYNTH_MODEL} is writing the answer…" and last_reasoning < first_content
    assert text_of(chunks) == SYNTH_TEXT


async def test_closing_the_decision_stream_closes_the_outer_call_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from litellm_fusion._core.usage import UsageLedger
    from litellm_fusion._engine import invocation
    from litellm_fusion._spec.config import FusionSpec

    closed: list[bool] = []

    async def upstream_stream(**_: Any):
        try:
            for text in ("Par", "is", "."):
                yield SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=text, tool_calls=None), finish_reason=None)])
        finally:
            closed.append(True)

    async def never(**_: Any) -> Any:
        raise AssertionError("the fake stream makes no call")

    monkeypatch.setattr(invocation, "stream_synthesis", upstream_stream)
    spec = FusionSpec.model_validate({"panel": [PANEL[0]], "judge": JUDGE, "synthesizer": SYNTH, "invocation": "auto"})
    decision = invocation.stream_decision(
        mode="single", writer=spec.synthesizer, spec=spec, messages=MESSAGES, final_params={}, complete=never, ledger=UsageLedger()
    )
    first = await anext(decision)
    assert first.choices[0].delta.content == "Par"
    await decision.aclose()
    assert closed == [True], "the nested stream is closed with the outer one, not left to the finalizer"
