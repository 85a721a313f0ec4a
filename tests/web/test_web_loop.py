"""Web search and fetch through the client tool loop, end to end and offline.

Real LiteLLM over HTTP to the scripted model server; a SearXNG-compatible JSON endpoint and fixture pages
on 127.0.0.1, admitted by the fetcher only through the test allowance for that one port.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import litellm
import pytest
from aiohttp import web

from litellm_fusion import FusionLLM
from litellm_fusion._spec.config import PresetStore
from litellm_fusion._web.fetch import Fetcher, FetchLimits
from litellm_fusion.testing import Script, ScriptedServer, ToolCall

ARTICLE = """<html><head><title>The Lighthouse Report</title></head><body>
<nav>Home | About | NAV-MARKER</nav>
<article><h1>The Lighthouse Report</h1><p>The old lighthouse at Cape Fable was built in 1871 and is 43 metres tall.</p>
<p>See also <a href="{other}">the keeper's log</a>.</p></article>
<footer>FOOTER-MARKER</footer></body></html>"""


class FixtureSite:
    """A SearXNG-compatible /search plus fixture pages, on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        self.searches: list[str] = []
        self.fetched: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/search", self._search)
        app.router.add_get("/article", self._page)
        app.router.add_get("/keeper", self._page)
        app.router.add_get("/robots.txt", lambda r: web.Response(text="User-agent: *\nAllow: /\n"))
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> FixtureSite:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _search(self, request: web.Request) -> web.Response:
        assert request.query.get("format") == "json"
        self.searches.append(request.query["q"])
        results = [
            {"title": "The Lighthouse Report", "url": f"{self.base}/article", "content": "Cape Fable lighthouse facts", "engine": "fake"},
            {"title": "Unrelated", "url": f"{self.base}/keeper", "content": "a keeper", "engine": "fake"},
        ]
        return web.json_response({"query": request.query["q"], "results": results})

    async def _page(self, request: web.Request) -> web.Response:
        self.fetched.append(request.path)
        if request.path == "/keeper":
            return web.Response(
                text="<html><title>Keeper's log</title><body><p>Lit every night.</p></body></html>", content_type="text/html"
            )
        return web.Response(text=ARTICLE.format(other=f"{self.base}/keeper"), content_type="text/html")


@pytest.fixture(scope="module")
def site():
    fixture = FixtureSite().start()
    yield fixture
    fixture.stop()


@pytest.fixture
def models():
    with ScriptedServer(default=Script(text="plain answer")) as server:
        yield server


@pytest.fixture
def handler(site):
    """A FusionLLM whose fetcher admits exactly the fixture site's port (never a default)."""

    def fetcher_factory(spec):
        limits = FetchLimits(max_chars=spec.max_chars, timeout=spec.timeout, allowed_ports=frozenset({site.port}), respect_robots=True)
        return Fetcher(limits, allow=lambda ip, port: str(ip) == "127.0.0.1" and port == site.port)

    handler = FusionLLM(presets=PresetStore(), fetcher_factory=fetcher_factory)
    saved = litellm.custom_provider_map
    litellm.custom_provider_map = [{"provider": "webfusion", "custom_handler": handler}]
    yield handler
    litellm.custom_provider_map = saved


def member(models: ScriptedServer, name: str, **extra: Any) -> dict[str, Any]:
    return {"model": f"openai/{name}", "api_base": models.base_url, "api_key": "sk-up", **extra}


def spec(models: ScriptedServer, site: FixtureSite, **web: Any) -> dict[str, Any]:
    return {
        "panel": [member(models, "gpt-4o-mini"), member(models, "gpt-4.1-mini")],
        "judge": member(models, "gpt-4o"),
        "synthesizer": member(models, "gpt-4.1"),
        "min_quorum": 1,
        "web": {"mode": "client", "search": {"provider": "searxng", "api_base": site.base}, **web},
    }


def researcher(site: FixtureSite, final: str) -> list[Script]:
    """A member that searches, then fetches the article from the results, then answers citing it."""
    return [
        Script(tool_calls=[ToolCall("web_search", {"query": "Cape Fable lighthouse height"})]),
        Script(tool_calls=[ToolCall("web_fetch", {"url": f"{site.base}/article"})]),
        Script(text=final),
    ]


