"""End to end: a real ``litellm`` proxy process serving ``fusion/<preset>`` deployments.

The upstream is a :class:`~litellm_fusion.testing.ScriptedServer` running in this test process (a thread),
so scripts change per test and every request the proxy's nested calls make is recorded. Clients call the
proxy with the ``openai`` SDK (raw ``httpx`` where status codes, headers or the body as sent matter).

Three proxy processes at most: the main one (module scope, a spend-probe callback), one running the
shipped ``config.example.yaml`` and one with ``--num_workers 2``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import openai  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from e2e_support import SPEND_PROBE_SOURCE, Proxy, launch_proxy, read_jsonl, responder  # noqa: E402

from litellm_fusion.testing import Script, ScriptedServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
CUSTOM_PROVIDER_MAP = [{"provider": "fusion", "custom_handler": "litellm_fusion.fusion_llm"}]

# Upstream model ids (as the scripted server sees them) -> (prompt_tokens, completion_tokens).
# Distinct, odd numbers so that a call counted twice or not at all changes the sum.
TOKENS: dict[str, tuple[int, int]] = {
    "gpt-4o-mini": (101, 11),
    "gpt-4.1-mini": (203, 17),
    "gpt-4o": (307, 29),
}
UPSTREAM_KEYS = {"gpt-4o-mini": "sk-up-1", "gpt-4.1-mini": "sk-up-2", "gpt-4o": "sk-up-3"}
PANEL_TEXT = {"gpt-4o-mini": "m1 says: Paris.", "gpt-4.1-mini": "m2 says: Paris, on the Seine."}
SYNTH_TEXT = "Paris is the capital of France; it sits on the Seine. Lyon is not the capital, whatever anyone says."
SECRET = "sk-client-secret-" + "7f3a9c"

# What the writers of config.example.yaml's two fusion models answer (its solo models run on the scripted server).
EXAMPLE_SYNTH = {"budget": "Budget fusion answer.", "frontier": "Frontier fusion answer."}


def _deployment(name: str, model: str, base: str, key: str) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_base": base, "api_key": key}}


def _fusion(name: str, **spec: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": f"fusion/{name}", "fusion": spec}}


def base_config(upstream_base: str) -> dict[str, Any]:
    """The main proxy: three solo deployments, failing ones, and the fusion deployments over them."""
    return {
        "model_list": [
            _deployment("m1", "openai/gpt-4o-mini", upstream_base, "sk-up-1"),
            _deployment("m2", "openai/gpt-4.1-mini", upstream_base, "sk-up-2"),
            _deployment("j", "openai/gpt-4o", upstream_base, "sk-up-3"),
            _deployment("b1", "openai/bad-1", upstream_base, "sk-up-4"),
            _deployment("b2", "openai/bad-2", upstream_base, "sk-up-5"),
            _fusion("fz", panel=["m1", "m2"], judge="j"),
            _fusion("fz-summary", panel=["m1", "m2"], judge="j", expose="summary"),
            # min_quorum 1: the panel waits for every member's own failure (no early give-up).
            _fusion("fz-broken", panel=["b1", "b2"], judge="j", min_quorum=1),
            _fusion("fz-dead", panel=["b1", "b2"], judge="j", min_quorum=1),
        ],
        "litellm_settings": {
            "custom_provider_map": CUSTOM_PROVIDER_MAP,
            "num_retries": 1,
            "fallbacks": [{"fz-broken": ["m1"]}],
        },
    }


def example_config(upstream_base: str) -> dict[str, Any]:
    """config.example.yaml with every solo deployment pointed at the scripted server."""
    config = yaml.safe_load((REPO / "config.example.yaml").read_text(encoding="utf-8"))
    for deployment in config["model_list"]:
        params = deployment["litellm_params"]
        if str(params["model"]).startswith("fusion/"):
            continue
        model_id = str(params["model"]).split("/", 1)[1]
        deployment["litellm_params"] = {"model": f"openai/{model_id}", "api_base": upstream_base, "api_key": "sk-up-example"}
    return config


def example_upstream_ids() -> dict[str, str]:
    """Model name -> upstream id of config.example.yaml's solo deployments."""
    config = yaml.safe_load((REPO / "config.example.yaml").read_text(encoding="utf-8"))
    return {
        d["model_name"]: str(d["litellm_params"]["model"]).split("/", 1)[1]
        for d in config["model_list"]
        if not str(d["litellm_params"]["model"]).startswith("fusion/")
    }


