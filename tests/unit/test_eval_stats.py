"""The eval's statistics (Wilson, exact McNemar, the panel vote, fusion outcomes) and its question-major order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from litellm_fusion.evaluation import Question, arun_eval
from litellm_fusion.evaluation.stats import fusion_outcome, mcnemar_exact, paired, panel_vote, wilson
from litellm_fusion.testing import Script, ScriptedServer


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(6, 8, 0.4093, 0.9285), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (24, 48, 0.3639, 0.6361)],
)
def test_wilson_interval(k, n, low, high):
    assert wilson(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_of_nothing_is_everything():
    assert wilson(0, 0) == (0.0, 1.0)


def binomial_two_sided(won: int, lost: int) -> float:
    """The same test computed by summing both tails explicitly (floating point)."""
    n = won + lost
    pmf = [math.comb(n, i) * 0.5**n for i in range(n + 1)]
    observed = pmf[won]
    return min(1.0, sum(p for p in pmf if p <= observed + 1e-12))


@pytest.mark.parametrize(("won", "lost", "p"), [(0, 0, 1.0), (0, 6, 0.03125), (1, 6, 0.125), (2, 0, 0.5), (5, 5, 1.0), (3, 12, 0.03516)])
def test_exact_mcnemar(won, lost, p):
    assert mcnemar_exact(won, lost) == pytest.approx(p, abs=1e-5)
    assert mcnemar_exact(won, lost) == pytest.approx(binomial_two_sided(won, lost))
    assert mcnemar_exact(lost, won) == mcnemar_exact(won, lost)


def test_paired_counts_only_questions_both_answered():
    result = paired("f", "s", {"a": True, "b": True, "c": False, "d": True}, {"a": False, "b": True, "c": True})
    assert (result.n, result.won, result.lost, result.tied) == (3, 1, 1, 1) and result.p_value == 1.0


def member(key, correct, status="ok"):
    return {"status": status, "key": key, "correct": correct}


def test_panel_vote_is_the_most_common_answer_ties_to_the_first_listed():
    vote = panel_vote([member("5", False), member("7", True), member("7", True)])
    assert vote == {"answer": "7", "votes": 2, "tied": False, "correct": True, "right_members": 2, "right_majority": True}
    assert panel_vote([member("7", True), member("5", False), member("6", False)])["correct"] is True
    tied = panel_vote([member("5", False), member("7", True), member("6", False)])
    assert tied["correct"] is False and tied["tied"] is True and tied["answer"] == "5"
    # An answer the grader could not read is no vote: two unreadable answers do not outvote one right one.
    vote = panel_vote([member(None, False), member(None, False), member("7", True)])
    assert vote["answer"] == "7" and vote["correct"] is True and vote["votes"] == 1 and vote["tied"] is False
    assert panel_vote([member(None, False)]) == {
        "answer": None, "votes": 0, "tied": False, "correct": False, "right_members": 0, "right_majority": False,
    }  # fmt: skip
    # A failed member counts against a majority: 1 right of 3 members is a minority.
    vote = panel_vote([member("7", True), member(None, False, status="error"), member("5", False)])
    assert vote["right_majority"] is False and vote["right_members"] == 1
    assert panel_vote([{"status": "error"}]) is None


@pytest.mark.parametrize(
    ("panel", "fusion_right", "outcome"),
    [
        ([("7", True), ("7", True), ("5", False)], True, "kept_right_majority"),
        ([("7", True), ("7", True), ("5", False)], False, "lost_right_majority"),
        ([("7", True), ("5", False), ("5", False)], True, "rescued_right_minority"),
        ([("7", True), ("5", False), ("5", False)], False, "missed_right_minority"),
        ([("6", False), ("5", False), ("5", False)], True, "right_when_none_were"),
        ([("6", False), ("5", False), ("5", False)], False, "wrong_when_none_were"),
    ],
)
def test_fusion_outcome(panel, fusion_right, outcome):
    assert fusion_outcome(fusion_right, panel_vote([member(k, c) for k, c in panel])) == outcome


async def test_work_is_interleaved_question_by_question(fusion_registered):
    questions = [Question(id=f"q{i}", question=f"Question {i}", answer=i) for i in range(1, 4)]
    order: list[tuple[str, str]] = []
    with ScriptedServer({"a": Script(text="Answer: 1"), "b": Script(text="Answer: 2")}) as server:
        configs = {name: {"model": f"openai/{name}", "api_base": server.base_url, "api_key": "sk-x"} for name in ("a", "b")}
        await arun_eval(questions, configs, concurrency=1, on_result=lambda r: order.append((r.id, r.config)))
    assert order == [("q1", "a"), ("q1", "b"), ("q2", "a"), ("q2", "b"), ("q3", "a"), ("q3", "b")]


async def test_a_torn_last_line_and_a_changed_configuration_are_asked_again(tmp_path: Path, fusion_registered):
    log = tmp_path / "results.jsonl"
    questions = [Question(id="q1", question="Question 1", answer=1), Question(id="q2", question="Question 2", answer=2)]
    with ScriptedServer({"a": Script(text="Answer: 1")}) as server:
        config = {"a": {"model": "openai/a", "api_base": server.base_url, "api_key": "sk-x"}}
        await arun_eval(questions, config, concurrency=1, results_log=log)
        lines = log.read_text().splitlines()
        log.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed while writing q2
        report = await arun_eval(questions, config, concurrency=1, results_log=log)
        assert report.resumed == 1 and server.stats()["total"] == 3
        changed = {"a": {**config["a"], "temperature": 0.5}}
        report = await arun_eval(questions, changed, concurrency=1, results_log=log)
        assert report.resumed == 0 and server.stats()["total"] == 5


async def test_retry_errors_asks_failed_calls_again(tmp_path: Path, fusion_registered):
    log = tmp_path / "results.jsonl"
    questions = [Question(id="q1", question="Question 1", answer=1)]
    with ScriptedServer({"a": [Script(status=500, error_message="down"), Script(text="Answer: 1")]}) as server:
        config = {"a": {"model": "openai/a", "api_base": server.base_url, "api_key": "sk-x"}}
        first = await arun_eval(questions, config, concurrency=1, results_log=log)
        assert first.summary("a").errors == 1
        kept = await arun_eval(questions, config, concurrency=1, results_log=log)
        assert kept.resumed == 1 and server.stats()["total"] == 1, "without the flag a failed call is a result"
        retried = await arun_eval(questions, config, concurrency=1, results_log=log, retry_errors=True)
        assert retried.resumed == 0 and retried.summary("a").correct == 1 and server.stats()["total"] == 2
        again = await arun_eval(questions, config, concurrency=1, results_log=log, retry_errors=True)
        assert again.resumed == 1 and again.summary("a").correct == 1, "the later line replaces the failed one"
