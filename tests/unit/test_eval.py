"""``litellm-fusion eval``: graders, the generated arithmetic set, run_eval against scripted upstreams, the command.

Offline and fast: every model is a scripted OpenAI-compatible server on 127.0.0.1, reached through real
LiteLLM over HTTP. Models carry real price-map names (gpt-4o-mini, ...), so costs are real prices of
the scripted token counts.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import math
import re
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import litellm
import pytest
from conftest import judge_text

from litellm_fusion.evaluation import (
    ConfigError,
    arun_eval,
    extract_number,
    grade_exact,
    grade_numeric,
    grade_regex,
    load_configs,
    load_questions,
    markdown_report,
    parse_config,
    parse_verdict,
    run_eval,
)
from litellm_fusion.evaluation import cli as eval_cli
from litellm_fusion.evaluation.configs import DATA_DIR, expand_env
from litellm_fusion.evaluation.question_files import dumps_questions
from litellm_fusion.testing import Script, ScriptedServer, answer_blocks, stage_of

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC = DATA_DIR / "arithmetic.jsonl"


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_arithmetic", ROOT / "scripts" / "make_arithmetic.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_arithmetic"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def price(model: str, prompt: int, completion: int) -> float:
    """USD LiteLLM's price map gives ``model`` for these token counts."""
    prompt_cost, completion_cost = litellm.cost_per_token(model=model, prompt_tokens=prompt, completion_tokens=completion)
    return prompt_cost + completion_cost


def write_questions(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def last_user(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m.get("role") == "user"][-1]


# ----- graders ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Answer: 42", 42),
        ("The total is $1,234.50.", 1234.5),
        ("It falls to -3 degrees.", -3),
        ("Answer: −3", -3),  # Unicode minus
        ("The loss is -$3.50", -3.5),
        ("That is $-12 overall", -12),
        ("about 2.5 hours", 2.5),
        ("Answer: 3/4", 0.75),
        ("Answer: 3 / 4 of the pie", 0.75),
        ("Answer: 1,000,000", 1_000_000),
        ("so the change is 25%", 25),
        ("between 3-4 hours", 4),  # a range's dash is not a minus
        ("Step 1: 12 x 3 = 36\nStep 2: 36 + 4 = 40\nAnswer: 40\nStep 3 was a check.", 40),  # the marker's line wins
        ("**Answer:** $54.08", 54.08),
        ("**Answer**: 17 apples", 17),
        ("Final answer:\n\n  17\n", 17),  # the number on the line after the marker
        ("Answer: 3 boxes of 12 = 36", 36),  # the last number on the marker's line
        ("Answer: 7.5 hours (7 hours 30 minutes)", 7.5),  # ... outside a restating parenthesis
        ("Answer: (7.5)", 7.5),  # ... unless that is all there is
        ("\\boxed{54.08}", 54.08),
        ("3 + 4 = 7, so \\boxed{54.08} in all; check: 2 x 27.04", 54.08),  # no marker: the last box, not the last number
        ('I will end with "Answer: <number>".\n7 + 5 = 12', 12),  # marker without a number: the last number
        ("Answer: 1.5\nAnswer: 2.5", 2.5),  # the last marker
        ("Version 1.2.3 says 9", 9),
    ],
)
def test_extract_number(reply: str, expected: float) -> None:
    got = extract_number(reply)
    assert got is not None and math.isclose(float(got), expected), (reply, got)


@pytest.mark.parametrize("reply", ["", "no digits here", "Answer: unknown", "x1 y2"])
def test_extract_number_none(reply: str) -> None:
    assert extract_number(reply) is None


def test_numeric_tolerance() -> None:
    assert grade_numeric("Answer: 100.00001", 100).correct  # relative 1e-7 < default 1e-6
    assert not grade_numeric("Answer: 100.001", 100).correct  # 1e-5
    assert grade_numeric("Answer: 100.001", 100, tolerance=1e-4).correct
    assert not grade_numeric("Answer: 101", 100, tolerance=1e-4).correct
    assert grade_numeric("Answer: 0", 0).correct and not grade_numeric("Answer: 0.01", 0).correct  # absolute at 0
    assert grade_numeric("Answer: $1,234.50", "$1,234.50").correct  # expected given as text
    assert grade_numeric("Answer: 54.08", 54.08).extracted == 54.08
    assert grade_numeric("Answer: 12.00", 12).extracted == 12
    miss = grade_numeric("I don't know", 5)
    assert not miss.correct and miss.extracted is None and miss.detail == "no number in the reply"


def test_exact_and_regex() -> None:
    assert grade_exact("  **Paris**. ", "paris").correct
    assert grade_exact("Reasoning...\nAnswer: Paris", "Paris").correct
    assert grade_exact("Ｐａｒｉｓ", "Paris").correct  # NFKC
    assert not grade_exact("The capital is Paris", "Paris").correct  # exact means exact
    assert not grade_exact("Lyon", "Paris").correct
    # LaTeX around the final answer (math-tuned models box it): read inside the box, after a marker or without one.
    assert grade_exact("139 = 19 weeks + 6 days\n\nAnswer: \\boxed{Sunday}", "Sunday").correct
    assert grade_exact("so it is a \\boxed{\\text{Sunday}}.", "Sunday").correct
    assert grade_exact("Answer: $\\text{March 15, 2026}$", "March 15, 2026").correct
    assert not grade_exact("Answer: \\boxed{Monday}", "Sunday").correct
    assert not grade_exact("a \\boxed{Sunday} then Answer: Monday", "Sunday").correct  # the marker still wins
    hit = grade_regex("The capital is PARIS.", r"(?i)\bparis\b")
    assert hit.correct and hit.extracted == "PARIS"
    assert not grade_regex("Parisian food", r"\bParis\b").correct