def install_scripts(server: ScriptedServer) -> None:
    for model, (prompt_tokens, completion_tokens) in TOKENS.items():
        text = responder(PANEL_TEXT.get(model, f"{model} says: Paris."), SYNTH_TEXT)
        server.set_script(model, Script(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, chunk_chars=7))
    server.set_script("bad-1", Script(status=500, error_message="bad-1 is down (scripted)"))
    server.set_script("bad-2", Script(status=500, error_message="bad-2 is down (scripted)"))
    ids = example_upstream_ids()
    # fusion-budget: the judge (and writer) is gpt-5.4-mini; fusion-frontier: claude-opus writes.
    for name, model_id in ids.items():
        synth = EXAMPLE_SYNTH["frontier"] if name == "claude-opus" else EXAMPLE_SYNTH["budget"]
        server.set_script(model_id, Script(text=responder(f"{name} says: Paris.", synth), prompt_tokens=50, completion_tokens=5))


# ----- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Any:
    """The scripted upstream, in a thread of this process."""
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def attacker() -> Any:
    """A listener a hostile client would like the proxy to send its keys to; it must never hear a thing."""
    server = ScriptedServer(default=Script(text="stolen")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def probe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe") / "spend.jsonl"


PROXY_FIXTURES = ("proxy", "example_proxy", "workers_proxy")


@pytest.fixture(scope="module")
def proxies(request: pytest.FixtureRequest, upstream: ScriptedServer, probe_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Launch, all at once, every proxy a selected test of this module needs; stop them all at the end.

    Startup is the slow part (imports), so overlapping the three startups saves most of a minute.
    """
    wanted = {
        name
        for item in request.session.items
        if item.module is request.module
        for name in getattr(item, "fixturenames", ())
        if name in PROXY_FIXTURES
    }
    launched: dict[str, Proxy] = {}
    try:
        if "proxy" in wanted:
            config = base_config(upstream.base_url)
            config["litellm_settings"]["callbacks"] = ["spend_probe.probe"]
            launched["proxy"] = launch_proxy(
                config,
                files={"spend_probe.py": SPEND_PROBE_SOURCE},
                env={"SPEND_PROBE_FILE": str(probe_file)},
                workdir=tmp_path_factory.mktemp("proxy-main"),
            )
        if "example_proxy" in wanted:
            launched["example_proxy"] = launch_proxy(example_config(upstream.base_url), workdir=tmp_path_factory.mktemp("proxy-example"))
        if "workers_proxy" in wanted:
            launched["workers_proxy"] = launch_proxy(
                base_config(upstream.base_url), workers=2, workdir=tmp_path_factory.mktemp("proxy-workers"), startup_timeout=150
            )
        yield launched
    finally:
        for running in launched.values():
            running.terminate()  # all at once: each takes seconds to shut down
        for running in launched.values():
            running.stop()


@pytest.fixture(scope="module")
def proxy(proxies: dict[str, Proxy]) -> Proxy:
    """The main proxy: ``base_config`` plus the spend-probe callback."""
    return proxies["proxy"].wait_live()


@pytest.fixture(scope="module")
def example_proxy(proxies: dict[str, Proxy]) -> Proxy:
    """``config.example.yaml`` with its solo models on the scripted server."""
    return proxies["example_proxy"].wait_live()


@pytest.fixture(scope="module")
def workers_proxy(proxies: dict[str, Proxy]) -> Proxy:
    """``base_config`` served by ``--num_workers 2``."""
    return proxies["workers_proxy"].wait_live()


@pytest.fixture(autouse=True)
def fresh_upstream(upstream: ScriptedServer, attacker: ScriptedServer, probe_file: Path) -> ScriptedServer:
    """Default scripts, no records, an empty spend log for every test."""
    upstream.wait_idle(10.0)
    install_scripts(upstream)
    upstream.reset()
    attacker.reset()
    if probe_file.exists():
        probe_file.write_text("", encoding="utf-8")
    return upstream


@pytest.fixture
def client(proxy: Proxy) -> Any:
    with proxy.client() as sdk:
        yield sdk


@pytest.fixture
def example_client(example_proxy: Proxy) -> Any:
    with example_proxy.client() as sdk:
        yield sdk


@pytest.fixture
def workers_client(workers_proxy: Proxy) -> Any:
    with workers_proxy.client() as sdk:
        yield sdk


# ----- helpers -----------------------------------------------------------------------------------------


def expected_cost(server: ScriptedServer) -> float:
    """LiteLLM's price of every request the upstream answered, from the scripted token counts."""
    total = 0.0
    for record in server.requests:
        prompt_tokens, completion_tokens = TOKENS[record.model]
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=record.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        total += prompt_cost + completion_cost
    assert total > 0
    return total


def expected_usage(server: ScriptedServer) -> tuple[int, int]:
    return (
        sum(TOKENS[r.model][0] for r in server.requests),
        sum(TOKENS[r.model][1] for r in server.requests),
    )


def trace_of(response: Any) -> dict[str, Any] | None:
    return (response.model_extra or {}).get("fusion")


def chunk_trace(chunk: Any) -> dict[str, Any] | None:
    if not chunk.choices:
        return None
    extra = chunk.choices[0].delta.model_extra or {}
    return (extra.get("provider_specific_fields") or {}).get("fusion")


def stream_chunks(client: openai.OpenAI, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("messages", MESSAGES)
    return list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def usage_chunk(chunks: list[Any]) -> Any:
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1, f"expected one usage chunk, got {len(with_usage)}"
    return with_usage[0]


def assert_standard_trace(trace: dict[str, Any] | None, *, panel: list[str], content: bool = True) -> None:
    """A complete, healthy trace of the ``fz``-style deployment: panel, letters, judge and synthesizer."""
    assert trace is not None, "no fusion trace in the response"
    assert [m["model"] for m in trace["panel"]] == panel
    assert [m["status"] for m in trace["panel"]] == ["ok"] * len(panel)
    assert sorted(trace["letters"]) == [chr(ord("A") + i) for i in range(len(panel))]
    assert sorted(trace["letters"].values()) == sorted(panel)
    assert {m["letter"] for m in trace["panel"]} == set(trace["letters"])
    for member in trace["panel"]:
        assert trace["letters"][member["letter"]] == member["model"]
        if content:
            upstream_id = {"m1": "gpt-4o-mini", "m2": "gpt-4.1-mini"}[member["model"]]
            assert member["content"] == PANEL_TEXT[upstream_id]
        else:
            assert "content" not in member, f"member text exposed: {member}"
    assert trace["judge"]["model"] == "j"
    assert trace["judge"]["status"] == "ok"
    assert trace["judge_failed"] is None
    assert trace["analysis"] is not None
    assert trace["synthesizer"]["model"] == "j"
    assert trace["synthesizer"]["status"] == "ok"
    assert trace["degraded"] is False
    assert trace["unpriced_models"] == []


def wait_for_probe(probe_file: Path, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Spend-log rows once ``predicate(rows)`` holds (the proxy logs after answering), plus a grace period."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = read_jsonl(probe_file)
        if predicate(rows):
            time.sleep(0.5)  # let any duplicate event arrive, so "exactly one" means something
            return read_jsonl(probe_file)
        time.sleep(0.05)
    return read_jsonl(probe_file)


def error_text(exc: openai.APIStatusError) -> str:
    try:
        return json.dumps(exc.response.json())
    except ValueError:
        return exc.response.text


# ----- 1-3. answer, trace, cost: non-stream, stream, logged spend ----------------------------------------


def test_non_stream_answer_trace_and_cost_header(client: openai.OpenAI, upstream: ScriptedServer):
    raw = client.chat.completions.with_raw_response.create(model="fz", messages=MESSAGES)
    response = raw.parse()

    assert response.choices[0].message.content == SYNTH_TEXT
    assert upstream.stats()["by_model"] == {"gpt-4o-mini": 1, "gpt-4.1-mini": 1, "gpt-4o": 2}
    assert all(r.body.get("stream") is not True for r in upstream.requests)
    trace = trace_of(response)
    assert_standard_trace(trace, panel=["m1", "m2"])

    expected = expected_cost(upstream)
    usage = response.usage.model_dump()
    assert usage["cost"] == pytest.approx(expected, rel=1e-9, abs=0)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == expected_usage(upstream)
    header = raw.headers.get("x-litellm-response-cost")
    assert header is not None, f"no x-litellm-response-cost header in {dict(raw.headers)}"
    assert float(header) == pytest.approx(usage["cost"], rel=1e-9, abs=0)
    assert trace["cost"] == pytest.approx(expected, rel=1e-9, abs=0)
    # Each call's cost in the trace is that call's own price.
    for member in trace["panel"]:
        upstream_id = {"m1": "gpt-4o-mini", "m2": "gpt-4.1-mini"}[member["model"]]
        prompt_tokens, completion_tokens = TOKENS[upstream_id]
        own = litellm.cost_per_token(model=upstream_id, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        assert member["cost"] == pytest.approx(sum(own), rel=1e-9)


def test_stream_text_trace_and_usage_cost(client: openai.OpenAI, upstream: ScriptedServer):
    plain = client.chat.completions.create(model="fz", messages=MESSAGES).choices[0].message.content
    upstream.reset()

    chunks = stream_chunks(client, model="fz")

    assert streamed_text(chunks) == plain == SYNTH_TEXT
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 3, "the answer did not really stream"
    with_trace = [i for i, c in enumerate(chunks) if chunk_trace(c) is not None]
    assert with_trace == [chunks.index(content_chunks[-1])], "the trace must ride on the last content chunk, and only there"
    assert_standard_trace(chunk_trace(content_chunks[-1]), panel=["m1", "m2"])

    synth = [r for r in upstream.requests if r.body.get("stream") is True]
    assert len(synth) == 1 and synth[0].model == "gpt-4o"
    assert upstream.stats()["by_model"] == {"gpt-4o-mini": 1, "gpt-4.1-mini": 1, "gpt-4o": 2}
    expected = expected_cost(upstream)
    usage = usage_chunk(chunks).usage.model_dump()
    assert usage["cost"] == pytest.approx(expected, rel=1e-9, abs=0)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == expected_usage(upstream)
    assert chunk_trace(content_chunks[-1])["cost"] == pytest.approx(expected, rel=1e-9, abs=0)


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_logged_spend_is_the_sum_and_nested_calls_are_not_charged_again(
    client: openai.OpenAI, upstream: ScriptedServer, probe_file: Path, stream: bool
):
    if stream:
        chunks = stream_chunks(client, model="fz")
        assert streamed_text(chunks) == SYNTH_TEXT
    else:
        assert client.chat.completions.create(model="fz", messages=MESSAGES).choices[0].message.content == SYNTH_TEXT
    expected = expected_cost(upstream)

    def complete(rows: list[dict[str, Any]]) -> bool:
        events = [r for r in rows if r["kind"] != "handler"]
        return any(r["provider"] == "fusion" for r in events) and sum(r["provider"] != "fusion" for r in events) >= 4

    rows = wait_for_probe(probe_file, complete)
    assert [(r["model"], r["stream"]) for r in rows if r["kind"] == "handler"] == [("fz", stream)]
    successes = [r for r in rows if r["kind"] == "success"]
    assert [r for r in rows if r["kind"] not in ("success", "handler")] == []
    outer = [r for r in successes if r["provider"] == "fusion"]
    assert len(outer) == 1, f"expected one logged fusion call, got {outer}"
    assert outer[0]["model"] == "fz"
    assert outer[0]["response_cost"] == pytest.approx(expected, rel=1e-9, abs=0)
    assert outer[0]["slo_cost"] == pytest.approx(expected, rel=1e-9, abs=0)
    assert outer[0]["user_api_key_hash"], "the outer call must be charged to the caller's key"

    nested = [r for r in successes if r["provider"] != "fusion"]
    assert sorted(r["model_group"] for r in nested) == ["j", "j", "m1", "m2"]
    for row in nested:
        assert row["user_api_key_hash"] is None and row["user_api_key"] is None, f"nested call charged to the caller: {row}"
    # The nested events are priced too (they are the parts of the sum), just not billed to the key again.
    assert sum(r["response_cost"] for r in nested) == pytest.approx(expected, rel=1e-9, abs=0)


# ----- 4. overrides ---------------------------------------------------------------------------------------


def test_request_fusion_panel_override(client: openai.OpenAI, upstream: ScriptedServer):
    response = client.chat.completions.create(model="fz", messages=MESSAGES, extra_body={"fusion": {"panel": ["m1"]}})
    assert response.choices[0].message.content == SYNTH_TEXT
    assert_standard_trace(trace_of(response), panel=["m1"])
    assert upstream.stats()["by_model"] == {"gpt-4o-mini": 1, "gpt-4o": 2}


def test_openrouter_plugins_shape(client: openai.OpenAI, upstream: ScriptedServer):
    response = client.chat.completions.create(
        model="fz", messages=MESSAGES, extra_body={"plugins": [{"id": "fusion", "analysis_models": ["m2"], "model": "j"}]}
    )
    assert response.choices[0].message.content == SYNTH_TEXT
    assert_standard_trace(trace_of(response), panel=["m2"])
    assert upstream.stats()["by_model"] == {"gpt-4.1-mini": 1, "gpt-4o": 2}


def test_openrouter_plugins_judge_model_is_used(client: openai.OpenAI, upstream: ScriptedServer):
    response = client.chat.completions.create(
        model="fz", messages=MESSAGES, extra_body={"plugins": [{"id": "fusion", "analysis_models": ["m1", "m2"], "model": "m2"}]}
    )
    trace = trace_of(response)
    assert trace["judge"]["model"] == "m2" and trace["synthesizer"]["model"] == "m2"
    # m2 answered as a member, then judged and wrote: three calls, none to j.
    assert upstream.stats()["by_model"] == {"gpt-4o-mini": 1, "gpt-4.1-mini": 3}
    assert response.choices[0].message.content == SYNTH_TEXT


# ----- 5. what a client may not do ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fusion", "field"),
    [
        ({"panel": [{"model": "m1", "api_base": "ATTACKER"}]}, "fusion.panel[0].api_base"),
        ({"panel": ["m1", {"model": "m2", "api_key": SECRET}]}, "fusion.panel[1].api_key"),
        ({"judge": {"model": "j", "api_key": SECRET}}, "fusion.judge.api_key"),
        ({"synthesizer": {"model": "j", "extra_params": {"api_base": "ATTACKER"}}}, "fusion.synthesizer.extra_params"),
        ({"panel": ["openai/gpt-4o"]}, "fusion.panel[0]"),
        ({"judge": {"model": "openai/gpt-4o", "api_base": "ATTACKER"}}, "fusion.judge.api_base"),
        ({"panel": ["fz-summary"]}, "fusion.panel[0]"),
    ],
    ids=["panel-api_base", "panel-api_key", "judge-api_key", "synth-extra_params", "raw-model", "judge-raw-endpoint", "nested-fusion"],
)
def test_client_cannot_bring_endpoints_keys_or_raw_models(
    client: openai.OpenAI, proxy: Proxy, upstream: ScriptedServer, attacker: ScriptedServer, fusion: dict[str, Any], field: str
):
    body = json.loads(json.dumps(fusion).replace("ATTACKER", attacker.base_url))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="fz", messages=MESSAGES, extra_body={"fusion": body})
    assert caught.value.status_code == 400
    message = error_text(caught.value)
    assert field in message, message
    assert SECRET not in message
    assert upstream.stats()["total"] == 0
    assert attacker.stats()["total"] == 0
    time.sleep(0.3)  # the proxy logs the failure after answering
    assert SECRET not in proxy.log_text()


def test_client_api_base_at_top_level_never_reaches_the_attacker(client: openai.OpenAI, attacker: ScriptedServer, upstream: ScriptedServer):
    for extra in ({"api_base": attacker.base_url}, {"base_url": attacker.base_url}):
        # LiteLLM's own guard refuses these before the handler runs (in 1.108.7 without prisma installed
        # its error handler turns that into a 500); either way nothing may leave for the attacker.
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="fz", messages=MESSAGES, extra_body=extra)
    assert attacker.stats()["total"] == 0
    assert upstream.stats()["total"] == 0


def test_upstream_sees_only_deployment_keys_never_client_headers_or_keys(client: openai.OpenAI, proxy: Proxy, upstream: ScriptedServer):
    client_key = "sk-client-key-" + "c0ffee"
    client.chat.completions.create(model="fz", messages=MESSAGES, extra_headers={"X-Evil": "1", "X-Client-Secret": client_key})
    chunks = stream_chunks(client, model="fz", extra_headers={"X-Evil": "1"})
    assert streamed_text(chunks) == SYNTH_TEXT

    records = upstream.requests
    assert len(records) >= 8
    for record in records:
        assert "x-evil" not in record.headers, f"client header forwarded to {record.model}"
        assert record.headers.get("authorization") == f"Bearer {UPSTREAM_KEYS[record.model]}"
        values = " ".join(record.headers.values()) + json.dumps(record.body)
        assert proxy.master_key not in values
        assert client_key not in values


def test_client_api_key_in_body_is_ignored_or_refused_by_name(client: openai.OpenAI, upstream: ScriptedServer):
    client_key = "sk-client-key-" + "beef01"
    try:
        response = client.chat.completions.create(model="fz", messages=MESSAGES, extra_body={"api_key": client_key})
    except openai.BadRequestError as exc:
        # Refusing a client credential is fine, if the error says that is the problem.
        assert "api_key" in error_text(exc), error_text(exc)
    else:
        assert response.choices[0].message.content == SYNTH_TEXT
        assert_standard_trace(trace_of(response), panel=["m1", "m2"])
    for record in upstream.requests:
        assert record.headers.get("authorization") == f"Bearer {UPSTREAM_KEYS[record.model]}"
        assert client_key not in json.dumps(record.body)


def test_members_use_their_deployments_credentials(client: openai.OpenAI, upstream: ScriptedServer):
    client.chat.completions.create(model="fz", messages=MESSAGES)
    auth = {(r.model, r.headers.get("authorization")) for r in upstream.requests}
    assert auth == {("gpt-4o-mini", "Bearer sk-up-1"), ("gpt-4.1-mini", "Bearer sk-up-2"), ("gpt-4o", "Bearer sk-up-3")}
    # The member is called as the deployment's model, not under the proxy alias.
    assert {r.body["model"] for r in upstream.requests} == {"gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"}


# ----- 5b. trace exposure -------------------------------------------------------------------------------------


@pytest.mark.parametrize("asked", [None, "full", "summary"])
def test_summary_deployment_never_returns_member_texts(client: openai.OpenAI, asked: str | None):
    extra = {"fusion": {"expose": asked}} if asked else None
    response = client.chat.completions.create(model="fz-summary", messages=MESSAGES, extra_body=extra)
    assert response.choices[0].message.content == SYNTH_TEXT
    trace = trace_of(response)
    assert_standard_trace(trace, panel=["m1", "m2"], content=False)
    assert "m1 says" not in json.dumps(response.model_dump()) and "m2 says" not in json.dumps(response.model_dump())
    assert trace["analysis"] is not None and trace["cost"] > 0


def test_summary_deployment_stream_has_no_member_texts(client: openai.OpenAI):
    chunks = stream_chunks(client, model="fz-summary", extra_body={"fusion": {"expose": "full"}})
    assert streamed_text(chunks) == SYNTH_TEXT
    traces = [chunk_trace(c) for c in chunks if chunk_trace(c) is not None]
    assert len(traces) == 1
    assert_standard_trace(traces[0], panel=["m1", "m2"], content=False)
    dumped = json.dumps([c.model_dump() for c in chunks])
    assert "m1 says" not in dumped and "m2 says" not in dumped


@pytest.mark.parametrize("model", ["fz", "fz-summary"])
def test_client_asking_expose_none_gets_no_trace(client: openai.OpenAI, model: str):
    response = client.chat.completions.create(model=model, messages=MESSAGES, extra_body={"fusion": {"expose": "none"}})
    assert response.choices[0].message.content == SYNTH_TEXT
    assert "fusion" not in response.model_dump()
    chunks = stream_chunks(client, model=model, extra_body={"fusion": {"expose": "none"}})
    assert streamed_text(chunks) == SYNTH_TEXT
    dumped = json.dumps([c.model_dump() for c in chunks])
    assert '"fusion"' not in dumped and "m1 says" not in dumped
    # Usage and cost still arrive without the trace.
    assert usage_chunk(chunks).usage.model_dump()["cost"] > 0


# ----- 6. router semantics ---------------------------------------------------------------------------------------


def test_all_members_failing_falls_back_to_the_configured_model(client: openai.OpenAI, upstream: ScriptedServer):
    raw = client.chat.completions.with_raw_response.create(model="fz-broken", messages=MESSAGES)
    response = raw.parse()
    assert response.choices[0].message.content == PANEL_TEXT["gpt-4o-mini"]  # m1 answering solo
    assert trace_of(response) is None
    if "x-litellm-attempted-fallbacks" in raw.headers:
        assert raw.headers["x-litellm-attempted-fallbacks"] == "1"
    by_model = upstream.stats()["by_model"]
    # num_retries: 1 on the outer call; members are called with no retries of their own.
    assert by_model == {"bad-1": 2, "bad-2": 2, "gpt-4o-mini": 1}


def test_all_members_failing_without_fallback_is_503_naming_each_member(proxy: Proxy, upstream: ScriptedServer, probe_file: Path):
    with proxy.http() as http:
        reply = http.post("/v1/chat/completions", json={"model": "fz-dead", "messages": MESSAGES})
    assert reply.status_code == 503, reply.text
    message = reply.json()["error"]["message"]
    for member, error in (("b1", "bad-1 is down (scripted)"), ("b2", "bad-2 is down (scripted)")):
        assert f"{member}: error" in message, message
        assert error in message, message
    assert "0 of 2 panel members answered, 1 needed" in message
    assert "gpt-4o" not in upstream.stats()["by_model"]  # no judge call after the panel failed
    assert proxy.master_key not in reply.text and "sk-up-" not in reply.text
    # num_retries: 1 retries the fusion call once; the members themselves are never retried.
    handler_calls = [r for r in read_jsonl(probe_file) if r["kind"] == "handler"]
    assert [r["model"] for r in handler_calls] == ["fz-dead", "fz-dead"]
    assert upstream.stats()["by_model"] == {"bad-1": 2, "bad-2": 2}


def test_stream_all_members_failing_is_503_before_any_chunk(proxy: Proxy):
    # Without progress lines nothing is sent before the panel is done, so its failure is still an HTTP status
    # (with progress, the stream has begun: tests/e2e/test_e2e_progress.py checks the in-stream error).
    with proxy.http() as http:
        body = {"model": "fz-dead", "messages": MESSAGES, "stream": True, "fusion": {"progress": "none"}}
        reply = http.post("/v1/chat/completions", json=body)
    assert reply.status_code == 503, reply.text[:500]
    message = reply.json()["error"]["message"]
    assert "b1: error" in message and "bad-1 is down" in message, message
    assert "b2: error" in message and "bad-2 is down" in message, message


def test_deadline_is_408_and_the_hanging_member_is_cancelled(proxy: Proxy, upstream: ScriptedServer):
    upstream.set_script("gpt-4.1-mini", Script(hang=True))
    started = time.monotonic()
    with proxy.http() as http:
        reply = http.post(
            "/v1/chat/completions",
            json={"model": "fz", "messages": MESSAGES, "fusion": {"timeout": 1, "min_quorum": 2}},
        )
    elapsed = time.monotonic() - started
    assert reply.status_code == 408, reply.text
    assert "no answer within 1.0s" in reply.json()["error"]["message"]
    assert elapsed < 15
    assert upstream.wait_idle(5.0)
    hung = upstream.requests_for("gpt-4.1-mini")
    assert hung and all(r.disconnected for r in hung), "the hanging member's request was not cancelled"
    assert "gpt-4o" not in upstream.stats()["by_model"]


def test_client_timeout_above_the_deployments_is_refused(client: openai.OpenAI, upstream: ScriptedServer):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="fz", messages=MESSAGES, extra_body={"fusion": {"timeout": 10_000}})
    assert "fusion.timeout" in error_text(caught.value)
    assert upstream.stats()["total"] == 0


def test_config_error_is_400_before_any_upstream_call_and_not_retried(proxy: Proxy, upstream: ScriptedServer, probe_file: Path):
    with proxy.http() as http:
        reply = http.post("/v1/chat/completions", json={"model": "fz", "messages": MESSAGES, "fusion": {"panle": ["m1"]}})
    assert reply.status_code == 400, reply.text
    assert "fusion.panle" in reply.json()["error"]["message"]
    assert upstream.stats()["total"] == 0
    rows = wait_for_probe(probe_file, lambda rows: any(r["kind"] == "failure" for r in rows), timeout=5.0)
    # The handler ran once: a 400 is not retried (num_retries: 1) and fz has no fallback.
    assert [(r["kind"], r["model"]) for r in rows] == [("handler", "fz"), ("failure", "fz")], rows
    if "x-litellm-attempted-retries" in reply.headers:
        assert reply.headers["x-litellm-attempted-retries"] == "0"
    # Still healthy afterwards.
    with proxy.http() as http:
        assert http.post("/v1/chat/completions", json={"model": "fz", "messages": MESSAGES}).status_code == 200


# ----- 8. config.example.yaml ---------------------------------------------------------------------------------------


def test_example_config_budget(example_client: openai.OpenAI, upstream: ScriptedServer):
    response = example_client.chat.completions.create(model="fusion-budget", messages=MESSAGES)
    assert response.choices[0].message.content == EXAMPLE_SYNTH["budget"]
    trace = trace_of(response)
    assert trace is not None
    assert [m["model"] for m in trace["panel"]] == ["gpt-5.4-mini", "claude-haiku", "gemini-flash-lite"]
    assert [m["status"] for m in trace["panel"]] == ["ok"] * 3
    assert [m["content"] for m in trace["panel"]] == [f"{n} says: Paris." for n in ("gpt-5.4-mini", "claude-haiku", "gemini-flash-lite")]
    assert trace["judge"]["model"] == "gpt-5.4-mini" and trace["judge"]["status"] == "ok"
    assert trace["synthesizer"]["model"] == "gpt-5.4-mini"
    ids = example_upstream_ids()
    assert upstream.stats()["by_model"] == {ids["gpt-5.4-mini"]: 3, ids["claude-haiku"]: 1, ids["gemini-flash-lite"]: 1}
    assert {r.headers.get("authorization") for r in upstream.requests} == {"Bearer sk-up-example"}


def test_example_config_budget_allowed_override(example_client: openai.OpenAI, upstream: ScriptedServer):
    # gpt-5.5 is not in the preset's panel but is on the deployment's clients.allowed_models.
    response = example_client.chat.completions.create(
        model="fusion-budget", messages=MESSAGES, extra_body={"fusion": {"panel": ["gpt-5.5"]}}
    )
    assert response.choices[0].message.content == EXAMPLE_SYNTH["budget"]
    assert [m["model"] for m in trace_of(response)["panel"]] == ["gpt-5.5"]
    ids = example_upstream_ids()
    assert upstream.stats()["by_model"] == {ids["gpt-5.5"]: 1, ids["gpt-5.4-mini"]: 2}


@pytest.mark.parametrize(
    ("fusion", "field"),
    [
        ({"panel": ["claude-opus"]}, "fusion.panel[0]"),  # a proxy model, but not on clients.allowed_models
        ({"judge": {"model": "gpt-5.5", "api_key": SECRET}}, "fusion.judge.api_key"),
    ],
    ids=["not-allowed-model", "client-credential"],
)
def test_example_config_refuses_forbidden_overrides_with_400(
    example_proxy: Proxy, upstream: ScriptedServer, fusion: dict[str, Any], field: str
):
    with example_proxy.http() as http:
        reply = http.post("/v1/chat/completions", json={"model": "fusion-budget", "messages": MESSAGES, "fusion": fusion})
    assert upstream.stats()["total"] == 0, f"answered by {reply.headers.get('x-litellm-model-group')}: {reply.text[:300]}"
    assert reply.status_code == 400, reply.text[:500]
    assert field in reply.json()["error"]["message"]


def test_example_config_frontier_summary(example_client: openai.OpenAI, upstream: ScriptedServer):
    response = example_client.chat.completions.create(model="fusion-frontier", messages=MESSAGES)
    assert response.choices[0].message.content == EXAMPLE_SYNTH["frontier"]
    trace = trace_of(response)
    assert trace is not None
    assert [m["model"] for m in trace["panel"]] == ["gpt-5.5", "claude-opus", "gemini-pro"]
    assert [m["status"] for m in trace["panel"]] == ["ok"] * 3
    assert all("content" not in m for m in trace["panel"])
    assert "says: Paris" not in json.dumps(response.model_dump())
    assert trace["judge"]["model"] == "gpt-5.5" and trace["synthesizer"]["model"] == "claude-opus"
    ids = example_upstream_ids()
    assert upstream.stats()["by_model"] == {ids["gpt-5.5"]: 2, ids["claude-opus"]: 2, ids["gemini-pro"]: 1}


def test_example_config_frontier_falls_back_solo_when_the_panel_fails(example_client: openai.OpenAI, upstream: ScriptedServer):
    ids = example_upstream_ids()
    for name in ("claude-opus", "gemini-pro"):
        upstream.set_script(ids[name], Script(status=500, error_message=f"{name} is down (scripted)"))
    raw = example_client.chat.completions.with_raw_response.create(model="fusion-frontier", messages=MESSAGES)
    response = raw.parse()
    # 1 of 3 answered, the majority quorum is 2: 503, retried once, then the configured solo fallback.
    assert response.choices[0].message.content == "gpt-5.5 says: Paris."
    assert trace_of(response) is None
    assert raw.headers.get("x-litellm-model-group") == "gpt-5.5"
    assert upstream.stats()["by_model"].get(ids["claude-opus"], 0) >= 1


# ----- 9. --num_workers 2 ---------------------------------------------------------------------------------------------


def test_two_workers_non_stream_and_stream(workers_client: openai.OpenAI, upstream: ScriptedServer):
    raw = workers_client.chat.completions.with_raw_response.create(model="fz", messages=MESSAGES)
    response = raw.parse()
    assert response.choices[0].message.content == SYNTH_TEXT
    assert_standard_trace(trace_of(response), panel=["m1", "m2"])
    expected = expected_cost(upstream)
    assert response.usage.model_dump()["cost"] == pytest.approx(expected, rel=1e-9, abs=0)
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(expected, rel=1e-9, abs=0)

    upstream.reset()
    chunks = stream_chunks(workers_client, model="fz")
    assert streamed_text(chunks) == SYNTH_TEXT
    traces = [chunk_trace(c) for c in chunks if chunk_trace(c) is not None]
    assert len(traces) == 1
    assert_standard_trace(traces[0], panel=["m1", "m2"])
    assert usage_chunk(chunks).usage.model_dump()["cost"] == pytest.approx(expected_cost(upstream), rel=1e-9, abs=0)


# ----- the HTML report of a saved proxy response ------------------------------------------------------------


def test_a_saved_proxy_response_becomes_a_report(client: openai.OpenAI, tmp_path: Path):
    from litellm_fusion.cli import commands as cli

    response = client.chat.completions.create(model="fz", messages=MESSAGES)
    saved, page_file = tmp_path / "response.json", tmp_path / "report.html"
    saved.write_text(json.dumps(response.model_dump()))
    assert cli.main(["report", str(saved), "-o", str(page_file), "--question", MESSAGES[0]["content"]]) == 0
    page = page_file.read_text()
    assert SYNTH_TEXT.split(";")[0] in page and MESSAGES[0]["content"] in page
    assert page.count('class="card member') == 2 and 'class="span judge"' in page and 'class="span synthesizer"' in page
    assert "Approximate" not in page  # the start offsets came through the proxy's `fusion` field
