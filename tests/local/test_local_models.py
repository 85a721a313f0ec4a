"""Real models, offline: fusion on Qwen2.5-Coder 0.5B/1.5B on the local server ``local.serve`` picks.

That is llama.cpp's ``llama-server`` when built (``litellm-fusion local build-server``, part of ``make
local``), else llama-cpp-python's server. Asserts structure only, never wording: the trace is complete, the
analysis is there or ``judge_failed`` has a typed reason, usage sums are exact, and at temperature 0 (with
the per-request nonce and answer order fixed) the streamed answer equals the non-streamed one. The judge's
structured-output paths are run on every backend installed here, each asserting what that server does.
The real-model tests are marked ``local`` (``make test-local``) and skipped, with the fix as the reason,
unless a server and the models (``litellm-fusion local setup``) are there; one server process (free port)
per backend serves them all.
The offline side (model assembly, verification, error messages) is ``tests/unit/test_local_offline.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import random  # noqa: E402
import types  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402

from litellm_fusion import local  # noqa: E402

LLAMA_CPP = local.llama_cpp_available()
LLAMA_SERVER_BINARY = local.find_llama_server()
SERVER_OK = LLAMA_CPP or LLAMA_SERVER_BINARY is not None
MISSING = local.missing_models()
SKIP_REASON = (
    f"no local server: `{local.BUILD_HINT}` or `{local.INSTALL_HINT}`"
    if not SERVER_OK
    else f"local models {', '.join(MISSING)} not set up in {local.models_dir()}: {local.SETUP_HINT}"
)
needs_models = pytest.mark.skipif(not SERVER_OK or bool(MISSING), reason=SKIP_REASON)
# Each backend installed here, for the tests that say what each server does.
INSTALLED_BACKENDS = [b for b, ok in ((local.LLAMA_SERVER, LLAMA_SERVER_BINARY is not None), (local.LLAMA_CPP_PYTHON, LLAMA_CPP)) if ok]

import litellm  # noqa: E402

import litellm_fusion  # noqa: E402
from litellm_fusion._engine import pipeline, prompts  # noqa: E402

# A short answer keeps the judge's and synthesizer's prompts (which quote every answer) small: on 2 CPU cores
# prompt processing of the 1.5B model, not generation, is most of a fusion's time.
QUESTION = "Ann buys 4 pens at $3 each and pays with a $20 bill. How much change does she get? Reply with the amount only."
MESSAGES = [{"role": "user", "content": QUESTION}]
MAX_TOKENS = 128
JUDGE_MAX_TOKENS = 384  # an analysis JSON may not fit in 128 tokens
SEED = 7
JUDGE_FAILURES = {"not_valid_json", "schema_mismatch", "upstream_error", "empty", "timeout"}
ANALYSIS_KEYS = {"consensus", "contradictions", "partial_coverage", "unique_insights", "blind_spots"}


@pytest.fixture(scope="module")
def registered():
    saved = list(litellm.custom_provider_map)
    litellm_fusion.register()
    yield
    litellm.custom_provider_map = saved


@pytest.fixture(scope="module")
def servers(registered, tmp_path_factory):
    """One server per backend, started on first use and stopped at the end of the module."""
    started: dict[str, local.LocalServer] = {}

    def get(backend: str) -> local.LocalServer:
        if backend not in started:
            log = tmp_path_factory.mktemp(backend) / "server.log"  # left in pytest's tmp dir for a failed run
            started[backend] = local.serve(port=None, log_path=log, backend=backend)
            print(f"\n{backend} started in {started[backend].started_in:.1f} s at {started[backend].base_url} (log {log})")
        return started[backend]

    yield get
    for srv in started.values():
        srv.stop()


@pytest.fixture(scope="module")
def server(servers):
    """The server ``local serve`` would start here: llama-server when built, else llama-cpp-python's."""
    srv = servers(local.choose_backend()[0])
    assert srv.backend == (local.LLAMA_SERVER if LLAMA_SERVER_BINARY else local.LLAMA_CPP_PYTHON)
    return srv


@pytest.fixture
def fixed_run(monkeypatch):
    """The same nonce and answer order on every request, so two runs send the judge the same prompt."""
    monkeypatch.setattr(prompts, "secrets", types.SimpleNamespace(token_hex=lambda n=8: "0" * (2 * n)))
    monkeypatch.setattr(pipeline, "random", types.SimpleNamespace(Random=lambda *a: random.Random(0)))


def preset(base_url: str) -> dict[str, Any]:
    """The shipped local preset (sampling temperatures 0.2/0.8/0.5), on the test server, completion cap lowered."""
    spec = local.local_preset(base_url)
    spec["max_completion_tokens"] = MAX_TOKENS
    spec["judge"]["max_tokens"] = JUDGE_MAX_TOKENS
    spec["short_circuit"] = "off"  # these tests check every stage; a unanimous vote would skip the judge
    return spec


