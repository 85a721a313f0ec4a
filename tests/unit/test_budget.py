"""Pre-flight caps: the worst-case cost estimate and the prompt size, both before any upstream call."""

from __future__ import annotations

import litellm
import pytest

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._engine.budget import estimate_max_cost
from litellm_fusion._host.request import build_request
from litellm_fusion._spec.config import FusionSpec, PresetStore

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


def build(fusion: dict, messages=MESSAGES):
    return build_request(
        model="custom", messages=messages, optional_params={"fusion": fusion}, litellm_params={}, timeout=None, presets=PresetStore()
    )


def spec(**extra) -> dict:
    return {"panel": ["openai/gpt-4o-mini", "openai/gpt-4.1-nano"], "judge": "openai/gpt-4o", "max_completion_tokens": 100, **extra}


def test_estimate_is_an_upper_bound_computed_from_the_price_map():
    prompt = litellm.token_counter(model="gpt-4o", messages=MESSAGES)
    mini, nano, big = (litellm.get_model_info(m) for m in ("openai/gpt-4o-mini", "openai/gpt-4.1-nano", "openai/gpt-4o"))
    panel = sum(prompt * i["input_cost_per_token"] + 100 * i["output_cost_per_token"] for i in (mini, nano))
    estimate = estimate_max_cost(FusionSpec.model_validate(spec()), MESSAGES)
    # At least the panel plus a judge and a synthesizer call that read 200 answer tokens each.
    floor = panel + 2 * ((prompt + 200) * big["input_cost_per_token"] + 100 * big["output_cost_per_token"])
    assert estimate > floor
    assert estimate < floor * 10


def test_over_the_cap_is_a_400_naming_both_numbers():
    with pytest.raises(FusionConfigError) as info:
        build(spec(max_cost=1e-7))
    assert (
        info.value.status_code == 400 and "above max_cost=$0.000000" in str(info.value) and "estimated worst-case cost $" in str(info.value)
    )


def test_under_the_cap_is_accepted_and_the_estimate_is_kept():
    request = build(spec(max_cost=1.0))
    assert 0 < request.cost_estimate < 1.0


def test_cap_without_a_completion_cap_says_what_to_set():
    with pytest.raises(FusionConfigError, match="set fusion.max_completion_tokens"):
        build({**spec(max_cost=1.0), "max_completion_tokens": None})


def test_cap_with_an_unpriced_model_says_how_to_price_it():
    with pytest.raises(FusionConfigError, match="no price for 'openai/my-local-model'.*input_cost_per_token"):
        build(spec(max_cost=1.0, panel=["openai/my-local-model"]))
    priced = {"model": "openai/my-local-model", "input_cost_per_token": 1e-9, "output_cost_per_token": 1e-9}
    assert build(spec(max_cost=1.0, panel=[priced])).cost_estimate > 0


def test_retries_multiply_the_estimate():
    once = build(spec(max_cost=10.0)).cost_estimate
    assert build(spec(max_cost=10.0, num_retries=2)).cost_estimate == pytest.approx(3 * once)


def test_prompt_above_the_size_cap_is_a_400():
    with pytest.raises(FusionConfigError, match="above max_prompt_chars=1000"):
        build(spec(max_prompt_chars=1000), messages=[{"role": "user", "content": "x" * 1001}])


def test_auto_and_required_add_the_outer_call_to_the_estimate():
    always = estimate_max_cost(FusionSpec.model_validate(spec()), MESSAGES)
    big = litellm.get_model_info("openai/gpt-4o")
    for invocation in ("auto", "required"):
        estimate = estimate_max_cost(FusionSpec.model_validate(spec(invocation=invocation)), MESSAGES)
        # At least one more call of the writer (gpt-4o): its 100-token completion cap at least.
        assert estimate >= always + 100 * big["output_cost_per_token"]