def ask(**kwargs: Any) -> Any:
    return litellm.completion(
        model="webfusion/research", messages=[{"role": "user", "content": "How tall is the Cape Fable lighthouse?"}], **kwargs
    )


def test_members_search_fetch_and_cite_and_the_judge_sees_the_sources(models, site, handler):
    models.set_script("gpt-4o-mini", researcher(site, f"It is 43 metres tall (built 1871). Source: {site.base}/article"))
    response = ask(fusion=spec(models, site))
    trace = response._hidden_params["fusion"]
    researcher_trace = next(p for p in trace["panel"] if p["model"] == "openai/gpt-4o-mini")
    assert researcher_trace["web"] == "client" and researcher_trace["status"] == "ok"
    assert [c["name"] for c in researcher_trace["tool_calls"]] == ["web_search", "web_fetch"]
    assert all(c["status"] == "ok" for c in researcher_trace["tool_calls"])
    urls = {s["url"] for s in researcher_trace["sources"]}
    assert f"{site.base}/article" in urls
    assert {"url": f"{site.base}/article", "title": "The Lighthouse Report"} in researcher_trace["sources"]
    assert site.fetched.count("/article") >= 1

    # The member saw the page text as untrusted JSON, boilerplate removed; the assistant tool-call turn was replayed.
    third = models.requests_for("gpt-4o-mini")[2].body["messages"]
    tool_turn = next(m for m in third if m["role"] == "tool" and "metres" in m["content"])
    page = json.loads(tool_turn["content"])
    assert "untrusted" in page["note"] and "43 metres" in page["content"] and "FOOTER-MARKER" not in page["content"]
    assert any(m["role"] == "assistant" and m.get("tool_calls") for m in third)
    assert third[0]["role"] == "system" and "untrusted" in third[0]["content"]

    judge_prompt = models.requests_for("gpt-4o")[0].body["messages"][1]["content"]
    assert "[Web sources this answer used]" in judge_prompt and f"{site.base}/article" in judge_prompt


def test_web_searches_and_fetches_are_reported_as_progress(models, site, handler):
    from litellm_fusion._engine import progress

    models.set_script("gpt-4o-mini", researcher(site, f"It is 43 metres tall (built 1871). Source: {site.base}/article"))
    events: list[progress.ProgressEvent] = []
    with progress.listening(events.append):
        chunks = list(ask(fusion=spec(models, site), stream=True))
    web = [e for e in events if isinstance(e, progress.WebToolCalled)]
    assert [(e.index, e.model, e.tool, e.argument, e.status) for e in web] == [
        (0, "openai/gpt-4o-mini", "web_search", "Cape Fable lighthouse height", "ok"),
        (0, "openai/gpt-4o-mini", "web_fetch", f"{site.base}/article", "ok"),
    ]
    assert all(0 <= e.started_ms <= e.at_ms and e.latency_ms > 0 for e in web) and web[0].at_ms <= web[1].started_ms
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert "\n  - openai/gpt-4o-mini searched “Cape Fable lighthouse height” in " in reasoning
    assert f"\n  - openai/gpt-4o-mini read “{site.base}/article” in " in reasoning
    searched = reasoning.index("searched “Cape")
    assert reasoning.index("- openai/gpt-4o-mini is answering") < searched < reasoning.index("- openai/gpt-4o-mini answered in")


def test_a_member_cannot_fetch_a_url_it_never_saw(models, site, handler):
    invented = f"{site.base}/keeper?exfiltrate=secret"
    models.set_script("gpt-4o-mini", [Script(tool_calls=[ToolCall("web_fetch", {"url": invented})]), Script(text="gave up")])
    response = ask(fusion=spec(models, site))
    calls = next(p for p in response.fusion["panel"] if p["model"] == "openai/gpt-4o-mini")["tool_calls"]
    assert calls[0]["status"] == "refused" and "not in the conversation" in calls[0]["error"]
    assert "/keeper" not in site.fetched


