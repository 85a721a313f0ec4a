"""Native web plans: the request each one makes through real ``litellm.acompletion`` (LiteLLM 1.108.7).

A capture server on 127.0.0.1 records every request and answers with minimal provider-shaped JSON: Anthropic
messages, Gemini generateContent, OpenAI chat, OpenAI Responses. The answers carry citations, so
``test_web_citations`` reuses the server and the fixtures below to run the source normaliser end to end.
"""

from __future__ import annotations

import importlib.metadata
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
# 1.108.7 has no LITELLM_OFFLINE_MODE; this one stops it fetching the Anthropic beta-header map from GitHub.
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "true")

import copy  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from typing import Any  # noqa: E402

import litellm  # noqa: E402
import pytest  # noqa: E402

from litellm_fusion._web.native import is_native_refusal, is_server_tool_call, native_plan  # noqa: E402

WIKI = "https://en.wikipedia.org/wiki/Paris"
BRIT = "https://www.britannica.com/place/Paris"
FETCHED = "https://example.org/paris"
REDIRECT_A = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AAA"
REDIRECT_B = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/BBB"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
FETCH_FUNCTION = {
    "type": "function",
    "function": {
        "name": "web_fetch",
        "description": "Fetch a page",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}}},
    },
}

ANTHROPIC_RESPONSE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "capital of France"}},
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": [
                {"type": "web_search_result", "url": WIKI, "title": "Paris - Wikipedia", "encrypted_content": "e1", "page_age": None},
                {"type": "web_search_result", "url": BRIT, "title": "Paris | Britannica", "encrypted_content": "e2", "page_age": None},
            ],
        },
        {"type": "server_tool_use", "id": "srvtoolu_2", "name": "web_fetch", "input": {"url": FETCHED}},
        {
            "type": "web_fetch_tool_result",
            "tool_use_id": "srvtoolu_2",
            "content": {
                "type": "web_fetch_result",
                "url": FETCHED,
                "retrieved_at": "2025-09-10T00:00:00Z",
                "content": {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "Paris."},
                    "title": "Paris facts",
                },
            },
        },
        {
            "type": "text",
            "text": "Paris is the capital of France.",
            "citations": [
                {
                    "type": "web_search_result_location",
                    "url": WIKI,
                    "title": "Paris - Wikipedia",
                    "encrypted_index": "i",
                    "cited_text": "Paris is the capital",
                }
            ],
        },
    ],
    "usage": {"input_tokens": 10, "output_tokens": 5, "server_tool_use": {"web_search_requests": 1}},
}

GEMINI_RESPONSE: dict[str, Any] = {
    "candidates": [
        {
            "index": 0,
            "finishReason": "STOP",
            "content": {"role": "model", "parts": [{"text": "Paris is the capital of France."}]},
            "groundingMetadata": {
                "webSearchQueries": ["capital of France", "Paris capital"],
                "groundingChunks": [
                    {"web": {"uri": REDIRECT_A, "title": "wikipedia.org"}},
                    {"web": {"uri": REDIRECT_B, "title": "britannica.com"}},
                ],
                "groundingSupports": [
                    {"segment": {"startIndex": 0, "endIndex": 31, "text": "Paris is the capital of France."}, "groundingChunkIndices": [0]}
                ],
            },
            "urlContextMetadata": {
                "urlMetadata": [
                    {"retrievedUrl": FETCHED, "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"},
                    {"retrievedUrl": "https://example.org/broken", "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_ERROR"},
                ]
            },
        }
    ],
    "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
    "modelVersion": "gemini-2.5-flash",
}


def chat_response(
    model: str, content: str, *, annotations: list[Any] | None = None, usage: dict[str, Any] | None = None, **top: Any
) -> dict[str, Any]:
    """A minimal OpenAI chat completion body."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if annotations is not None:
        message["annotations"] = annotations
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, **(usage or {})},
        **top,
    }


def nested_citation(url: str, title: str, **extra: Any) -> dict[str, Any]:
    return {"type": "url_citation", "url_citation": {"url": url, "title": title, "start_index": 0, "end_index": 5, **extra}}


def responses_response(model: str, *, usage_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A minimal OpenAI Responses body: one web_search_call, one message with flat url_citation annotations."""
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": model,
        "output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "capital of France"}},
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": "Paris is the capital of France.",
                        "annotations": [
                            {"type": "url_citation", "start_index": 0, "end_index": 5, "url": WIKI, "title": "Paris - Wikipedia"},
                            {"type": "url_citation", "start_index": 6, "end_index": 9, "url": BRIT, "title": "Paris | Britannica"},
                            {"type": "url_citation", "start_index": 10, "end_index": 12, "url": WIKI, "title": "Paris - Wikipedia"},
                        ],
                    }
                ],
            },
        ],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "total_tokens": 15,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
            **(usage_extra or {}),
        },
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [{"type": "web_search"}],
        "text": {"format": {"type": "text"}},
        "metadata": {},
    }


