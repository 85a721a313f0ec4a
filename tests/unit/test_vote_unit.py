"""Aggregation by vote: claims counted from the answers, the judge's checks, the recommendation, the trace
and what the synthesizer is given (structure, not wording), with the fake at the completion seam."""

from __future__ import annotations

import json
import re
from typing import Any, get_args

import pytest

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._core.usage import UsageLedger
from litellm_fusion._engine.judge import analyse
from litellm_fusion._engine.pipeline import FusionRequest, run_fusion
from litellm_fusion._engine.prompts import VOTE_GUIDANCE, render_vote
from litellm_fusion._engine.vote import Recommendation, claim_key, count_vote, final_claim
from litellm_fusion._spec.config import FusionSpec, PresetStore
from litellm_fusion.testing import CallInfo, FakeCompletion, Reply, upstream_error

EMPTY = {"consensus": [], "contradictions": [], "partial_coverage": [], "unique_insights": [], "blind_spots": []}


# ----- counting ------------------------------------------------------------------------------------


def test_final_claim_is_the_line_after_the_last_marker():
    assert final_claim("Answer: 3 is a guess\nso...\n**Final answer:** $57.24.") == "$57.24"
    assert final_claim("no marker at all, 57") is None
    assert final_claim("so the total is \\(\\boxed{57.24}\\).") == "57.24"
    assert final_claim("first \\boxed{3} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert final_claim("\\boxed{7}\nAnswer: 8") == "8", "an Answer: line wins over a box"


@pytest.mark.parametrize(("a", "b"), [("$57.24", "57.240"), ("80", "80.0 km/h"), ("1,234.5", "1234.50"), ("Tuesday", "**tuesday**")])
def test_equal_claims_share_a_key(a, b):
    assert claim_key(a) == claim_key(b)


@pytest.mark.parametrize(("a", "b"), [("57.24", "57.25"), ("2024-03-15", "2023-01-15"), ("3/4", "4")])
def test_different_claims_do_not(a, b):
    assert claim_key(a) != claim_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("March 15", "April 15"), ("80 km", "80 miles"), ("Tuesday, week 3", "Friday, week 3"), ("3 apples", "3 oranges"), ("x = 5", "y = 5")],
)
def test_one_number_with_different_words_is_not_one_claim(a, b):
    assert claim_key(a) != claim_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("50%", "50 percent"), ("57 USD", "$57.00"), ("80 km/h", "80"), ("3 apples", "3.0 Apples."), ("x = 5", "**x = 5.0**"), ("= 12", "12")],
)
def test_one_number_with_a_unit_or_the_same_words_is_one_claim(a, b):
    assert claim_key(a) == claim_key(b)


def answers(*claims: str) -> dict[str, str]:
    return {chr(65 + i): f"steps...\nAnswer: {c}" for i, c in enumerate(claims)}


def test_majority_is_trusted_when_the_judge_does_not_reject_all_of_it():
    vote = count_vote(answers("5", "5.0", "7"), {"A": {"verdict": "wrong"}, "B": {"verdict": "unsure"}, "C": {"verdict": "correct"}})
    assert vote.majority == "5" and vote.groups == [("5", ("A", "B")), ("7", ("C",))]
    assert vote.recommendation == "trust_majority" and vote.trusted == "5"


def test_a_checked_minority_overturns_a_majority_the_judge_rejected_answer_by_answer():
    vote = count_vote(answers("5", "5", "7"), {"A": {"verdict": "wrong"}, "B": {"verdict": "incorrect"}, "C": {"verdict": "correct"}})
    assert vote.recommendation == "checked_minority" and vote.trusted == "7" and vote.majority == "5"


def test_a_rejected_majority_with_no_checked_alternative_is_a_recheck():
    vote = count_vote(answers("5", "5", "7"), {"A": {"verdict": "wrong"}, "B": {"verdict": "wrong"}})
    assert vote.recommendation == "recheck" and vote.trusted is None


def test_a_rejected_majority_with_checked_answers_of_different_claims_says_so():
    judged = {"A": {"verdict": "wrong"}, "B": {"verdict": "wrong"}, "C": {"verdict": "wrong"}, "D": {"verdict": "correct"}}
    vote = count_vote(answers("5", "5", "5", "7", "8"), judged | {"E": {"verdict": "correct"}})
    assert vote.recommendation == "checked_minorities" and vote.trusted is None and vote.majority == "5"
    rendered = render_vote(vote.as_dict(), "n0nce")
    assert "Recommendation (checked_minorities)" in rendered
    # One checked minority claim among several unchecked ones is still a checked minority.
    assert count_vote(answers("5", "5", "5", "7", "8"), judged).recommendation == "checked_minority"


def test_every_recommendation_has_guidance_for_the_synthesizer():
    assert set(VOTE_GUIDANCE) == set(get_args(Recommendation))


