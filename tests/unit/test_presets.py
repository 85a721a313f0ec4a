"""Self-ensemble presets and OpenRouter's preset names: what they resolve to."""

from __future__ import annotations

import litellm
import pytest

from litellm_fusion._spec.config import FusionSpec, PresetStore
from litellm_fusion._spec.presets import BUILTIN_PRESETS
from litellm_fusion.local import LARGE


def sampling(member) -> tuple:
    return (member.temperature, member.extra_params.get("seed"))


@pytest.mark.parametrize("name", ["budget-self", "balanced-self", "frontier-self", "local-self"])
def test_a_self_ensemble_samples_one_model_k_times_each_differently(name):
    spec = PresetStore().resolve(name)
    assert len(spec.panel) >= 3
    assert len({m.model for m in spec.panel}) == 1
    assert len({sampling(m) for m in spec.panel}) == len(spec.panel), "each sample needs its own temperature or seed"
    assert spec.aggregation == "vote"


def test_local_self_is_the_large_local_model_judged_by_itself(monkeypatch):
    monkeypatch.setenv("LITELLM_FUSION_LOCAL_BASE", "http://127.0.0.1:8790/v1")
    spec = PresetStore().resolve("local-self")
    assert {m.model for m in [*spec.panel, spec.judge, spec.synthesizer_or_judge]} == {f"openai/{LARGE}"}
    assert {m.api_base for m in spec.panel} == {"http://127.0.0.1:8790/v1"}
    assert spec.straggler_grace is None, "a local server may answer the samples one after another"


def test_anthropic_samples_get_no_seed_which_litellm_would_refuse():
    for name, preset in BUILTIN_PRESETS.items():
        for member in FusionSpec.model_validate(preset).panel:
            if "seed" in member.extra_params:
                provider = member.model.split("/", 1)[0]
                assert "seed" in litellm.get_supported_openai_params(model=member.model.split("/", 1)[1], custom_llm_provider=provider), name


@pytest.mark.parametrize("name", ["general-high", "general-budget", "general-fast"])
def test_openrouter_preset_names_are_mixed_panels_of_three_vendors(name):
    spec = PresetStore().resolve(name)
    assert len({m.model.split("/")[0] for m in spec.panel}) == 3