def deterministic(server: local.LocalServer) -> dict[str, Any]:
    """The preset at temperature 0 everywhere with a fixed seed (the outer call's temperature is the synthesizer's).

    On llama-server no request reuses a cached prompt prefix: the second run's prompts would otherwise be
    found in the first run's cache, so only their last tokens would be evaluated, in other batch sizes,
    and llama.cpp's logits are not bit-identical across batch sizes.
    """
    spec = preset(server.base_url)
    extra: dict[str, Any] = {"seed": SEED}
    if server.backend == local.LLAMA_SERVER:
        extra["extra_body"] = {"cache_prompt": False}
    for member in spec["panel"]:
        member.update(temperature=0, extra_params=dict(extra))
    spec["judge"].update(temperature=0, extra_params=dict(extra))
    spec["synthesizer"].update(extra_params=dict(extra))
    return spec


def reset_server_state(base_url: str) -> None:
    """The same server state before each compared run: the 0.5B model loaded (llama-cpp-python's server swaps
    models), one fixed prompt in its cache.

    The server reuses the longest cached prompt prefix, which changes how the rest is batched.
    """
    body = {"model": local.SMALL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "temperature": 0}
    assert httpx.post(base_url + "/chat/completions", json=body, timeout=120, trust_env=False).status_code == 200


def check(trace: dict[str, Any], usage: Any, answer: str) -> None:
    """Structure of a finished local fusion: complete trace, analysis or typed judge failure, exact sums."""
    assert answer.strip(), "empty final answer"
    assert len(trace["panel"]) == 3
    for member in trace["panel"]:
        assert member["status"] == "ok", member
        assert member["content"].strip() and member["letter"] in trace["letters"]
        assert member["usage"]["completion_tokens"] > 0
    judge, synth = trace["judge"], trace["synthesizer"]
    assert judge["calls"] >= 1 and judge["structured_output"] in {"json_schema", "json_object", "prompt"}
    assert synth["status"] == "ok", synth
    if trace["judge_failed"] is None:
        assert set(trace["analysis"]) >= ANALYSIS_KEYS
        assert all(isinstance(trace["analysis"][key], list) for key in ANALYSIS_KEYS)
    else:
        assert trace["judge_failed"] in JUDGE_FAILURES and trace["analysis"] is None, trace["judge"]
    parts = [m["usage"] for m in trace["panel"]] + [judge["usage"], synth["usage"]]
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        summed = sum(p[key] for p in parts)
        assert summed == trace["usage"][key] == _get(usage, key), (key, parts, usage)
    assert trace["cost"] == 0 and trace["unpriced_models"] == []


def _get(usage: Any, key: str) -> int:
    return usage[key] if isinstance(usage, dict) else getattr(usage, key)


def _stream_text(chunks: list[Any]) -> tuple[str, dict[str, Any] | None, Any]:
    text, trace, usage = [], None, None
    for chunk in chunks:
        delta = chunk.choices[0].delta if chunk.choices else None
        text.append(getattr(delta, "content", None) or "")
        trace = getattr(chunk, "fusion", None) or (getattr(delta, "provider_specific_fields", None) or {}).get("fusion") or trace
        usage = getattr(chunk, "usage", None) or usage
    return "".join(text), trace, usage


@needs_models
def test_local_preset_sync_stream(server):
    """``litellm.completion(stream=True)`` on the preset as shipped (sampled temperatures)."""
    chunks = litellm.completion(
        model="fusion/local", messages=MESSAGES, fusion=preset(server.base_url), stream=True, stream_options={"include_usage": True}
    )
    streamed, trace, usage = _stream_text(list(chunks))
    assert trace is not None, "the stream carried no trace"
    check(trace, usage, streamed)
    assert trace["judge"]["model"] == trace["synthesizer"]["model"] == f"openai/{local.LARGE}"