# Chat completions answers, keyed by the model name the upstream sees.
CHAT_RESPONSES: dict[str, dict[str, Any]] = {
    "gpt-4o-search-preview": chat_response(
        "gpt-4o-search-preview",
        "Paris.",
        annotations=[nested_citation(WIKI, "Paris - Wikipedia"), nested_citation(BRIT, "Paris | Britannica")],
    ),
    "openai/gpt-4o": chat_response(  # OpenRouter: nested citations plus their page content, server tool usage
        "openai/gpt-4o",
        "Paris.",
        annotations=[
            nested_citation(BRIT, "Paris | Britannica", content="Paris, city and capital of France"),
            nested_citation(WIKI, "Paris - Wikipedia"),
        ],
        usage={"server_tool_use": {"web_search_requests": 2}},
    ),
    "sonar": chat_response(
        "sonar",
        "Paris [1] is the capital [2].",
        usage={"num_search_queries": 1},
        citations=[WIKI, FETCHED],
        search_results=[{"title": "Paris - Wikipedia", "url": WIKI, "date": None}, {"title": "Paris facts", "url": FETCHED}],
    ),
}
RESPONSES_RESPONSES: dict[str, dict[str, Any]] = {
    "gpt-5.4": responses_response("gpt-5.4"),
    "grok-4": responses_response(
        "grok-4", usage_extra={"server_side_tool_usage_details": {"web_search_calls": 3}, "num_server_side_tools_used": 3}
    ),
}


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class CaptureServer:
    """Records requests; answers by path (and by model for chat / Responses), or with ``fail`` once set."""

    base: str = ""
    requests: list[Captured] = field(default_factory=list)
    fail: tuple[int, dict[str, Any]] | None = None

    @property
    def last(self) -> Captured:
        return self.requests[-1]

    def answer(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        if self.fail is not None:
            return self.fail
        model = body.get("model") if isinstance(body, dict) else None
        if path.endswith("/v1/messages") or path.endswith(":rawPredict"):
            return 200, ANTHROPIC_RESPONSE
        if path.endswith(":generateContent"):
            return 200, GEMINI_RESPONSE
        if path.endswith("/responses") and model in RESPONSES_RESPONSES:
            return 200, RESPONSES_RESPONSES[model]
        if path.endswith("/chat/completions") and model in CHAT_RESPONSES:
            return 200, CHAT_RESPONSES[model]
        return 404, {"error": {"message": f"capture server: nothing for {path} model={model}", "type": "not_found"}}


@contextmanager
def running_capture_server() -> Iterator[CaptureServer]:
    """A :class:`CaptureServer` on 127.0.0.1 for the duration of the block."""
    server = CaptureServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            path = self.path.split("?")[0]
            server.requests.append(Captured(path=path, headers={k.lower(): v for k, v in self.headers.items()}, body=body))
            status, payload = server.answer(path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureServer]:
    with running_capture_server() as server:
        yield server


@pytest.fixture
def vertex_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_vertex_auth(monkeypatch)


def fake_vertex_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vertex needs a Google token; google-auth is not installed, so hand LiteLLM a fake one."""
    from litellm.llms.vertex_ai.vertex_llm_base import VertexBase

    async def token_async(self: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
        return "fake-token", "proj"

    monkeypatch.setattr(VertexBase, "get_access_token_async", token_async)
    monkeypatch.setattr(VertexBase, "get_access_token", lambda self, *args, **kwargs: ("fake-token", "proj"))


async def call_plan(capture: CaptureServer, model: str, *, tools_extra: list[Any] | None = None, **kwargs: Any) -> Any:
    """A real ``litellm.acompletion`` with ``native_plan(model)``'s model and extra, against the capture server."""
    plan = native_plan(model, max_uses=kwargs.pop("max_uses", 8))
    assert plan is not None
    extra = copy.deepcopy(plan.extra)
    if tools_extra:
        extra["tools"] = [*extra.get("tools", []), *tools_extra]
    kwargs.setdefault("api_key", "sk-fake")
    return await litellm.acompletion(model=plan.model, messages=MESSAGES, api_base=capture.base, max_retries=0, **extra, **kwargs)


# ---- plans (no network) ---------------------------------------------------------------------------------------


def test_plan_flags_per_provider() -> None:
    expected = {
        "anthropic/claude-haiku-4-5": ("anthropic", True, True),
        "vertex_ai/claude-sonnet-4-5": ("vertex_ai", False, True),
        "gemini/gemini-2.5-flash": ("gemini", True, False),
        "vertex_ai/gemini-2.5-flash": ("vertex_ai", True, False),
        "openai/gpt-4o-search-preview": ("openai", False, False),
        "openai/gpt-5.4": ("openai", False, True),
        "xai/grok-4": ("xai", False, True),
        "openrouter/openai/gpt-4o": ("openrouter", True, True),
        "perplexity/sonar": ("perplexity", False, False),
    }
    for model, (provider, has_fetch, mixes) in expected.items():
        plan = native_plan(model)
        assert plan is not None, model
        assert (plan.provider, plan.has_search, plan.has_fetch, plan.mixes_with_function_tools) == (provider, True, has_fetch, mixes), model
    assert native_plan("perplexity/sonar").extra == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "model",
    [
        "hosted_vllm/foo",
        "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
        "azure/gpt-5",
        "groq/openai/gpt-oss-120b",
        "mistral/mistral-large-latest",
        "openai/gpt-4o",  # no web-search flag in the model map, not gpt-5
        "vertex_ai/llama-3-70b",
        "not-a-known-model",
    ],
)
def test_no_native_plan(model: str) -> None:
    assert native_plan(model) is None