def test_without_a_majority_a_single_checked_claim_or_nothing():
    assert count_vote(answers("1", "2", "3"), {"B": {"verdict": "correct"}}).recommendation == "checked_answer"
    assert count_vote(answers("1", "2", "3"), {"B": {"verdict": "correct"}}).trusted == "2"
    assert count_vote(answers("1", "2", "3"), {"A": {"verdict": "correct"}, "B": {"verdict": "correct"}}).recommendation == "no_majority"
    # Two of four is no strict majority.
    assert count_vote(answers("1", "1", "2", "3")).majority is None


def test_claims_come_from_the_answer_first_and_the_judge_only_when_the_answer_has_no_marker():
    vote = count_vote({"A": "Answer: 12", "B": "it is twelve"}, {"A": {"final": "13"}, "B": {"final": "12"}})
    assert vote.claims == {"A": "12", "B": "12"} and vote.sources == {"A": "answer", "B": "judge"}
    assert vote.majority == "12"
    assert count_vote({"A": "prose"}).sources == {"A": "none"}


@pytest.mark.parametrize("recorded", ["Answer: 2025-11-17", "**Answer:** 2025-11-17", "\\boxed{2025-11-17}", "2025-11-17."])
def test_a_claim_the_judge_recorded_with_its_marker_agrees_with_the_same_claim_stated(recorded):
    # Seen in the local eval's traces: the judge copied "Answer: " into its record of a truncated answer, and
    # the two members that both said 2025-11-17 were counted as two claims (no majority).
    vote = count_vote({"A": "counting day by day ...", "B": "Answer: 2025-11-17", "C": "Answer: 2025-12-07"}, {"A": {"final": recorded}})
    assert vote.claims["A"] == "2025-11-17" and vote.sources["A"] == "judge"
    assert vote.majority == "2025-11-17" and vote.recommendation == "trust_majority"


# ----- the judge ----------------------------------------------------------------------------------


def spec(**extra: Any) -> FusionSpec:
    return FusionSpec.model_validate({"panel": ["openai/a", "openai/b", "openai/c"], "judge": "openai/gpt-4o", **extra})


async def judge(fake: FakeCompletion, the_answers: dict[str, str], **extra: Any):
    names = {letter: f"openai/{letter.lower()}" for letter in the_answers}
    return await analyse(
        spec=spec(**extra),
        messages=[{"role": "user", "content": "q"}],
        answers=the_answers,
        names=names,
        nonce="n0nce",
        complete=fake,
        ledger=UsageLedger(),
        timeout=5,
    )


async def test_vote_is_the_default_and_asks_for_each_answers_claim_first_at_temperature_0():
    checks = [{"answer": "A", "final": "5", "verdict": "wrong", "check": "s2"}, {"answer": "Answer B", "final": 5, "verdict": "wrong", "check": ""}]
    checks.append({"answer": "C", "final": "7", "verdict": "correct", "check": "ok"})
    fake = FakeCompletion({"openai/gpt-4o": Reply(json.dumps({"answers": checks, **EMPTY}))})
    outcome = await judge(fake, answers("5", "5", "7"))
    schema = fake.calls[0]["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"])[0] == "answers" and "answers" in schema["required"]
    assert fake.calls[0]["temperature"] == 0
    assert outcome.aggregation == "vote" and outcome.vote is not None
    assert outcome.vote.recommendation == "checked_minority"
    # The trace's analysis names models, not letters; the synthesizer's keeps letters.
    assert [a["answer"] for a in outcome.analysis["answers"]] == ["openai/a", "openai/b", "openai/c"]
    assert not any(a["answer"].startswith("openai/") for a in outcome.lettered["answers"])
    trace = outcome.vote_trace({"A": "openai/a", "B": "openai/b", "C": "openai/c"})
    assert trace["mechanism"] == "vote" and trace["groups"][0] == {"claim": "5", "answers": ["openai/a", "openai/b"], "count": 2}


async def test_a_judge_temperature_that_is_set_is_kept():
    fake = FakeCompletion({"openai/gpt-4o": Reply(json.dumps(EMPTY))})
    await judge(fake, answers("1", "2"), judge={"model": "openai/gpt-4o", "temperature": 0.6})
    assert fake.calls[0]["temperature"] == 0.6


async def test_aggregation_off_asks_for_no_checks_and_counts_no_vote():
    fake = FakeCompletion({"openai/gpt-4o": Reply(json.dumps(EMPTY))})
    outcome = await judge(fake, answers("5", "5", "7"), aggregation="off")
    schema = fake.calls[0]["response_format"]["json_schema"]["schema"]
    assert "answers" not in schema["properties"]
    assert outcome.aggregation == "off" and outcome.vote is None and "answers" not in outcome.analysis
    assert outcome.vote_trace({}) == {"mechanism": "off"}


async def test_a_failed_judge_still_counts_the_vote_from_the_answers():
    fake = FakeCompletion({"openai/gpt-4o": Reply(error=upstream_error())})
    outcome = await judge(fake, answers("5", "5", "7"))
    assert outcome.failed_reason == "upstream_error"
    assert outcome.vote.recommendation == "trust_majority" and set(outcome.vote.verdicts.values()) == {"unsure"}