def test_parse_verdict() -> None:
    assert parse_verdict("PASS").correct
    assert not parse_verdict("FAIL: the candidate says 12").correct
    assert parse_verdict("Verdict: pass.").correct
    assert not parse_verdict("FAIL. A PASS would need 12.").correct  # the first verdict word counts
    unclear = parse_verdict("I cannot tell.")
    assert not unclear.correct and unclear.detail and "no PASS/FAIL" in unclear.detail


# ----- the generated question set -----------------------------------------------------------------------------


def _independent_answer(template: str, p: dict[str, Any]) -> float:
    """Each variant's answer written again from the problem statement, in floats, apart from the generator."""
    v = p.get("variant")
    if template == "shopping":
        sub = p["qty1"] * float(p["price1"]) + p["qty2"] * float(p["price2"])
        return (sub * (1 - p["discount_pct"] / 100) - p.get("coupon", 0)) * (1 + p["tax_pct"] / 100)
    if template == "travel":
        if v == "average_speed":
            return (p["d1"] + p["d2"]) / (p["d1"] / p["v1"] + p["d2"] / p["v2"])
        if v == "total_distance":
            return float(p["h1"]) * p["v1"] + p["m2"] / 60 * p["v2"]
        return p["d"] / p["v"] * 60 + p["stop"]
    if template == "recipe":
        flour = p["flour"] * p["target"] / p["base"]
        return (flour + p["butter"] * p["target"] / p["base"]) if v == "combined" else p["bags"] * p["bag"] - flour
    if template == "ages":
        if v == "times_and_difference":
            young = p["difference"] / (p["k"] - 1)
            return young * (1 + p["k"]) + 2 * p["years"]
        return 2 * p["gap"] + p["ago"]  # a - ago = 2 (a - gap - ago)
    if template == "percentages":
        if v == "nested_counts":
            return p["total"] * p["p1"] * p["p2"] * p["p3"] / 1e6
        factor = (1 + p["up"] / 100) * (1 - p["down"] / 100)
        return float(p["price"]) * factor if v == "successive_price" else (factor - 1) * 100
    if template == "units":
        if v == "laps_km":
            return p["laps"] * p["track"] * p["days"] / 1000
        if v == "tank_minutes":
            return p["gallons"] * 3.785 / p["rate"]
        return p["miles"] * 1.6 / p["speed"] * 60
    if template == "averages":
        if v == "next_score":
            return p["target"] * (len(p["scores"]) + 1) - sum(p["scores"])
        if v == "combined_classes":
            return (p["n1"] * p["m1"] + p["n2"] * p["m2"]) / (p["n1"] + p["n2"])
        return (p["count"] * p["mean"] - p["removed"]) / (p["count"] - 1)
    if template == "work":
        if v == "together":
            return p["ta"] * p["tb"] / (p["ta"] + p["tb"])
        if v == "pay_share":
            return p["pay"] * p["hours"][1] / sum(p["hours"])
        return p["fill"] * p["drain"] / (p["drain"] - p["fill"])
    raise AssertionError(f"unknown template {template}")


def test_generator_is_deterministic_and_matches_the_shipped_file() -> None:
    first, second = gen.generate(), gen.generate()
    assert first == second
    assert dumps_questions(first) == ARITHMETIC.read_text(encoding="utf-8"), "run: python scripts/make_arithmetic.py"
    assert gen.main(["--check", "--out", str(ARITHMETIC)]) == 0
    assert gen.generate(seed=1) != first  # the seed matters
    assert gen.generate(count=10) == first[:10]  # a prefix is the same problems


def test_every_answer_recomputes() -> None:
    records = [json.loads(line) for line in ARITHMETIC.read_text(encoding="utf-8").splitlines()]
    assert len(records) >= 50
    assert len({r["id"] for r in records}) == len(records) and len({r["question"] for r in records}) == len(records)
    per_template: dict[str, int] = {}
    for r in records:
        template, params = r["template"], r["params"]
        per_template[template] = per_template.get(template, 0) + 1
        exact = gen.compute(template, params)  # the generator's compute path, rerun
        assert exact == Fraction(str(r["answer"])), r["id"]
        assert (exact * 100).denominator == 1, f"{r['id']}: more than two decimals"
        assert math.isclose(_independent_answer(template, params), float(exact), rel_tol=1e-9), r["id"]
        assert gen.render(template, params) == r["question"], r["id"]  # the text is the params' text
        for key, value in params.items():  # every parameter is stated in the question
            for item in value if isinstance(value, list) else [value]:
                if key != "variant":
                    assert str(item) in r["question"], (r["id"], key, item)
        assert r["grader"] == "numeric" and 2 <= r["steps"] <= 4
        assert r["question"].endswith('"Answer: <number>" (the number only, no units).')
        assert grade_numeric(f"Working...\nAnswer: {r['answer']}", r["answer"]).correct
    assert set(per_template) == {"shopping", "travel", "recipe", "ages", "percentages", "units", "averages", "work"}
    assert min(per_template.values()) >= 6
    assert len(load_questions("arithmetic")) == len(records)  # the shipped name resolves


# ----- configurations -----------------------------------------------------------------------------------------


