"""Tests for the ``litellm-fusion`` command (litellm_fusion.cli.commands): real LiteLLM over HTTP to scripted servers."""

from __future__ import annotations

import json
import re
import socket
import sys

import litellm
import pytest

from litellm_fusion._core.errors import PanelFailedError
from litellm_fusion._core.processes import free_port
from litellm_fusion.cli import commands as cli
from litellm_fusion.cli import demo
from litellm_fusion.testing import Script, ScriptedServer

PANEL_MODELS = [model for model, _, _ in demo.DEMO_PANEL]
WRONG_MODEL = "openai/gpt-4.1-nano"  # the scripted member that answers $513
PROVIDER_KEYS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.delenv("LITELLM_FUSION_RAISE", raising=False)
    monkeypatch.delenv("LITELLM_FUSION_PRESETS", raising=False)


def _cost(out: str) -> float:
    match = re.search(r"^  cost: +([0-9.]+) USD", out, re.M)
    assert match, out
    return float(match.group(1))


def _letters(out: str) -> dict[str, str]:
    """Model -> letter, from the report's panel lines."""
    return {model: letter for letter, model in re.findall(r"^  \[([A-Z])\] (\S+) +ok ", out, re.M)}


def test_demo_prints_panel_analysis_answer_and_cost(capsys):
    assert cli.main(["demo", "--scripted"]) == 0
    out = capsys.readouterr().out
    assert demo.DEMO_QUESTION[:60] in out
    assert out.count(demo.DEMO_FINAL) == 1
    letters = _letters(out)
    assert sorted(letters) == sorted(PANEL_MODELS) and sorted(letters.values()) == ["A", "B", "C"]
    for section in ("Consensus:", "Contradictions:", "Partial coverage:", "Unique insights:", "Blind spots:"):
        assert f"\n  {section}\n" in out  # each section has items, none says "(none)"
    # The scripted judge read the shuffled letters: the stance marked wrong belongs to the $513 answer.
    wrong = f"{letters[WRONG_MODEL]} ({WRONG_MODEL}): $513"
    assert wrong in out and "wrong" in out.split(wrong)[1].splitlines()[0]
    assert f"{letters['openai/gpt-4.1-mini']} (openai/gpt-4.1-mini): Sums by product" in out
    assert 0.001 < _cost(out) < 0.05  # real prices: a few thousand tokens of gpt-4o / gpt-4.1
    assert re.search(r"wall: +\d+\.\d\d s \(panel 0\.[6-9]\d s, judge 0\.[5-9]\d s, synthesizer 0\.[3-9]\d s\)", out), out


def test_demo_stream_writes_the_answer_incrementally(monkeypatch, capsys):
    writes: list[str] = []
    real_write = sys.stdout.write
    monkeypatch.setattr(sys.stdout, "write", lambda text: (writes.append(text), real_write(text))[1])
    assert cli.main(["demo", "--scripted", "--stream"]) == 0
    out = capsys.readouterr().out
    assert out.count(demo.DEMO_FINAL) == 1
    assert out.index(demo.DEMO_FINAL) < out.index("\nPanel (")  # answer first, report from the stream's trace
    pieces = [w for w in writes if w.strip() and w in demo.DEMO_FINAL]
    assert len(pieces) > 5 and "".join(pieces).startswith(demo.DEMO_FINAL[:40])
    assert sorted(_letters(out)) == sorted(PANEL_MODELS)
    assert "\n  Contradictions:\n" in out and _cost(out) > 0.001


def test_demo_json_is_the_trace(capsys):
    assert cli.main(["demo", "--scripted", "--json"]) == 0
    trace = json.loads(capsys.readouterr().out)
    assert len(trace["panel"]) == 3
    assert [m["model"] for m in trace["panel"]] == PANEL_MODELS and all(m["status"] == "ok" for m in trace["panel"])
    assert trace["answer"] == demo.DEMO_FINAL
    assert trace["judge"]["status"] == "ok" and trace["judge"]["structured_output"] == "json_schema"
    assert trace["synthesizer"]["model"] == demo.DEMO_SYNTHESIZER and not trace["degraded"]
    stances = {s["model"]: s["stance"] for s in trace["analysis"]["contradictions"][0]["stances"]}
    assert set(stances) == set(PANEL_MODELS) and "wrong" in stances[WRONG_MODEL]
    parts = [m["cost"] for m in trace["panel"]] + [trace["judge"]["cost"], trace["synthesizer"]["cost"]]
    assert all(p > 0 for p in parts) and trace["cost"] == pytest.approx(sum(parts))
    assert trace["unpriced_models"] == []