def test_tool_budget_is_enforced_and_a_last_call_forces_an_answer(models, site, handler):
    three = [ToolCall("web_search", {"query": q}) for q in ("a", "b", "c")]
    models.set_script("gpt-4o-mini", [Script(tool_calls=three), Script(text="best effort")])
    response = ask(fusion=spec(models, site, max_tool_calls=2))
    member_trace = next(p for p in response.fusion["panel"] if p["model"] == "openai/gpt-4o-mini")
    statuses = [c["status"] for c in member_trace["tool_calls"]]
    assert statuses == ["ok", "ok", "refused"]
    requests = models.requests_for("gpt-4o-mini")
    assert len(requests) == 2, "budget spent after the first step: the next call is the forced final one"
    assert requests[-1].body["tool_choice"] == "none"
    assert member_trace["status"] == "ok" and member_trace["content"] == "best effort"


def test_a_model_without_function_calling_gets_one_search_up_front(models, site, handler):
    fusion = spec(models, site)
    fusion["panel"] = [member(models, "my-local-model"), member(models, "gpt-4.1-mini")]
    fusion["web"]["mode"] = "auto"
    response = ask(fusion=fusion)
    local = next(p for p in response.fusion["panel"] if p["model"] == "openai/my-local-model")
    assert local["web"] == "presearch" and local["tool_calls"][0]["name"] == "web_search"
    body = models.requests_for("my-local-model")[0].body
    assert "tools" not in body
    assert any(m["role"] == "system" and "Lighthouse Report" in m["content"] for m in body["messages"])
    assert site.searches and "Cape Fable" in site.searches[-1]


def test_client_mode_without_a_search_backend_is_a_400_before_any_call(models, site, handler, monkeypatch):
    monkeypatch.delenv("SEARXNG_API_BASE", raising=False)
    fusion = spec(models, site)
    fusion["web"]["search"] = {"provider": "searxng"}
    with pytest.raises(litellm.BadRequestError, match="web search needs a backend"):
        ask(fusion=fusion)
    assert models.stats()["total"] == 0


def test_a_blocked_fetch_is_a_tool_error_not_a_failure(models, site, handler):
    metadata = "http://169.254.169.254/latest/meta-data/"
    prompt = f"Summarise {metadata}"
    models.set_script("gpt-4o-mini", [Script(tool_calls=[ToolCall("web_fetch", {"url": metadata})]), Script(text="could not read it")])
    response = litellm.completion(model="webfusion/research", messages=[{"role": "user", "content": prompt}], fusion=spec(models, site))
    call = next(p for p in response.fusion["panel"] if p["model"] == "openai/gpt-4o-mini")["tool_calls"][0]
    assert call["status"] == "error" and "blocked" in call["error"]
    tool_turn = next(m for m in models.requests_for("gpt-4o-mini")[1].body["messages"] if m["role"] == "tool")
    assert "blocked" in json.loads(tool_turn["content"])["error"]


@pytest.mark.parametrize(
    ("member_spec", "mode", "expected"),
    [
        ({"model": "anthropic/claude-haiku-4-5"}, "auto", "native"),
        ({"model": "gemini/gemini-3.5-flash"}, "auto", "native"),
        ({"model": "openai/gpt-5.4"}, "auto", "native"),
        # OpenAI's hosted tools do not exist behind a custom api_base (vLLM, llama.cpp, a test server).
        ({"model": "openai/gpt-5.4", "api_base": "http://127.0.0.1:9/v1"}, "auto", "client"),
        ({"model": "openai/my-local-model", "api_base": "http://127.0.0.1:9/v1"}, "auto", "presearch"),
        ({"model": "openai/my-local-model", "api_base": "http://127.0.0.1:9/v1"}, "client", "client"),
        ({"model": "anthropic/claude-haiku-4-5", "web": "off"}, "auto", "off"),
        ({"model": "anthropic/claude-haiku-4-5"}, "off", "off"),
    ],
)
def test_auto_picks_native_client_or_presearch_per_member(member_spec, mode, expected):
    from litellm_fusion._spec.config import FusionSpec
    from litellm_fusion._web.member import member_web_mode

    fusion = FusionSpec.model_validate({"panel": [member_spec], "judge": "openai/gpt-4o", "web": {"mode": mode}})
    assert member_web_mode(fusion.panel[0], fusion, {}) == expected