def test_env_expansion() -> None:
    env = {"BASE": "http://h:1/v1"}
    assert expand_env({"a": ["${BASE}", "${MISSING:-dflt}", "$$5", "${EMPTY:-x}"]}, env) == {"a": ["http://h:1/v1", "dflt", "$5", "x"]}
    with pytest.raises(ConfigError, match=r"MISSING is not set"):
        expand_env("${MISSING}", env)


def test_config_validation_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'solo'.*tempreature: unknown field"):
        parse_config({"model": "openai/gpt-4o-mini", "tempreature": 0}, "solo")
    with pytest.raises(ConfigError, match=r"'f'.*unknown preset 'nope'"):
        parse_config({"model": "fusion/nope"}, "f")
    with pytest.raises(ConfigError, match=r"'f'.*unknown field\(s\) temperature"):
        parse_config({"model": "fusion/budget", "temperature": 0}, "f")
    with pytest.raises(ConfigError, match=r"'f'.*panel"):
        parse_config({"model": "fusion/budget", "fusion": {"panel": []}}, "f")
    bad = tmp_path / "c.yaml"
    bad.write_text("configurations: {a: {model: openai/gpt-4o-mini}}\nconcurency: 2\n")
    with pytest.raises(ConfigError, match="unknown top-level key.*concurency"):
        load_configs(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_configs(tmp_path / "missing.yaml")


def test_shipped_local_config(monkeypatch) -> None:
    monkeypatch.delenv("LITELLM_FUSION_LOCAL_BASE", raising=False)
    settings = load_configs("local_eval")
    names = [c.name for c in settings.configs]
    assert names == [
        "solo 1.5B",
        "self-ensemble 1.5B x3 (local-self)",
        "local preset (0.5B+0.5B+1.5B)",
        "solo 0.5B",
        "fusion 3x0.5B, judge 0.5B",
        "fusion 3x0.5B, judge 1.5B",
        "fusion 0.5B+1.5B+1.5B, judge 1.5B",
    ]
    solo15, self15, preset, solo05, f05, f05j15, mixed = settings.configs
    assert (self15.model, preset.model) == ("fusion/local-self", "fusion/local")
    q05, q15 = "openai/qwen2.5-coder-0.5b", "openai/qwen2.5-coder-1.5b"
    assert (solo05.kind, solo05.model, solo15.model) == ("solo", q05, q15)
    kwargs = solo05.call_kwargs([], 900)
    assert kwargs["api_base"] == "http://127.0.0.1:8765/v1" and kwargs["api_key"] == "sk-local"
    assert kwargs["input_cost_per_token"] == 0 and kwargs["output_cost_per_token"] == 0
    assert [m["model"] for m in f05.fusion["panel"]] == [q05] * 3 and f05.fusion["judge"]["model"] == q05
    assert [m["model"] for m in f05j15.fusion["panel"]] == [q05] * 3 and f05j15.fusion["judge"]["model"] == q15
    assert [m["model"] for m in mixed.fusion["panel"]] == [q05, q15, q15] and mixed.fusion["judge"]["model"] == q15
    for config in (f05, f05j15, mixed):
        members = [*config.fusion["panel"], config.fusion["judge"], config.fusion["synthesizer"]]
        assert all(m["input_cost_per_token"] == 0 and m["output_cost_per_token"] == 0 and m["api_key"] == "sk-local" for m in members)
    monkeypatch.setenv("LITELLM_FUSION_LOCAL_BASE", "http://10.0.0.5:9000/v1")
    moved = load_configs("local_eval").configs
    assert moved[0].call_kwargs([], 900)["api_base"] == "http://10.0.0.5:9000/v1"
    assert {m["api_base"] for m in moved[6].fusion["panel"]} == {"http://10.0.0.5:9000/v1"}


def test_a_directory_named_like_a_shipped_set_does_not_hide_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "arithmetic").mkdir()  # e.g. the --out directory of an earlier run
    assert len(load_questions("arithmetic", limit=2)) == 2