def test_openai_rewrites_to_responses_bridge() -> None:
    assert native_plan("openai/gpt-5.4").model == "openai/responses/gpt-5.4"  # type: ignore[union-attr]
    assert native_plan("gpt-4.1").model == "openai/responses/gpt-4.1"  # type: ignore[union-attr]  # map flag, bare name
    assert native_plan("openai/responses/gpt-5.4").model == "openai/responses/gpt-5.4"  # type: ignore[union-attr]  # already bridged
    assert native_plan("openai/gpt-5-search-api").model == "openai/gpt-5-search-api"  # type: ignore[union-attr]  # search model: chat


def test_aliases_detect_provider_and_keep_the_alias() -> None:
    aliases = {"claude": "anthropic/claude-haiku-4-5", "gpt": "openai/gpt-5.4", "searcher": "openai/gpt-4o-search-preview"}
    plan = native_plan("claude", aliases=aliases)
    assert plan is not None and plan.model == "claude" and plan.provider == "anthropic"
    assert native_plan("claude") is None  # without the alias the name means nothing
    assert native_plan("gpt", aliases=aliases) is None  # the Responses rewrite cannot apply to a Router name
    plan = native_plan("searcher", aliases=aliases)
    assert plan is not None and plan.model == "searcher" and "web_search_options" in plan.extra


def test_max_uses_reaches_every_capped_tool() -> None:
    anthropic = native_plan("anthropic/claude-haiku-4-5", max_uses=3)
    assert [t["max_uses"] for t in anthropic.extra["tools"]] == [3, 3]  # type: ignore[union-attr]
    openrouter = native_plan("openrouter/openai/gpt-4o", max_uses=3)
    search, fetch = openrouter.extra["tools"]  # type: ignore[union-attr]
    assert search["parameters"]["max_total_results"] == 15 and fetch["parameters"]["max_uses"] == 3
    assert native_plan("openai/gpt-5.4", max_uses=3).extra["max_tool_calls"] == 3  # type: ignore[union-attr]


# ---- request shapes through real LiteLLM ----------------------------------------------------------------------


async def test_anthropic_sends_search_and_fetch_with_fetch_beta(capture: CaptureServer) -> None:
    await call_plan(capture, "anthropic/claude-haiku-4-5", max_uses=3)
    req = capture.last
    assert req.path == "/v1/messages"
    assert req.body["tools"] == [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 3, "max_content_tokens": 20000},
    ]
    assert "web-fetch-2025-09-10" in req.headers.get("anthropic-beta", "").split(",")


async def test_anthropic_mixes_function_tools(capture: CaptureServer) -> None:
    response = await call_plan(capture, "anthropic/claude-haiku-4-5", tools_extra=[FETCH_FUNCTION])
    tools = capture.last.body["tools"]
    assert [t["type"] for t in tools] == ["web_search_20250305", "web_fetch_20250910", "custom"]
    assert tools[2]["name"] == "web_fetch"
    # LiteLLM 1.108.7 surfaces the server tool uses as tool calls, with finish_reason "stop" (1.110 does
    # not); either way none of them may look like a call for the client loop to run.
    calls = response.choices[0].message.tool_calls or []
    if importlib.metadata.version("litellm").startswith("1.108."):
        assert [c.function.name for c in calls] == ["web_search", "web_fetch"]
    assert all(is_server_tool_call(c) for c in calls)
    assert response.choices[0].finish_reason == "stop"