@needs_models
async def test_local_sync_non_stream_equals_async_stream_at_temperature_0(server, fixed_run):
    spec = deterministic(server)
    reset_server_state(server.base_url)
    # The sync entry point runs the fusion on its own loop thread; this test's loop just waits for it.
    response = litellm.completion(model="fusion/local", messages=MESSAGES, fusion=spec, temperature=0, seed=SEED)
    answer, trace = response.choices[0].message.content, response._hidden_params["fusion"]
    check(trace, response.usage, answer)

    reset_server_state(server.base_url)
    stream = await litellm.acompletion(
        model="fusion/local",
        messages=MESSAGES,
        fusion=spec,
        temperature=0,
        seed=SEED,
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed, stream_trace, stream_usage = _stream_text([chunk async for chunk in stream])
    assert stream_trace is not None, "the stream carried no trace"
    check(stream_trace, stream_usage, streamed)
    # Stage by stage, so a difference says where the two runs diverged.
    assert [m["content"] for m in stream_trace["panel"]] == [m["content"] for m in trace["panel"]]
    assert stream_trace["analysis"] == trace["analysis"] and stream_trace["judge_failed"] == trace["judge_failed"]
    assert streamed == answer


# What each server does with each way of asking for the analysis, and where the judge lands.
JUDGE_PATHS = {
    local.LLAMA_CPP_PYTHON: [
        # json_schema is not in the server's request model (llama-cpp-python 0.3 answers with a 500 naming
        # response_format): the judge falls through to json_object.
        ("json_schema", [("json_schema", "InternalServerError"), ("json_object", None)], "json_object"),
        # json_object with a schema: the server constrains generation to the schema with a grammar.
        ("json_object", [("json_object", None)], "json_object"),
        # No response_format at all: the prompt alone, a tolerant parse and at most one repair call.
        ("prompt", [(None, None)], "prompt"),
    ],
    local.LLAMA_SERVER: [
        # llama-server takes json_schema (the schema becomes a grammar): no refusal, no fall-through.
        ("json_schema", [("json_schema", None)], "json_schema"),
        # json_object with a "schema" key is constrained to it as well.
        ("json_object", [("json_object", None)], "json_object"),
        ("prompt", [(None, None)], "prompt"),
    ],
}
JUDGE_CASES = [(backend, *path) for backend in INSTALLED_BACKENDS for path in JUDGE_PATHS[backend]]


@needs_models
@pytest.mark.parametrize("backend, requested, first_calls, landed", JUDGE_CASES, ids=[f"{c[0]}-{c[1]}" for c in JUDGE_CASES])
async def test_each_judge_output_path_on_the_real_server(servers, backend, requested, first_calls, landed):
    server = servers(backend)
    from litellm_fusion._core.usage import UsageLedger
    from litellm_fusion._engine.judge import analyse
    from litellm_fusion._spec.config import FusionSpec

    calls: list[tuple[str | None, str | None]] = []

    async def complete(**kwargs: Any) -> Any:
        kind = (kwargs.get("response_format") or {}).get("type")
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            calls.append((kind, type(exc).__name__))
            raise
        calls.append((kind, None))
        return response

    # The 0.5B judge: what is tested is the server's handling of each response_format, which is the same for both models.
    judge = {**local.local_member(local.SMALL, server.base_url), "max_tokens": JUDGE_MAX_TOKENS, "temperature": 0}
    spec = FusionSpec.model_validate(
        {"panel": [local.local_member(local.SMALL, server.base_url)] * 2, "judge": judge, "judge_output": requested}
    )
    outcome = await analyse(
        spec=spec,
        messages=MESSAGES,
        answers={"A": "4 pens cost 4 x $3 = $12, so the change is $20 - $12 = $8.", "B": "She gets $6 back."},
        names={"A": "openai/a", "B": "openai/b"},
        nonce="n0nce",
        complete=complete,
        ledger=UsageLedger(),
        timeout=600,
    )
    assert calls[: len(first_calls)] == first_calls
    assert outcome.structured_output == landed
    # A repair call (no response_format) may follow an unparseable reply; nothing else may.
    assert calls[len(first_calls) :] in ([], [(None, None)]), calls
    if outcome.failed_reason is None:
        assert set(outcome.analysis) >= ANALYSIS_KEYS
    else:
        assert outcome.failed_reason in {"not_valid_json", "schema_mismatch"}, (outcome.failed_reason, outcome.error)
        assert len(calls) == len(first_calls) + 1, "a failed parse gets exactly one repair call"


@needs_models
def test_local_fusion_through_the_proxy_with_the_openai_client(server):
    """The proxy's fusion deployment names the proxy's own two local deployments (async, non-stream)."""
    from e2e_support import start_proxy

    def deployment(name: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": local.local_member(name, server.base_url)}

    fusion = {
        "panel": [
            {"model": local.SMALL, "temperature": 0.2},
            {"model": local.SMALL, "temperature": 0.8},
            {"model": local.LARGE, "temperature": 0.5},
        ],
        "judge": {"model": local.LARGE, "max_tokens": JUDGE_MAX_TOKENS},
        "straggler_grace": None,
        "max_completion_tokens": MAX_TOKENS,
    }
    config = {
        "model_list": [
            deployment(local.SMALL),
            deployment(local.LARGE),
            # Not fusion/local: a spec merged over that preset would keep the preset's api_base for the judge.
            {"model_name": "fusion-local", "litellm_params": {"model": "fusion/local-via-proxy", "fusion": fusion}},
        ],
        "litellm_settings": {"custom_provider_map": [{"provider": "fusion", "custom_handler": "litellm_fusion.fusion_llm"}]},
    }
    with start_proxy(config) as proxy:
        response = proxy.client(timeout=900.0).chat.completions.create(model="fusion-local", messages=MESSAGES)
    trace = (response.model_extra or {}).get("fusion")
    assert trace is not None, "the proxy response carried no trace"
    assert [m["model"] for m in trace["panel"]] == [local.SMALL, local.SMALL, local.LARGE]
    usage = {k: getattr(response.usage, k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    check(trace, usage, response.choices[0].message.content)
