"""What a proxy client may override: the web tool budget, from ``fusion.web`` or OpenRouter's ``max_tool_calls``."""

from __future__ import annotations

import pytest

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._host.clients import ClientVetter, openrouter_overrides
from litellm_fusion._spec.config import FusionSpec, PresetStore, map_openrouter_fields

TRUSTED = FusionSpec.model_validate(
    {"panel": ["m-a", "m-b"], "judge": "m-a", "web": {"mode": "client", "max_tool_calls": 6, "search": {"provider": "searxng"}}}
)
vet = ClientVetter(proxy_models={"m-a", "m-b"})


def test_openrouter_max_tool_calls_becomes_the_web_tool_budget():
    assert openrouter_overrides([{"id": "fusion", "analysis_models": ["m-a"], "max_tool_calls": 3}]) == {
        "panel": ["m-a"],
        "web": {"max_tool_calls": 3},
    }
    assert map_openrouter_fields({"model": "m-b", "max_tool_calls": 2}) == {"judge": "m-b", "web": {"max_tool_calls": 2}}


def test_a_client_may_lower_the_tool_budget():
    assert vet({"web": {"max_tool_calls": 2}}, TRUSTED) == {"web": {"max_tool_calls": 2}}
    assert vet({"web": {"max_tool_calls": 6}}, TRUSTED) == {"web": {"max_tool_calls": 6}}


@pytest.mark.parametrize("asked", [7, 0, "3", True, 2.5])
def test_a_client_cannot_raise_the_tool_budget_or_send_junk(asked):
    with pytest.raises(FusionConfigError, match=r"fusion\.web\.max_tool_calls .*from 1 to 6 on this deployment") as info:
        vet({"web": {"max_tool_calls": asked}}, TRUSTED)
    assert info.value.status_code == 400


@pytest.mark.parametrize("field", ["mode", "search", "fetch"])
def test_other_web_settings_stay_with_the_proxy(field):
    with pytest.raises(FusionConfigError, match=rf"fusion\.web\.{field}: not settable by clients"):
        vet({"web": {field: {}}}, TRUSTED)


def test_a_client_may_turn_the_vote_and_the_short_circuit_off():
    """``aggregation`` and ``short_circuit`` change how the answers are combined, not which models are called
    or with what endpoint, so a client may set them; a bad value is a 400 naming the field."""
    store = PresetStore()
    trusted = {"panel": ["m-a", "m-b"], "judge": "m-a", "short_circuit": "vote"}
    asked = {"aggregation": "off", "short_circuit": "off"}
    spec = store.resolve("custom", trusted, client_overrides=asked, check_client=vet)
    assert (spec.aggregation, spec.short_circuit) == ("off", "off")
    with pytest.raises(FusionConfigError, match="aggregation") as info:
        store.resolve("custom", trusted, client_overrides={"aggregation": "sometimes"}, check_client=vet)
    assert info.value.status_code == 400