async def test_vertex_claude_gets_search_only(capture: CaptureServer, vertex_auth: None) -> None:
    await call_plan(capture, "vertex_ai/claude-sonnet-4-5", vertex_project="proj", vertex_location="us-east5")
    req = capture.last
    assert req.path.endswith("/publishers/anthropic/models/claude-sonnet-4-5:rawPredict")
    assert req.body["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}]
    assert req.headers.get("anthropic-beta") == "web-search-2025-03-05"


async def test_vertex_claude_would_not_send_fetch_beta(capture: CaptureServer, vertex_auth: None) -> None:
    """Why Vertex Claude has no native fetch: LiteLLM drops the web-fetch beta header there."""
    fetch = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 8}
    await call_plan(capture, "vertex_ai/claude-sonnet-4-5", tools_extra=[fetch], vertex_project="proj", vertex_location="us-east5")
    assert "web-fetch" not in capture.last.headers.get("anthropic-beta", "")


async def test_gemini_sends_google_search_and_url_context(capture: CaptureServer) -> None:
    await call_plan(capture, "gemini/gemini-2.5-flash")
    req = capture.last
    assert req.path == "/models/gemini-2.5-flash:generateContent"
    assert req.body["tools"] == [{"googleSearch": {}}, {"url_context": {}}]


async def test_gemini_drops_search_when_mixed_with_functions(capture: CaptureServer) -> None:
    """Why Gemini's plan says no function tools: LiteLLM silently keeps only the function declarations."""
    await call_plan(capture, "gemini/gemini-2.5-flash", tools_extra=[FETCH_FUNCTION])
    tools = capture.last.body["tools"]
    assert [list(t) for t in tools] == [["function_declarations"]]


async def test_vertex_gemini_sends_the_same_tools(capture: CaptureServer, vertex_auth: None) -> None:
    await call_plan(capture, "vertex_ai/gemini-2.5-flash", vertex_project="proj", vertex_location="us-central1")
    req = capture.last
    assert req.path.endswith("/publishers/google/models/gemini-2.5-flash:generateContent")
    assert req.body["tools"] == [{"googleSearch": {}}, {"url_context": {}}]


async def test_openai_search_model_sends_web_search_options(capture: CaptureServer) -> None:
    await call_plan(capture, "openai/gpt-4o-search-preview")
    req = capture.last
    assert req.path == "/chat/completions"
    assert req.body["model"] == "gpt-4o-search-preview"
    assert req.body["web_search_options"] == {"search_context_size": "medium"}
    assert "tools" not in req.body


async def test_openai_responses_bridge_posts_web_search_tool(capture: CaptureServer) -> None:
    await call_plan(capture, "openai/gpt-5.4", tools_extra=[FETCH_FUNCTION])
    req = capture.last
    assert req.path == "/responses"
    assert req.body["model"] == "gpt-5.4"
    assert req.body["max_tool_calls"] == 8
    assert req.body["tools"][0] == {"type": "web_search"}
    assert req.body["tools"][1]["type"] == "function" and req.body["tools"][1]["name"] == "web_fetch"


async def test_openai_regular_model_refuses_web_search_options(capture: CaptureServer) -> None:
    """Why regular OpenAI models are rewritten: chat refuses web_search_options before any request."""
    before = len(capture.requests)
    with pytest.raises(litellm.UnsupportedParamsError) as info:
        await litellm.acompletion(model="openai/gpt-5", messages=MESSAGES, api_base=capture.base, api_key="sk-fake", web_search_options={})
    assert len(capture.requests) == before
    assert is_native_refusal(info.value)


async def test_xai_web_search_options_bridge_to_responses(capture: CaptureServer) -> None:
    await call_plan(capture, "xai/grok-4", tools_extra=[FETCH_FUNCTION])
    req = capture.last
    assert req.path == "/responses"
    assert req.body["model"] == "grok-4"
    assert {"type": "web_search"} in req.body["tools"]
    assert any(t.get("type") == "function" and t.get("name") == "web_fetch" for t in req.body["tools"])
    assert "web_search_options" not in req.body