def test_load_questions_validates(tmp_path: Path) -> None:
    def bad(record: dict[str, Any], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            load_questions(write_questions(tmp_path / "q.jsonl", [record]))

    bad({"id": "a", "question": "q", "answer": 1, "grader": "fuzzy"}, "grader must be one of")
    bad({"id": "a", "question": "q", "answer": "x", "grader": "regex"}, "needs a `pattern`")
    bad({"id": "a", "question": "q", "answer": "seven", "grader": "numeric"}, "numeric answer")
    bad({"id": "a", "question": "q"}, "missing answer")
    path = write_questions(tmp_path / "dup.jsonl", [{"id": "a", "question": "q", "answer": 1}] * 2)
    with pytest.raises(ConfigError, match="duplicate id"):
        load_questions(path)


# ----- run_eval against scripted upstreams ---------------------------------------------------------------------

SOLO_QUESTIONS = [
    {"id": f"q{i}", "question": f"Question {i}: what is {i} times 7? End with 'Answer: <number>'.", "answer": 7 * i, "grader": "numeric"}
    for i in range(1, 9)
]
RIGHT = {q["question"]: q["answer"] for q in SOLO_QUESTIONS}


def scripted_reply(right_ids: set[int]):
    """A model that answers right for the question numbers in ``right_ids`` and off by one otherwise."""

    def text(body: dict[str, Any]) -> str:
        question = last_user(body)
        number = int(re.match(r"Question (\d+):", question).group(1))
        answer = RIGHT[question] if number in right_ids else RIGHT[question] + 1
        return f"{number} x 7, worked out step by step.\nAnswer: {answer}"

    return text


@pytest.fixture
def questions_file(tmp_path: Path) -> Path:
    return write_questions(tmp_path / "questions.jsonl", SOLO_QUESTIONS)


def member(server: ScriptedServer, model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "api_base": server.base_url, "api_key": "sk-eval-test", **extra}


async def test_solo_accuracy_tokens_cost_and_concurrency(questions_file: Path, fusion_registered) -> None:
    scripts = {"gpt-4o-mini": Script(text=scripted_reply({1, 2, 3, 5, 8}), latency=0.1, prompt_tokens=120, completion_tokens=30)}
    with ScriptedServer(scripts) as server:
        report = await arun_eval(questions_file, {"mini": member(server, "openai/gpt-4o-mini")}, concurrency=2)
        stats = server.stats()
    s = report.summary("mini")
    assert (s.n, s.correct, s.accuracy, s.errors) == (8, 5, 5 / 8, 0)
    assert (s.total_tokens, s.mean_tokens) == (8 * 150, 150)
    assert s.total_cost == pytest.approx(8 * price("openai/gpt-4o-mini", 120, 30), rel=1e-9) and s.total_cost > 0 and not s.unpriced
    assert s.p50_latency_ms is not None and s.p50_latency_ms >= 100 and s.mean_latency_ms >= 100
    assert stats["max_in_flight"] == 2 and stats["total"] == 8  # bounded concurrency, one call per question
    results = report.results_for("mini")
    assert [r.id for r in results] == [q["id"] for q in SOLO_QUESTIONS]
    assert [r.correct for r in results] == [i in {1, 2, 3, 5, 8} for i in range(1, 9)]
    assert results[3].extracted == 29 and results[3].expected == 28 and results[3].answer.endswith("Answer: 29")
    # The request LiteLLM sent is the question, with the member's own settings and key.
    request = server.requests[0]
    assert request.headers["authorization"] == "Bearer sk-eval-test" and request.body["messages"][-1]["content"] in RIGHT


PANEL = ("openai/gpt-4o-mini", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano")
JUDGE, SYNTH = "openai/gpt-4o", "openai/gpt-4.1"
USAGE = {  # (prompt, completion) per call of each model
    "gpt-4o-mini": (200, 40),
    "gpt-4.1-mini": (210, 50),
    "gpt-4.1-nano": (190, 60),
    "gpt-4o": (900, 150),
    "gpt-4.1": (1100, 80),
}


async def test_fusion_accuracy_tokens_cost(questions_file: Path, fusion_registered) -> None:
    right_panel = scripted_reply(set(range(1, 9)))
    scripts = {
        "gpt-4o-mini": Script(text=right_panel),
        "gpt-4.1-mini": Script(text=scripted_reply({1, 2, 3, 4})),
        "gpt-4.1-nano": Script(text=scripted_reply(set())),
        "gpt-4o": Script(text=judge_text),
        "gpt-4.1": Script(text=scripted_reply({1, 2, 3, 4, 5, 6})),  # the synthesizer decides the graded answer
    }
    scripts = {m: Script(text=s.text, prompt_tokens=USAGE[m][0], completion_tokens=USAGE[m][1]) for m, s in scripts.items()}
    with ScriptedServer(scripts) as server:
        spec = {"panel": [member(server, m) for m in PANEL], "judge": member(server, JUDGE), "synthesizer": member(server, SYNTH)}
        report = await arun_eval(questions_file, [{"name": "fusion", "model": "fusion/eval-test", "fusion": spec}], concurrency=2)
        assert server.stats()["total"] == 8 * 5  # 3 panel + judge + synthesizer per question, no repair, no retry
    s = report.summary("fusion")
    assert (s.kind, s.n, s.correct, s.accuracy, s.errors) == ("fusion", 8, 6, 0.75, 0)
    per_question_tokens = sum(p + c for p, c in USAGE.values())
    per_question_cost = sum(price(f"openai/{m}", p, c) for m, (p, c) in USAGE.items())
    assert (s.total_tokens, s.mean_tokens) == (8 * per_question_tokens, per_question_tokens)
    assert s.total_cost == pytest.approx(8 * per_question_cost, rel=1e-9) and not s.unpriced
    outcomes = dict.fromkeys(s.fusion_stats["outcomes"], 0) | {"kept_right_majority": 4, "rescued_right_minority": 2, "missed_right_minority": 2}
    assert s.fusion_stats == {
        "judge_failed": 0,
        "degraded": 0,
        "short_circuit": 0,
        "panel_any_correct": 8,
        "panel_called": 8,
        "judge_read": 0,
        "judge_read_in_majority": 0,
        "vote_tied": 0,
        # Questions 5-8: two of three members give the same wrong number, so the vote is wrong there.
        "vote_correct": 4,
        "outcomes": outcomes,
        # The scripted judge checks nothing ("unsure"): no answer accepted or rejected; every vote has a majority.
        "judge_checks": {"wrong_answers": 12, "wrong_accepted": 0, "right_answers": 12, "right_rejected": 0},
        "by_recommendation": {"trust_majority": {"n": 8, "right": 6}},
        "aggregation": ["vote"],
    }
    assert (s.ci_low, s.ci_high) == pytest.approx((0.4093, 0.9285), abs=1e-4)  # Wilson 95 % for 6/8
    first = report.results_for("fusion")[0]
    assert first.cost == pytest.approx(per_question_cost, rel=1e-9)
    assert [m["correct"] for m in first.fusion["panel"]] == [True, True, False]  # panel answers graded too
    assert first.fusion["judge"]["status"] == "ok" and first.fusion["synthesizer"]["model"] == SYNTH


async def test_failed_calls_are_wrong_and_listed(questions_file: Path, fusion_registered) -> None:
    scripts = {
        "gpt-4o-mini": Script(text=scripted_reply(set(range(1, 9)))),
        "broken": Script(status=500, error_message="upstream exploded"),
        "slow": Script(hang=True),
    }
    with ScriptedServer(scripts) as server:
        configs = {
            "ok": member(server, "openai/gpt-4o-mini"),
            "broken": member(server, "openai/broken"),
            "slow": member(server, "openai/slow", timeout=0.5),
            "fusion-dead-panel": {  # every member fails: a 503 with what was spent
                "model": "fusion/dead",
                "fusion": {"panel": [member(server, "openai/broken")] * 2, "judge": member(server, "openai/gpt-4o-mini")},
            },
        }
        started = time.monotonic()
        report = await arun_eval(questions_file, configs, concurrency=4, limit=4)
        elapsed = time.monotonic() - started
    assert elapsed < 10  # the hanging upstream was cut off by the per-call timeout
    assert report.summary("ok").accuracy == 1.0 and report.summary("ok").errors == 0
    for name, error_type, status in (
        ("broken", "InternalServerError", 500),
        ("slow", None, 408),
        ("fusion-dead-panel", "PanelFailedError", 503),
    ):
        s = report.summary(name)
        assert (s.n, s.correct, s.accuracy, s.errors) == (4, 0, 0.0, 4), name
        assert [e["id"] for e in s.error_list] == ["q1", "q2", "q3", "q4"]
        assert all(e["stage"] == "call" and e["status_code"] == status for e in s.error_list), s.error_list
        if error_type:
            assert {e["type"] for e in s.error_list} == {error_type}
        assert s.p50_latency_ms is None and s.mean_tokens is None
        assert all(r.answer is None and not r.correct for r in report.results_for(name))
    assert "upstream exploded" in report.summary("broken").error_list[0]["message"]
    assert "sk-eval-test" not in json.dumps(report.to_dict(), default=str)  # keys never reach the report
    assert "openai/broken" in report.summary("fusion-dead-panel").error_list[0]["message"]


async def test_judge_grader(tmp_path: Path, fusion_registered) -> None:
    questions = write_questions(
        tmp_path / "judge.jsonl",
        [
            {"id": "capital", "question": "Capital of France?", "answer": "Paris", "grader": "judge"},
            {"id": "river", "question": "Longest river in France?", "answer": "the Loire", "grader": "judge"},
            {"id": "exact", "question": "Say OK", "answer": "ok", "grader": "exact"},
            {"id": "regex", "question": "Name a prime", "answer": "7", "grader": "regex", "pattern": r"\b(2|3|5|7|11)\b"},
        ],
    )
    replies = {"Capital of France?": "It is Paris.", "Longest river in France?": "The Seine.", "Say OK": "OK.", "Name a prime": "7"}

    def grader_text(body: dict[str, Any]) -> str:
        prompt = last_user(body)
        return "PASS" if ("Paris" in prompt.split("Candidate answer")[1]) else "FAIL"

    scripts = {
        "gpt-4o-mini": Script(text=lambda body: replies[last_user(body)]),
        "gpt-4o": Script(text=grader_text, prompt_tokens=50, completion_tokens=1),
    }
    with ScriptedServer(scripts) as server:
        solo = {"solo": member(server, "openai/gpt-4o-mini")}
        with pytest.raises(ConfigError, match="no grader model"):
            await arun_eval(questions, solo)
        report = await arun_eval(questions, solo, grader=member(server, JUDGE, temperature=0))
        graded = server.requests_for("gpt-4o")
    s = report.summary("solo")
    assert (s.correct, s.n, s.errors) == (3, 4, 0)
    assert [r.correct for r in report.results_for("solo")] == [True, False, True, True]
    assert [r.extracted for r in report.results_for("solo")][:2] == ["PASS", "FAIL"]
    assert s.grader_tokens == 2 * 51 and s.grader_cost == pytest.approx(2 * price(JUDGE, 50, 1), rel=1e-9)
    assert s.total_tokens == sum(r.total_tokens for r in report.results_for("solo"))  # grading is not the model's spend
    assert len(graded) == 2 and graded[0].body["temperature"] == 0 and "Reference answer:\nParis" in last_user(graded[0].body)


async def test_a_judge_graded_fusion_has_no_panel_columns(tmp_path: Path, fusion_registered) -> None:
    """With a judge grader the panel's answers are not graded, so the oracle, the vote and the outcomes are
    unknown: the table shows "-", not a count of 0."""
    questions = write_questions(tmp_path / "judge.jsonl", [{"id": "capital", "question": "Capital of France?", "answer": "Paris", "grader": "judge"}])
    scripts = {
        "gpt-4o-mini": Script(text="It is Paris."),
        "gpt-4.1-mini": Script(text="Paris."),
        "gpt-4o": Script(text=judge_text),
        "gpt-4.1": Script(text="Paris."),
        "gpt-4.1-nano": Script(text="PASS"),
    }
    with ScriptedServer(scripts) as server:
        spec = {"panel": [member(server, PANEL[0]), member(server, PANEL[1])], "judge": member(server, JUDGE), "synthesizer": member(server, SYNTH)}
        report = await arun_eval(questions, [{"name": "fusion", "model": "fusion/eval-test", "fusion": spec}], grader=member(server, PANEL[2]))
    s = report.summary("fusion")
    assert (s.correct, s.n) == (1, 1)
    assert s.fusion_stats["panel_any_correct"] is None and s.fusion_stats["vote_correct"] is None and s.fusion_stats["outcomes"] is None
    rows = [[cell.strip() for cell in line.split("|")[2:-1]] for line in markdown_report(report).splitlines() if line.startswith("| fusion |")]
    main_row, outcome_row = rows[0], rows[-1]  # between them: the outcome table's header, which starts "| fusion |" too
    assert main_row[2:4] == ["-", "-"]  # oracle, panel vote
    assert set(outcome_row[:6]) == {"-"}  # kept/lost a right majority, rescued/missed a right minority, right/wrong with none right


def panel_answers(offsets: dict[int, int | None]):
    """A member answering question N with 7N + offset: on an "Answer:" line, or in prose when offset is None."""

    def text(body: dict[str, Any]) -> str:
        number = int(re.match(r"Question (\d+):", last_user(body)).group(1))
        offset = offsets[number]
        return f"It comes to {7 * number}." if offset is None else f"Worked out.\nAnswer: {7 * number + offset}"

    return text


def judge_recording_markers(body: dict[str, Any]) -> str:
    """A judge that records each answer's final number with the marker copied in ("Answer: 7"), as the 1.5B
    did, and rejects the odd numbers (right or not)."""
    checks = [
        {"answer": x, "final": f"Answer: {n}", "verdict": "wrong" if n % 2 else "correct", "check": "-"}
        for x, n in ((x, int(extract_number(t))) for x, t in answer_blocks(body).items())
    ]
    return json.dumps({"answers": checks, "consensus": [], "contradictions": [], "partial_coverage": [], "unique_insights": [], "blind_spots": []})


async def test_the_outcome_table_counts_tied_votes_and_claims_read_by_the_judge(tmp_path: Path, fusion_registered) -> None:
    """Question 1: one member gives no final line, so the vote takes the judge's reading of it, which with
    another member's "Answer: 7" makes the majority; the judge rejects both 7s and accepts the 8. Question 2:
    three different answers, a tied panel vote; the judge accepts 14 and 16."""
    questions = write_questions(tmp_path / "two.jsonl", SOLO_QUESTIONS[:2])
    scripts = {
        "gpt-4o-mini": Script(text=panel_answers({1: None, 2: 0})),
        "gpt-4.1-mini": Script(text=panel_answers({1: 0, 2: 1})),
        "gpt-4.1-nano": Script(text=panel_answers({1: 1, 2: 2})),
        "gpt-4o": Script(text=judge_recording_markers),
        "gpt-4.1": Script(text=scripted_reply({1, 2})),
    }
    with ScriptedServer(scripts) as server:
        spec = {"panel": [member(server, m) for m in PANEL], "judge": member(server, JUDGE), "synthesizer": member(server, SYNTH)}
        report = await arun_eval(questions, [{"name": "fusion", "model": "fusion/eval-test", "fusion": spec}])
    first, second = report.results_for("fusion")
    assert first.fusion["aggregation"]["majority"] == "7" and first.fusion["aggregation"]["judge_read"] == 1
    assert second.fusion["vote"]["tied"] and not first.fusion["vote"]["tied"]
    s = report.summary("fusion")
    assert (s.fusion_stats["vote_tied"], s.fusion_stats["judge_read"], s.fusion_stats["judge_read_in_majority"]) == (1, 1, 1)
    assert s.fusion_stats["judge_checks"] == {"wrong_answers": 3, "wrong_accepted": 2, "right_answers": 3, "right_rejected": 2}
    assert s.fusion_stats["by_recommendation"] == {"checked_minority": {"n": 1, "right": 1}, "no_majority": {"n": 1, "right": 1}}
    lines = markdown_report(report).splitlines()
    outcome_header = next(line for line in lines if line.startswith("| fusion | kept"))
    assert lines[lines.index(outcome_header) + 2].endswith("| 1/2 | 1 (1) |")  # panel vote tied; claims read by the judge
    vote_header = next(line for line in lines if line.startswith("| fusion | wrong answers the judge accepted"))
    header, row = (line.strip("| ").split(" | ") for line in (vote_header, lines[lines.index(vote_header) + 2]))
    cells = dict(zip(header, row, strict=True))
    assert (cells["wrong answers the judge accepted"], cells["right answers the judge rejected"]) == ("2/3", "2/3")
    assert (cells["right after checked_minority"], cells["right after no_majority"], cells["right after trust_majority"]) == ("1/1", "1/1", "-")


def test_run_eval_sync_on_shipped_questions(fusion_registered) -> None:
    answers = {json.loads(line)["question"]: json.loads(line)["answer"] for line in ARITHMETIC.read_text().splitlines()}
    scripts = {"gpt-4o-mini": Script(text=lambda body: f"Answer: {answers[last_user(body)]}")}
    with ScriptedServer(scripts) as server:
        report = run_eval("arithmetic", {"mini": member(server, "openai/gpt-4o-mini")}, limit=10)
    assert report.n_questions == 10 and report.summary("mini").accuracy == 1.0
    assert report.questions_path == str(ARITHMETIC)


# ----- the command ----------------------------------------------------------------------------------------------


def _configs_file(tmp_path: Path) -> Path:
    path = tmp_path / "configs.yaml"
    path.write_text(
        """
x-server: &server
  api_base: ${EVAL_TEST_BASE}
  api_key: sk-eval-test
concurrency: 3
configurations:
  solo mini: {<<: *server, model: openai/gpt-4o-mini}
  fusion trio:
    model: fusion/trio
    fusion:
      panel: [{<<: *server, model: openai/gpt-4o-mini}, {<<: *server, model: openai/gpt-4.1-nano}, {<<: *server, model: openai/gpt-4.1-mini}]
      judge: {<<: *server, model: openai/gpt-4o}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cli_server(monkeypatch):
    scripts = {
        "gpt-4o-mini": Script(text=scripted_reply({1, 2, 3, 4, 5, 6})),
        "gpt-4.1-nano": Script(text=scripted_reply(set())),
        "gpt-4.1-mini": Script(text=scripted_reply({1, 2})),
        "gpt-4o": Script(text=lambda body: judge_text(body) if stage_of(body) == "judge" else scripted_reply(set(range(1, 9)))(body)),
    }
    with ScriptedServer(scripts) as server:
        monkeypatch.setenv("EVAL_TEST_BASE", server.base_url)
        yield server


def _check_outputs(out: Path, stdout: str, *, plot: bool = True) -> None:
    lines = stdout.strip().splitlines()
    assert lines[0].split(" | ")[:3] == ["| configuration", "accuracy [95% CI]", "n"]
    cells = {line.split(" | ")[0].removeprefix("| "): line.strip("| ").split(" | ") for line in lines[2:4]}
    header = lines[0].strip("| ").split(" | ")
    solo, fusion = (dict(zip(header, cells[name], strict=True)) for name in ("solo mini", "fusion trio"))
    assert (solo["accuracy [95% CI]"], solo["n"], solo["errors"]) == ("75.0% [41%, 93%]", "8", "0")
    assert solo["oracle (any member right)"] == solo["panel vote"] == solo["vs best solo W/L/T (McNemar p)"] == "-"
    # Panel: mini right on 1-6, nano never, 4.1-mini on 1-2; the judge's model writes every answer right.
    assert (fusion["accuracy [95% CI]"], fusion["oracle (any member right)"], fusion["panel vote"]) == ("100.0% [68%, 100%]", "6/8", "2/8")
    assert fusion["vs best solo W/L/T (McNemar p)"] == "2/0/6 (p=0.5)"
    assert re.match(r"[\d,]+$", fusion["mean tokens"]) and re.match(r"\d+\.\d\d s$", fusion["p50 latency"])
    assert "Paired baseline (W/L/T: questions the fusion won, lost, tied against it): solo mini." in stdout
    outcome_header = next(line for line in lines if line.startswith("| fusion | kept a right majority"))
    outcome_row = lines[lines.index(outcome_header) + 2]
    assert outcome_row == "| fusion trio | 2 | 0 | 4 | 0 | 2 | 0 | 0 | 0 | 0/8 | 0 (0) |"
    assert (out / "table.md").read_text(encoding="utf-8") == stdout
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in data["summaries"]] == ["solo mini", "fusion trio"]
    assert len(data["results"]) == 16 and {r["config"] for r in data["results"]} == {"solo mini", "fusion trio"}
    assert data["concurrency"] == 3  # from the file
    assert all(c["kind"] in ("solo", "fusion") for c in data["configs"]) and "sk-eval-test" not in json.dumps(data)
    # Each fusion's whole trace: analysis, letters, the vote, every call.
    trace = next(r for r in data["results"] if r["config"] == "fusion trio")["trace"]
    assert trace["analysis"] is not None and sorted(trace["letters"]) == ["A", "B", "C"]
    assert trace["aggregation"]["mechanism"] == "vote" and trace["aggregation"]["groups"]
    assert [c["role"] for c in trace["calls"]] == ["panel"] * 3 + ["judge", "synthesizer"]
    assert data["meta"]["litellm_version"] and "command" in data["meta"]
    assert len((out / "results.jsonl").read_text(encoding="utf-8").splitlines()) == 16
    if not plot:
        return
    if importlib.util.find_spec("matplotlib") is None:
        assert not (out / "plot.png").exists()
        pytest.skip("matplotlib is not installed (the optional eval extra): table and JSON checked, PNG not")
    png = (out / "plot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_eval_command_writes_table_json_and_plot(tmp_path: Path, questions_file: Path, cli_server, capsys, fusion_registered) -> None:
    out = tmp_path / "out"
    assert eval_cli.main([str(questions_file), "--config", str(_configs_file(tmp_path)), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert re.search(r"\[\d+/16[^\]]*\] solo mini q7: wrong \(read 50, expected 49\)", captured.err)
    assert "[16/16] " in captured.err and "results appended to" in captured.err
    if importlib.util.find_spec("matplotlib") is None:
        assert "pip install 'litellm-fusion[eval]'" in captured.err
    _check_outputs(out, captured.out)


def test_eval_command_resumes_where_it_stopped(tmp_path: Path, questions_file: Path, cli_server, capsys, fusion_registered) -> None:
    out, configs = tmp_path / "out", str(_configs_file(tmp_path))
    assert eval_cli.main([str(questions_file), "--config", configs, "--out", str(out), "--limit", "3", "--meta", "server=scripted"]) == 0
    first_calls = cli_server.stats()["total"]
    assert first_calls == 3 * (1 + 5)  # 3 questions: one solo call and five fusion calls each
    assert eval_cli.main([str(questions_file), "--config", configs, "--out", str(out), "--report-only", "--meta", "commit=c0ffee"]) == 0
    assert cli_server.stats()["total"] == first_calls, "--report-only asks nothing"
    written = json.loads((out / "results.json").read_text())
    assert written["n_questions"] == 3  # the questions both configurations answered
    # The commit given is the code that answered; this checkout's own state is recorded as the reporter's.
    assert written["meta"]["commit"] == "c0ffee" and "dirty" not in written["meta"]
    capsys.readouterr()
    assert eval_cli.main([str(questions_file), "--config", configs, "--out", str(out), "--meta", "server=scripted"]) == 0
    captured = capsys.readouterr()
    assert "resuming: 6 of 16 results already in" in captured.err and "[10/10] " in captured.err
    assert cli_server.stats()["total"] - first_calls == 5 * (1 + 5), "only the questions not yet answered are asked"
    assert json.loads((out / "results.json").read_text())["meta"]["server"] == "scripted"
    _check_outputs(out, captured.out, plot=False)
    # --report-only asks nothing and reports the questions every configuration answered.
    (out / "results.json").unlink()
    before = cli_server.stats()["total"]
    assert eval_cli.main([str(questions_file), "--config", configs, "--out", str(out), "--report-only"]) == 0
    assert cli_server.stats()["total"] == before and json.loads((out / "results.json").read_text())["n_questions"] == 8
    assert "resuming: 16 of 16" in capsys.readouterr().err
    # --fresh starts over.
    assert eval_cli.main([str(questions_file), "--config", configs, "--out", str(out), "--limit", "1", "--fresh"]) == 0
    assert "results appended to" in capsys.readouterr().err
    assert len((out / "results.jsonl").read_text(encoding="utf-8").splitlines()) == 2


def test_a_resumed_run_grades_logged_replies_again(tmp_path: Path, questions_file: Path, cli_server, capsys, fusion_registered) -> None:
    """A grade in the log is not trusted: the stored reply is graded again, so a grader fix reaches old results."""
    out, configs = tmp_path / "out", str(_configs_file(tmp_path))
    assert eval_cli.main([str(questions_file), "--config", configs, "--out", str(out), "--limit", "2"]) == 0
    graded = {(r["config"], r["id"]): r["correct"] for r in json.loads((out / "results.json").read_text())["results"]}
    log = out / "results.jsonl"
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    for entry in entries:  # what an older, wrong grader would have written
        entry["result"]["correct"] = not entry["result"]["correct"]
        for member in (entry["result"].get("fusion") or {}).get("panel") or []:
            member["correct"] = None
    log.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    before = cli_server.stats()["total"]
    assert eval_cli.main([str(questions_file), "--config", configs, "--out", str(out), "--report-only"]) == 0
    assert cli_server.stats()["total"] == before
    report = json.loads((out / "results.json").read_text())
    assert {(r["config"], r["id"]): r["correct"] for r in report["results"]} == graded
    fusions = [r for r in report["results"] if r["fusion"]]
    assert fusions and all(m["correct"] is not None for r in fusions for m in r["fusion"]["panel"] if m["status"] == "ok")
    capsys.readouterr()


def test_eval_command_errors_are_usage_errors(tmp_path: Path, questions_file: Path, capsys, monkeypatch) -> None:
    configs = _configs_file(tmp_path)
    monkeypatch.delenv("EVAL_TEST_BASE", raising=False)
    assert eval_cli.main([str(questions_file), "--config", str(configs)]) == 2
    assert "EVAL_TEST_BASE is not set" in capsys.readouterr().err
    monkeypatch.setenv("EVAL_TEST_BASE", "http://127.0.0.1:9/v1")
    assert eval_cli.main([str(questions_file), "--config", str(configs), "--only", "nope"]) == 2
    assert "no configuration named nope" in capsys.readouterr().err
    assert eval_cli.main([str(tmp_path / "none.jsonl"), "--config", str(configs)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_litellm_fusion_eval_subcommand(tmp_path: Path, questions_file: Path, cli_server, capsys, fusion_registered) -> None:
    from litellm_fusion.cli import commands as cli

    out = tmp_path / "out"
    code = cli.main(["eval", str(questions_file), "--config", str(_configs_file(tmp_path)), "--out", str(out)])
    assert code == 0
    _check_outputs(out, capsys.readouterr().out)


def test_eval_html_is_one_page_with_the_table_and_the_plot(
    tmp_path: Path, questions_file: Path, cli_server, capsys, fusion_registered
) -> None:
    from litellm_fusion.cli import commands as cli

    out, page_file = tmp_path / "out", tmp_path / "eval.html"
    code = cli.main(["eval", str(questions_file), "--config", str(_configs_file(tmp_path)), "--out", str(out), "--html", str(page_file)])
    assert code == 0
    assert f"wrote the HTML page to {page_file}" in capsys.readouterr().err
    page = page_file.read_text()
    results = json.loads((out / "results.json").read_text())
    for summary in results["summaries"]:
        assert f"<b>{summary['name']}</b>" in page and f"{summary['accuracy']:.1%}" in page
        assert f"{summary['ci_low']:.0%}–{summary['ci_high']:.0%}" in page  # the Wilson interval
    fusion_row = next(row for row in page.split("<tr>") if "<b>fusion trio</b>" in row)
    assert "6/8" in fusion_row and "2/8" in fusion_row and "2/0/6 (p=0.5)" in fusion_row  # oracle, panel vote, paired
    assert page.count("<tr><td>q") == len({r["id"] for r in results["results"]})  # every question, once
    assert "<script" not in page and "http" not in page.split("</head>", 1)[1].replace("http://www.w3.org/2000/svg", "")
    if importlib.util.find_spec("matplotlib") is None:
        assert html.escape("pip install 'litellm-fusion[eval]'") in page and "<img" not in page  # the note, escaped
    else:
        embedded = base64.b64decode(page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0])
        assert embedded == (out / "plot.png").read_bytes()
