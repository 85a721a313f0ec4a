"""End to end: ``invocation: auto | required``, the server-tool shape and the depth guard through real proxies.

Two ``litellm`` proxy processes: B serves a fusion deployment ``fz-b``; A serves its own fusion deployments,
one of whose panel members (``remote``) is B's ``fz-b`` called over HTTP. The upstream is a scripted server in
this process, so every nested call of both proxies is recorded with its headers.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402
import pytest  # noqa: E402
from e2e_support import Proxy, launch_proxy, responder  # noqa: E402

from litellm_fusion._engine.invocation import DEPTH_HEADER, FUSION_TOOL_NAME  # noqa: E402
from litellm_fusion.testing import Script, ScriptedServer, ToolCall  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
CUSTOM_PROVIDER_MAP = [{"provider": "fusion", "custom_handler": "litellm_fusion.fusion_llm"}]
PANEL_TEXT = "Paris (panel member)."
WRITER_DIRECT = "Paris, answered directly by the writer."
SYNTH_TEXT = "Paris: the fused answer."
FOCUS = "Name the capital of France."


def _solo(name: str, model: str, base: str) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_base": base, "api_key": f"sk-up-{name}"}}


def _fusion(name: str, **spec: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": f"fusion/{name}", "fusion": spec}}


def _settings() -> dict[str, Any]:
    return {"litellm_settings": {"custom_provider_map": CUSTOM_PROVIDER_MAP}, "router_settings": {"fallback_on_unsupported_params": False}}


@pytest.fixture(scope="module")
def upstream() -> ScriptedServer:
    with ScriptedServer() as server:
        yield server


@pytest.fixture(scope="module")
def proxies(upstream: ScriptedServer) -> tuple[Proxy, Proxy]:
    base = upstream.base_url
    solos = [_solo("m1", "openai/gpt-4o-mini", base), _solo("m2", "openai/gpt-4.1-mini", base), _solo("j", "openai/gpt-4o", base)]
    proxy_b = launch_proxy({"model_list": [*solos, _fusion("fz-b", panel=["m1", "m2"], judge="j")], **_settings()})
    remote = {
        "model_name": "remote",
        "litellm_params": {"model": "openai/fz-b", "api_base": proxy_b.base_url + "/v1", "api_key": proxy_b.master_key},
    }
    model_list_a = [
        *solos,
        remote,
        _fusion("fz-a", panel=["m1", "remote"], judge="j"),
        _fusion("fz-auto", panel=["m1", "m2"], judge="j", invocation="auto"),
        _fusion("fz-req", panel=["m1", "m2"], judge="j", invocation="required"),
        _fusion("fz-plain", panel=["m1", "m2"], judge="j"),
        {**_fusion("fz-tool", panel=["m1", "m2"], judge="j"), "model_info": {"fusion_server_tool": True}},
    ]
    settings_a = _settings()
    settings_a["litellm_settings"]["callbacks"] = ["litellm_fusion.fusion_server_tool"]
    proxy_a = launch_proxy({"model_list": model_list_a, **settings_a})
    try:
        yield proxy_a.wait_live(), proxy_b.wait_live()
    finally:
        proxy_a.stop()
        proxy_b.stop()


@pytest.fixture
def scripted(upstream: ScriptedServer) -> ScriptedServer:
    """Panel members answer PANEL_TEXT; ``j`` judges, synthesizes, and answers directly when asked plainly."""
    upstream.wait_idle(10.0)
    for model in ("gpt-4o-mini", "gpt-4.1-mini"):
        upstream.set_script(model, Script(text=PANEL_TEXT, prompt_tokens=50, completion_tokens=5))
    upstream.set_script("gpt-4o", Script(text=responder(WRITER_DIRECT, SYNTH_TEXT), prompt_tokens=70, completion_tokens=7))
    upstream.reset()
    return upstream


def _outer_calls_panel(server: ScriptedServer) -> None:
    server.set_script(
        "gpt-4o",
        [
            Script(tool_calls=[ToolCall(FUSION_TOOL_NAME, {"question": FOCUS})], prompt_tokens=70, completion_tokens=7),
            Script(text=responder(WRITER_DIRECT, SYNTH_TEXT), prompt_tokens=70, completion_tokens=7),
        ],
    )


def _complete(proxy: Proxy, stream: bool, **kwargs: Any) -> tuple[str, dict[str, Any], Any]:
    """(text, trace, usage) of one openai-client call to the proxy."""
    client = proxy.client()
    if not stream:
        response = client.chat.completions.create(messages=MESSAGES, **kwargs)
        return response.choices[0].message.content or "", response.model_extra["fusion"], response.usage
    chunks = list(client.chat.completions.create(messages=MESSAGES, stream=True, stream_options={"include_usage": True}, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    trace = next(
        (c.choices[0].delta.model_extra.get("provider_specific_fields") or {}).get("fusion")
        for c in chunks
        if c.choices and (c.choices[0].delta.model_extra.get("provider_specific_fields") or {}).get("fusion")
    )
    usage = next(c.usage for c in reversed(chunks) if c.usage is not None)
    return text, trace, usage


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_depth_guard_across_two_proxies(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer, stream: bool) -> None:
    """A's panel member is B's fusion: B gets depth 1 and answers with one call instead of fanning out again."""
    proxy_a, _ = proxies
    text, trace, _ = _complete(proxy_a, stream, model="fz-a")

    assert text == SYNTH_TEXT
    remote = next(m for m in trace["panel"] if m["model"] == "remote")
    assert remote["status"] == "ok" and remote["content"] == WRITER_DIRECT, "B answered as a single call of its writer"
    by_depth: dict[str | None, list[str]] = {}
    for request in scripted.requests:
        by_depth.setdefault(request.headers.get(DEPTH_HEADER), []).append(request.model)
    assert by_depth.get("2") == ["gpt-4o"], "B made exactly one nested call (its writer), marked depth 2"
    assert sorted(by_depth.get("1") or []) == ["gpt-4o", "gpt-4o", "gpt-4o-mini"], "A: one panel member, judge, synthesis"
    assert None not in by_depth, "every nested call says its depth"
    assert "gpt-4.1-mini" not in [r.model for r in scripted.requests], "B's panel (m1, m2) never ran"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_auto_direct_answer_through_the_proxy(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer, stream: bool) -> None:
    text, trace, usage = _complete(proxies[0], stream, model="fz-auto")
    assert text == WRITER_DIRECT
    assert [r.model for r in scripted.requests] == ["gpt-4o"]
    assert trace["invocation"]["invoked"] is False
    assert (usage.prompt_tokens, usage.completion_tokens) == (70, 7)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", ["fz-auto", "fz-req"])
def test_panel_tool_call_through_the_proxy(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer, model: str, stream: bool) -> None:
    _outer_calls_panel(scripted)
    text, trace, usage = _complete(proxies[0], stream, model=model)
    assert text == SYNTH_TEXT
    assert trace["invocation"]["invoked"] is True and trace["invocation"]["question"] == FOCUS
    assert sorted(r.model for r in scripted.requests) == ["gpt-4.1-mini", "gpt-4o", "gpt-4o", "gpt-4o", "gpt-4o-mini"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (70 * 3 + 50 * 2, 7 * 3 + 5 * 2), "outer + panel + judge + synthesis"
    if model == "fz-req":
        outer = scripted.requests[0].body
        assert outer["tool_choice"] == {"type": "function", "function": {"name": FUSION_TOOL_NAME}}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_server_tool_shape_on_a_fusion_deployment(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer, stream: bool) -> None:
    _outer_calls_panel(scripted)
    server_tool = {"type": "openrouter:fusion", "parameters": {"analysis_models": ["m2"], "model": "j"}}
    text, trace, _ = _complete(proxies[0], stream, model="fz-plain", tools=[server_tool])
    assert text == SYNTH_TEXT
    assert trace["invocation"]["mode"] == "auto" and trace["invocation"]["invoked"] is True
    assert [m["model"] for m in trace["panel"]] == ["m2"], "analysis_models replaced the panel"
    assert "tools" not in scripted.requests[-1].body, "the server tool never reaches the synthesizer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "fz-plain", "fusion": {"invocation": "sometimes"}}, "fusion.invocation"),
        (
            {"model": "fz-plain", "tools": [{"type": "openrouter:fusion", "parameters": {"analysis_models": ["not-here"]}}]},
            "fusion.panel[0]",
        ),
        ({"model": "fz-plain", "tools": [{"type": "openrouter:fusion", "parameters": {"judges": 3}}]}, "tools[0].parameters.judges"),
        (
            {"model": "fz-auto", "tools": [{"type": "function", "function": {"name": FUSION_TOOL_NAME, "parameters": {}}}]},
            "tools[0].function.name",
        ),
    ],
    ids=["unknown-invocation", "server-tool-model-not-allowed", "server-tool-unknown-parameter", "tool-name-clash"],
)
def test_bad_input_is_a_400_with_no_upstream_call(
    proxies: tuple[Proxy, Proxy], scripted: ScriptedServer, body: dict[str, Any], field: str
) -> None:
    with proxies[0].http() as http:
        response = http.post("/v1/chat/completions", json={"messages": MESSAGES, **body})
    assert response.status_code == 400, response.text
    assert field in response.text
    assert scripted.requests == []


def test_a_client_cannot_raise_the_depth_but_may_lower_the_fan_out(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer) -> None:
    """A client sending the header itself only gets a single call (never more work); a bad value is a 400."""
    with proxies[0].http() as http:
        single = http.post("/v1/chat/completions", json={"model": "fz-plain", "messages": MESSAGES}, headers={DEPTH_HEADER: "3"})
        bad = http.post("/v1/chat/completions", json={"model": "fz-plain", "messages": MESSAGES}, headers={DEPTH_HEADER: "-1"})
    assert single.status_code == 200 and single.json()["choices"][0]["message"]["content"] == WRITER_DIRECT
    assert [r.headers.get(DEPTH_HEADER) for r in scripted.requests] == ["4"]
    assert bad.status_code == 400 and DEPTH_HEADER in bad.text


def test_proxy_b_alone_still_fans_out(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer) -> None:
    """Without the header (a client of B), B runs its whole panel: the guard only stops a second fan-out."""
    _, proxy_b = proxies
    with httpx.Client(
        base_url=proxy_b.base_url, headers={"Authorization": f"Bearer {proxy_b.master_key}"}, timeout=60, trust_env=False
    ) as http:
        response = http.post("/v1/chat/completions", json={"model": "fz-b", "messages": MESSAGES})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == SYNTH_TEXT
    assert sorted(r.model for r in scripted.requests) == ["gpt-4.1-mini", "gpt-4o", "gpt-4o", "gpt-4o-mini"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_server_tool_on_a_non_fusion_model_direct_answer(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer, stream: bool) -> None:
    """Proxy A's pre-call hook re-points `m1` + the server tool at `fz-tool`, with m1 as the outer model."""
    server_tool = {"type": "openrouter:fusion", "parameters": {}}
    text, trace, usage = _complete(proxies[0], stream, model="m1", tools=[server_tool])
    assert text == PANEL_TEXT, "m1 answered directly"
    (outer,) = scripted.requests
    assert outer.model == "gpt-4o-mini" and [t["function"]["name"] for t in outer.body["tools"]] == [FUSION_TOOL_NAME]
    assert trace["invocation"]["mode"] == "auto" and trace["invocation"]["invoked"] is False
    assert trace["invocation"]["outer"]["model"] == "m1" and trace["preset"] == "fz-tool"
    assert (usage.prompt_tokens, usage.completion_tokens) == (50, 5)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_server_tool_on_a_non_fusion_model_calls_the_panel(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer, stream: bool) -> None:
    scripted.set_script(
        "gpt-4o-mini",
        [
            Script(tool_calls=[ToolCall(FUSION_TOOL_NAME, {"question": FOCUS})], prompt_tokens=50, completion_tokens=5),
            Script(text=responder(PANEL_TEXT, SYNTH_TEXT), prompt_tokens=50, completion_tokens=5),
        ],
    )
    server_tool = {"type": "openrouter:fusion", "parameters": {"analysis_models": ["m2"]}}
    text, trace, _ = _complete(proxies[0], stream, model="m1", tools=[server_tool])
    assert text == SYNTH_TEXT
    assert [m["model"] for m in trace["panel"]] == ["m2"] and trace["synthesizer"]["model"] == "m1"
    assert sorted(r.model for r in scripted.requests) == ["gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]


def test_server_tool_on_a_non_fusion_model_keeps_the_client_rules(proxies: tuple[Proxy, Proxy], scripted: ScriptedServer) -> None:
    server_tool = {"type": "openrouter:fusion", "parameters": {"analysis_models": ["not-here"]}}
    with proxies[0].http() as http:
        response = http.post("/v1/chat/completions", json={"model": "m1", "messages": MESSAGES, "tools": [server_tool]})
    assert response.status_code == 400 and "fusion.panel[0]" in response.text
    assert scripted.requests == []