async def test_openrouter_server_tools_pass_through(capture: CaptureServer) -> None:
    plan = native_plan("openrouter/openai/gpt-4o")
    assert plan is not None
    await call_plan(capture, "openrouter/openai/gpt-4o", tools_extra=[FETCH_FUNCTION])
    req = capture.last
    assert req.path == "/chat/completions"
    assert req.body["model"] == "openai/gpt-4o"
    assert req.body["tools"] == [*plan.extra["tools"], FETCH_FUNCTION]


async def test_perplexity_sends_nothing_extra(capture: CaptureServer) -> None:
    await call_plan(capture, "perplexity/sonar")
    req = capture.last
    assert req.path == "/chat/completions" and req.body["model"] == "sonar"
    assert not {"tools", "web_search_options"} & set(req.body)


# ---- refusals -------------------------------------------------------------------------------------------------


async def _error_from(capture: CaptureServer, status: int, payload: dict[str, Any], model: str) -> BaseException:
    capture.fail = (status, payload)
    try:
        with pytest.raises(Exception) as info:
            await call_plan(capture, model)
    finally:
        capture.fail = None
    return info.value


async def test_anthropic_web_search_disabled_is_a_refusal(capture: CaptureServer) -> None:
    payload = {"type": "error", "error": {"type": "invalid_request_error", "message": "Web search is not enabled for your organization."}}
    exc = await _error_from(capture, 400, payload, "anthropic/claude-haiku-4-5")
    assert isinstance(exc, litellm.BadRequestError)
    assert is_native_refusal(exc)


async def test_openai_hosted_tool_unsupported_is_a_refusal(capture: CaptureServer) -> None:
    payload = {"error": {"message": "Tool 'web_search' is not supported with gpt-5.4.", "type": "invalid_request_error", "code": None}}
    exc = await _error_from(capture, 400, payload, "openai/gpt-5.4")
    assert isinstance(exc, litellm.BadRequestError)
    assert is_native_refusal(exc)


@pytest.mark.parametrize("model", ["openrouter/openai/gpt-4o", "openai/gpt-4o-search-preview", "gemini/gemini-2.5-flash"])
async def test_unprocessable_tool_error_is_a_refusal(capture: CaptureServer, model: str) -> None:
    payload = {"error": {"message": "unknown tool type in tools[0]", "type": "invalid_request_error", "code": 422}}
    exc = await _error_from(capture, 422, payload, model)
    # 1.108.7 maps an upstream 422 to BadRequestError, keeping the status code.
    assert isinstance(exc, litellm.BadRequestError) and exc.status_code == 422
    assert is_native_refusal(exc)


async def test_unrelated_bad_request_is_not_a_refusal(capture: CaptureServer) -> None:
    payload = {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: must be greater than 0"}}
    exc = await _error_from(capture, 400, payload, "anthropic/claude-haiku-4-5")
    assert isinstance(exc, litellm.BadRequestError)
    assert not is_native_refusal(exc)


async def test_server_errors_are_not_refusals(capture: CaptureServer) -> None:
    payload = {"type": "error", "error": {"type": "api_error", "message": "web search backend overloaded"}}
    exc = await _error_from(capture, 500, payload, "anthropic/claude-haiku-4-5")
    assert not is_native_refusal(exc)


def test_context_window_and_policy_errors_are_not_refusals() -> None:
    window = litellm.ContextWindowExceededError(message="prompt too long for tools", model="m", llm_provider="anthropic")
    policy = litellm.ContentPolicyViolationError(message="search blocked by policy", model="m", llm_provider="openai")
    assert window.status_code == 400 and policy.status_code == 400
    assert not is_native_refusal(window)
    assert not is_native_refusal(policy)
    assert not is_native_refusal(ValueError("tool"))
    assert is_native_refusal(litellm.BadRequestError(message="tools.0: unknown type", model="m", llm_provider="anthropic"))
    assert is_native_refusal(_unprocessable("url_context unsupported"))
    assert not is_native_refusal(_unprocessable("bad temperature"))
    assert not is_native_refusal(litellm.RateLimitError(message="web search rate limited", model="m", llm_provider="x"))


def _unprocessable(message: str) -> BaseException:
    import httpx

    response = httpx.Response(422, request=httpx.Request("POST", "http://127.0.0.1/"))
    return litellm.UnprocessableEntityError(message=message, model="m", llm_provider="x", response=response)


def test_is_server_tool_call_by_id() -> None:
    assert is_server_tool_call({"id": "srvtoolu_01", "type": "function"})
    assert not is_server_tool_call({"id": "call_01", "type": "function"})
    assert not is_server_tool_call({"type": "function"})
