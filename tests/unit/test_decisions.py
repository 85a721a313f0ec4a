"""The decision-mix question set (answers recomputed) and the eval's decision table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from litellm_fusion.evaluation.decisions import decision_table, merge_results

REPO = Path(__file__).resolve().parents[2]
MIX = REPO / "litellm_fusion" / "data" / "decision_mix.jsonl"


def _generator():
    spec = importlib.util.spec_from_file_location("make_decision_mix", REPO / "scripts" / "make_decision_mix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_mix_is_what_the_generator_writes() -> None:
    assert _generator().main(["--check"]) == 0


def test_every_easy_answer_recomputes_and_hard_ones_come_from_arithmetic() -> None:
    gen = _generator()
    records = [json.loads(line) for line in MIX.read_text(encoding="utf-8").splitlines()]
    arithmetic = {r["id"]: r for r in map(json.loads, (REPO / "litellm_fusion/data/arithmetic.jsonl").read_text().splitlines())}
    easy = [r for r in records if r["kind"] == "easy"]
    hard = [r for r in records if r["kind"] == "hard"]
    assert len(easy) == len(hard) == 8 and [r["kind"] for r in records[:4]] == ["hard", "easy", "hard", "easy"]
    for record in easy:
        a, b = record["params"]["a"], record["params"]["b"]
        expected = {"add": a + b, "subtract": a - b, "multiply": a * b, "divide": a / b}[record["op"]]
        assert record["answer"] == expected == gen.compute(record["op"], a, b)
        assert record["question"] == gen.render(record["op"], a, b)
    for record in hard:
        assert record["answer"] == arithmetic[record["id"]]["answer"] and record["question"] == arithmetic[record["id"]]["question"]


def _result(config: str, qid: str, correct: bool, invoked: bool | None, tokens: int, latency: float) -> dict:
    fusion = None if invoked is None else {"invocation": {"mode": "auto", "invoked": invoked}}
    return {"config": config, "id": qid, "correct": correct, "fusion": fusion, "total_tokens": tokens, "latency_ms": latency, "cost": 0.001}


def test_decision_table_counts_panel_calls_and_splits_accuracy_by_kind(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "h1", "kind": "hard"}\n{"id": "e1", "kind": "easy"}\n', encoding="utf-8")
    data = {
        "questions_path": str(questions),
        "configs": [{"name": "solo", "kind": "solo"}, {"name": "auto", "kind": "fusion", "fusion": {"invocation": "auto"}}],
        "results": [
            _result("solo", "h1", False, None, 100, 1000),
            _result("solo", "e1", True, None, 10, 3000),
            _result("auto", "h1", True, True, 900, 9000),
            _result("auto", "e1", True, False, 20, 1000),
        ],
    }
    rows = decision_table(data).splitlines()
    assert (
        rows[0]
        == "| configuration | invocation | panel called | accuracy | accuracy easy | accuracy hard | mean tokens | total cost | p50 latency |"
    )
    assert rows[2] == "| solo | - | - | 50.0% (1/2) | 100.0% (1/1) | 0.0% (0/1) | 55 | $0.0020 | 2.00 s |"
    assert rows[3] == "| auto | auto | 1/2 | 100.0% (2/2) | 100.0% (1/1) | 100.0% (1/1) | 460 | $0.0020 | 5.00 s |"
    first, second = tmp_path / "a", tmp_path / "b"
    for directory, name in ((first, "solo"), (second, "auto")):
        directory.mkdir()
        part = {
            **data,
            "configs": [c for c in data["configs"] if c["name"] == name],
            "results": [r for r in data["results"] if r["config"] == name],
        }
        (directory / "results.json").write_text(json.dumps(part), encoding="utf-8")
    assert decision_table(merge_results([first, second])) == decision_table(data)


def test_no_decision_table_without_auto_or_required() -> None:
    assert decision_table({"configs": [{"name": "f", "kind": "fusion", "fusion": {}}], "results": []}) is None


@pytest.mark.parametrize("name", ["decision_eval"])
def test_shipped_decision_configs_parse(name: str) -> None:
    from litellm_fusion.evaluation.configs import load_configs

    settings = load_configs(name)
    modes = [(c.fusion or {}).get("invocation") for c in settings.configs]
    assert modes == [None, "always", "auto"]


def test_eval_command_prints_and_writes_the_decision_table(tmp_path: Path, capsys, monkeypatch, fusion_registered) -> None:
    """`litellm-fusion eval` with an `auto` fusion: the scripted outer model calls the panel on the hard question only."""
    from conftest import judge_text

    from litellm_fusion._engine.invocation import FUSION_TOOL_NAME
    from litellm_fusion.evaluation import cli as eval_cli
    from litellm_fusion.testing import Script, ScriptedServer, stage_of

    def question(body: dict) -> str:
        return next(m["content"] for m in body["messages"] if m["role"] == "user")

    def writer(body: dict) -> str:
        if stage_of(body) == "judge":
            return judge_text(body)
        if body.get("tools") and question(body).startswith("hard"):
            return json.dumps({"name": FUSION_TOOL_NAME, "arguments": {}})  # a tool call written as text
        return "Answer: 4" if "2+2" in question(body) else "Answer: 2"

    questions = tmp_path / "mix.jsonl"
    questions.write_text(
        '{"id": "h1", "question": "hard: 2+2", "answer": 4, "kind": "hard"}\n{"id": "e1", "question": "easy: 1+1", "answer": 2, "kind": "easy"}\n',
        encoding="utf-8",
    )
    configs = tmp_path / "configs.yaml"
    configs.write_text(
        """
x-server: &server {api_base: "${EVAL_TEST_BASE}", api_key: sk-eval-test}
configurations:
  solo: {<<: *server, model: openai/gpt-4o}
  auto fusion:
    model: fusion/auto-test
    fusion: {invocation: auto, panel: [{<<: *server, model: openai/gpt-4o-mini}], judge: {<<: *server, model: openai/gpt-4o}}
""",
        encoding="utf-8",
    )
    with ScriptedServer({"gpt-4o": Script(text=writer), "gpt-4o-mini": Script(text="Answer: 4")}) as server:
        monkeypatch.setenv("EVAL_TEST_BASE", server.base_url)
        out = tmp_path / "out"
        assert eval_cli.main([str(questions), "--config", str(configs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| auto fusion | auto | 1/2 | 100.0% (2/2) | 100.0% (1/1) | 100.0% (1/1) |" in printed
    assert "| solo | - | - | 100.0% (2/2) |" in printed
    assert (out / "table.md").read_text(encoding="utf-8") == printed