def test_aggregation_is_validated():
    with pytest.raises(FusionConfigError, match="fusion.aggregation"):
        PresetStore().resolve("budget", {"aggregation": "majority"})


# ----- through the pipeline -----------------------------------------------------------------------

def judging(verdict_of: dict[str, str]):
    """A judge reply built from the prompt it gets: each answer checked by its claim (letters are shuffled)."""

    def reply(call: CallInfo) -> str:
        checks = [
            {"answer": letter, "final": final_claim(text), "verdict": verdict_of[final_claim(text)], "check": "-"}
            for letter, text in call.answers.items()
        ]
        return json.dumps({"answers": checks, **EMPTY})

    return reply


def request(**extra: Any) -> FusionRequest:
    full = {"panel": ["openai/a", "openai/b", "openai/c"], "judge": "openai/judge", "synthesizer": "openai/writer", **extra}
    return FusionRequest(name="t", spec=FusionSpec.model_validate(full), messages=[{"role": "user", "content": "q?"}], timeout=5)


def panel_fake(judge_reply: Any) -> FakeCompletion:
    return FakeCompletion(
        {
            "openai/a": Reply("work\nAnswer: 41"),
            "openai/b": Reply("work\nAnswer: 41"),
            "openai/c": Reply("work\nAnswer: 42"),
            "openai/judge": Reply(judge_reply),
            "openai/writer": Reply("Answer: 42"),
        }
    )


async def test_the_trace_shows_the_vote_and_the_synthesizer_gets_it():
    seam = panel_fake(judging({"41": "wrong", "42": "correct"}))
    result = await run_fusion(request(), complete=seam)
    aggregation = result.trace["aggregation"]
    assert aggregation["mechanism"] == "vote" and aggregation["recommendation"] == "checked_minority"
    assert aggregation["majority"] == "41" and aggregation["trusted"] == "42"
    assert {frozenset(g["answers"]) for g in aggregation["groups"]} == {frozenset({"openai/a", "openai/b"}), frozenset({"openai/c"})}
    by_model = {a["answer"]: a for a in aggregation["answers"]}
    assert by_model["openai/c"] == {"answer": "openai/c", "claim": "42", "source": "answer", "verdict": "correct"}
    assert [a["answer"] for a in result.trace["analysis"]["answers"]].count("openai/a") == 1
    brief = next(c for c in seam.calls if c["model"] == "openai/writer")["messages"][0]["content"]
    vote_block = re.search(r"<<<VOTE (\w+)>>>\n(.*)\n<<<END VOTE \1>>>", brief, re.S)
    assert vote_block is not None and "checked_minority" in vote_block.group(2)
    assert "'41': 2 of 3" in vote_block.group(2) and "'42': 1 of 3" in vote_block.group(2)


async def test_aggregation_off_leaves_the_vote_out_of_the_brief_and_says_so_in_the_trace():
    seam = panel_fake(json.dumps(EMPTY))
    result = await run_fusion(request(aggregation="off"), complete=seam)
    assert result.trace["aggregation"] == {"mechanism": "off"}
    brief = next(c for c in seam.calls if c["model"] == "openai/writer")["messages"][0]["content"]
    assert "<<<VOTE" not in brief and "<<<ANALYSIS" in brief


def test_agreed_claim_needs_every_answer_to_state_the_same_claim():
    from litellm_fusion._engine.consensus import agreed_claim

    assert agreed_claim(["long work\nAnswer: $57.24", "other work\nAnswer: 57.240"]) == "long work\nAnswer: $57.24"
    assert agreed_claim(["Answer: 57.24", "Answer: 57.25"]) is None
    assert agreed_claim(["Answer: 57.24", "it is 57.24"]) is None, "an answer without a claim is no vote"
    assert agreed_claim(["Answer: 1"]) is None


async def test_short_circuit_vote_skips_judge_and_synthesizer_only_when_the_vote_is_unanimous():
    seam = panel_fake(json.dumps(EMPTY))
    seam.script["openai/c"] = Reply("other work\nAnswer: 41.0")
    result = await run_fusion(request(short_circuit="vote"), complete=seam)
    assert result.trace["short_circuit"] == "vote" and result.trace["judge"] is None and result.trace["synthesizer"] is None
    assert seam.models_called().count("openai/judge") == 0 and result.response.choices[0].message.content.endswith("41")
    assert result.trace["aggregation"]["groups"][0]["count"] == 3 and claim_key(result.trace["aggregation"]["majority"]) == "41"
    split = await run_fusion(request(short_circuit="vote"), complete=panel_fake(judging({"41": "unsure", "42": "unsure"})))
    assert split.trace["short_circuit"] is None and split.trace["aggregation"]["recommendation"] == "trust_majority"