def test_demo_without_local_models_runs_the_scripted_panel_and_says_how_to_get_real_ones(monkeypatch, capsys):
    from litellm_fusion import local

    monkeypatch.setattr(local, "local_models_available", lambda *a, **k: False)
    assert cli.main(["demo", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [m["model"] for m in json.loads(out)["panel"]] == PANEL_MODELS
    assert "make local" in err and local.SETUP_HINT in err


def test_demo_local_without_the_runtime_exits_2_naming_the_fix(monkeypatch, capsys, tmp_path):
    from litellm_fusion.local import build, server

    monkeypatch.setattr(server.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv(build.BIN_ENV, str(tmp_path))  # no llama-server built there either
    monkeypatch.delenv(build.BINARY_ENV, raising=False)
    monkeypatch.delenv(server.BACKEND_ENV, raising=False)
    # A port nothing serves: a local server already running on the default one would be reused.
    monkeypatch.setenv(server.BASE_ENV, f"http://127.0.0.1:{free_port()}/v1")
    assert cli.main(["demo", "--local"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'litellm-fusion[local]'" in err and "litellm-fusion local setup" in err


def test_local_and_eval_subcommands_are_wired(capsys):
    assert cli.main(["eval", "arithmetic", "--config", "local_eval", "--limit", "0"]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err
    assert cli.main(["local", "setup", "no-such-model"]) == 2
    assert "unknown model(s) no-such-model" in capsys.readouterr().err
    assert cli.main(["presets"]) == 0
    assert "local\n  panel:       openai/qwen2.5-coder-0.5b" in capsys.readouterr().out


def test_presets_lists_builtins_and_user_file(monkeypatch, tmp_path, capsys):
    path = tmp_path / "presets.yaml"
    path.write_text("mine:\n  panel: [openai/gpt-4o-mini]\n  judge: openai/gpt-4o\n  synthesizer: openai/gpt-4.1\n")
    monkeypatch.setenv("LITELLM_FUSION_PRESETS", str(path))
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("budget", "balanced", "frontier", "mine"):
        assert re.search(rf"^{name}\n  panel: ", out, re.M), out
    assert "anthropic/claude-haiku-4-5" in out and "judge:       anthropic/claude-sonnet-4-6" in out
    assert "synthesizer: openai/gpt-4.1\n" in out


def test_ask_without_keys_exits_2_before_any_call(monkeypatch, capsys):
    for name in PROVIDER_KEYS:
        monkeypatch.delenv(name, raising=False)
    connects: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connects.append(address))
    monkeypatch.setattr(litellm, "completion", lambda **kw: connects.append(kw["model"]))
    assert cli.main(["ask", "hi", "--preset", "budget"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and connects == []
    line = captured.err.strip()
    assert "\n" not in line and all(name in line for name in PROVIDER_KEYS)


def test_ask_with_keys_calls_the_preset(monkeypatch, capsys):
    """The positive control for the key check: with keys set, the call is made (and its failure reported)."""
    for name in PROVIDER_KEYS:
        monkeypatch.setenv(name, "sk-test")
    calls: list[dict] = []

    def fake_completion(**kwargs):
        calls.append(kwargs)
        raise litellm.APIConnectionError(message="upstream unreachable", llm_provider="fusion", model=kwargs["model"])

    monkeypatch.setattr(litellm, "completion", fake_completion)
    assert cli.main(["ask", "hi", "--preset", "budget"]) == 1
    assert [c["model"] for c in calls] == ["fusion/budget"] and calls[0]["messages"][0]["content"] == "hi"
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "upstream unreachable" in err and "\n" not in err


def _spec(server: ScriptedServer, panel: list[str]) -> str:
    member = lambda m: {"model": f"openai/{m}", "api_base": server.base_url, "api_key": "sk-local"}  # noqa: E731
    return json.dumps({"panel": [member(m) for m in panel], "judge": member("judge"), "timeout": 10})


def test_ask_runs_a_full_spec_and_reports_failures(monkeypatch, capsys):
    scripts = {
        "a": Script(text="Paris."),
        "b": Script(text="It is Paris."),
        "judge": Script(
            text=json.dumps(
                {"consensus": ["Paris"], "contradictions": [], "partial_coverage": [], "unique_insights": [], "blind_spots": []}
            )
        ),
        "down": Script(status=500),
    }
    with ScriptedServer(scripts) as server:
        assert cli.main(["ask", "Capital of France?", "--preset", "adhoc", "--fusion", _spec(server, ["a", "b"])]) == 0
        out = capsys.readouterr().out
        assert "Capital of France?" in out and "openai/a" in out and "openai/b" in out
        assert "\n  Consensus:\n    - Paris\n" in out and "  Blind spots: (none)" in out

        down = _spec(server, ["down", "down"])
        assert cli.main(["ask", "q", "--preset", "adhoc", "--fusion", down]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "0 of 2 panel members answered" in err and "\n" not in err

        monkeypatch.setenv("LITELLM_FUSION_RAISE", "1")
        with pytest.raises(PanelFailedError):
            cli.main(["ask", "q", "--preset", "adhoc", "--fusion", down])


def test_usage_errors(capsys):
    assert cli.main(["ask", "q", "--fusion", "[1]"]) == 2
    assert cli.main([]) == 2
    assert cli.main(["ask", "q", "--preset", "no-such-preset"]) == 1
    err = capsys.readouterr().err
    assert "--fusion must be a JSON object" in err and "unknown preset 'no-such-preset'" in err