def test_forcing_native_on_a_provider_without_it_is_a_400():
    from litellm_fusion._core.errors import FusionConfigError
    from litellm_fusion._spec.config import FusionSpec
    from litellm_fusion._web.member import member_web_mode

    fusion = FusionSpec.model_validate({"panel": [{"model": "mistral/mistral-large-latest", "web": "native"}], "judge": "openai/gpt-4o"})
    with pytest.raises(FusionConfigError, match="no native web tools"):
        member_web_mode(fusion.panel[0], fusion, {})


async def test_inside_the_proxy_a_configured_search_tool_is_used(site, monkeypatch):
    """`search_tool_name` picks an entry of the Router's `search_tools`, with its provider, base and key."""
    from types import SimpleNamespace

    from litellm_fusion._spec.config import WebSearchSpec
    from litellm_fusion._web.search import make_search

    monkeypatch.setenv("FAKE_SEARX_KEY", "sk-search-secret")
    router = SimpleNamespace(
        search_tools=[
            {"search_tool_name": "other", "litellm_params": {"search_provider": "tavily"}},
            {"search_tool_name": "web", "litellm_params": {"search_provider": "searxng", "api_base": site.base, "api_key": "os.environ/FAKE_SEARX_KEY"}},
        ]
    )
    search = make_search(WebSearchSpec(search_tool_name="web"), router=router)
    outcome = await search("lighthouse", 5)
    assert outcome.error is None and [h.url for h in outcome.hits][0] == f"{site.base}/article"
    assert site.searches[-1] == "lighthouse"
    with pytest.raises(litellm.BadRequestError, match="no search tool 'missing'"):
        make_search(WebSearchSpec(search_tool_name="missing"), router=router)


def test_the_timeline_of_a_web_member_interleaves_its_model_and_tool_calls(models, site, handler):
    from litellm_fusion.report.timeline import timeline_of

    models.set_script("gpt-4o-mini", researcher(site, f"It is 43 metres tall. Source: {site.base}/article"))
    trace = ask(fusion=spec(models, site))._hidden_params["fusion"]
    member = next(p for p in trace["panel"] if p["model"] == "openai/gpt-4o-mini")
    calls = sorted(
        [("model", c["start_ms"], c["start_ms"] + c["latency_ms"]) for c in member["nested_calls"]]
        + [(c["name"], c["start_ms"], c["start_ms"] + c["latency_ms"]) for c in member["tool_calls"]],
        key=lambda c: c[1],
    )
    # model → search → model → fetch → model: each starts after the previous one ended (0.1 ms rounding).
    assert [kind for kind, _, _ in calls] == ["model", "web_search", "model", "web_fetch", "model"]
    assert all(later[1] >= earlier[2] - 0.2 for earlier, later in zip(calls, calls[1:], strict=False))
    assert member["start_ms"] <= calls[0][1] and calls[-1][2] <= member["start_ms"] + member["latency_ms"] + 0.2
    spans = [s for s in timeline_of(trace).calls if s.stage.endswith("openai/gpt-4o-mini")]
    assert [s.kind for s in spans] == ["model", "web_search", "model", "web_fetch", "model"]


def test_a_web_member_that_fails_mid_loop_lists_what_it_spent(models, site, handler):
    # The search round answers (and is billed), then the member's second call fails: the spent call belongs to
    # the member's own entry, not only to the request's totals.
    models.set_script(
        "gpt-4o-mini",
        [
            Script(tool_calls=[ToolCall("web_search", {"query": "Cape Fable lighthouse height"})], prompt_tokens=70, completion_tokens=9),
            Script(status=500, error_message="second-round-exploded"),
        ],
    )
    trace = ask(fusion=spec(models, site))._hidden_params["fusion"]
    member = next(p for p in trace["panel"] if p["model"] == "openai/gpt-4o-mini")
    assert member["status"] == "error" and "second-round-exploded" in member["error"]["message"]
    assert [c["usage"] for c in member["nested_calls"]] == [{"prompt_tokens": 70, "completion_tokens": 9, "total_tokens": 79}]
    assert member["usage"] == {"prompt_tokens": 70, "completion_tokens": 9, "total_tokens": 79}
    assert member["cost"] == member["nested_calls"][0]["cost"] is not None
    spent = [c for c in trace["calls"] if c["model"] == "openai/gpt-4o-mini"]
    assert spent == member["nested_calls"]  # the totals count exactly what the entry lists
