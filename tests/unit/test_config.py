"""The spec: validation messages, the merge rule, presets from dicts and YAML files."""

from __future__ import annotations

import litellm
import pytest

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._spec.config import FusionSpec, PresetStore, deep_merge, load_presets_file
from litellm_fusion._spec.presets import BUILTIN_PRESETS


def test_members_may_be_strings_or_dicts():
    spec = FusionSpec.model_validate({"panel": ["openai/a", {"model": "openai/b", "temperature": 0.3}], "judge": "openai/j"})
    assert [m.model for m in spec.panel] == ["openai/a", "openai/b"]
    assert spec.panel[1].temperature == 0.3
    assert spec.synthesizer_or_judge.model == "openai/j"


def test_every_field_has_a_description():
    from litellm_fusion._spec.config import MemberSpec

    for model in (FusionSpec, MemberSpec):
        missing = [name for name, f in model.model_fields.items() if not f.description]
        assert missing == [], f"{model.__name__} fields without description: {missing}"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"panel": ["openai/a"], "judge": "openai/j", "bogus": 1}, "fusion.bogus: unknown field"),
        (
            {"panel": [{"model": "openai/a", "temp": 1}], "judge": "openai/j"},
            "fusion.panel[0].temp: unknown field; allowed fields are: model",
        ),
        ({"panel": [{"model": "openai/a", "temperature": "hot"}], "judge": "openai/j"}, "fusion.panel[0].temperature"),
        ({"panel": [], "judge": "openai/j"}, "fusion.panel"),
        ({"panel": ["openai/a"] * 9, "judge": "openai/j"}, "at most 8"),
        ({"panel": ["fusion/budget"], "judge": "openai/j"}, "fusion models cannot be nested"),
        ({"panel": ["openai/a"], "judge": "fusion/frontier"}, "fusion.judge.model"),
        ({"panel": ["openai/a"], "judge": "openai/j", "min_quorum": 2}, "min_quorum=2 is larger than the panel"),
        ({"panel": ["openai/a"], "judge": "openai/j", "timeout": -1}, "fusion.timeout"),
    ],
)
def test_invalid_specs_are_400_naming_the_field(overrides, needle):
    with pytest.raises(FusionConfigError) as info:
        PresetStore().resolve("custom", overrides)
    assert info.value.status_code == 400
    assert isinstance(info.value, litellm.BadRequestError)
    assert needle in str(info.value)


def test_unknown_preset_lists_the_known_ones_and_the_fix():
    with pytest.raises(FusionConfigError) as info:
        PresetStore().resolve("nope", {})
    message = str(info.value)
    assert "unknown preset 'nope'" in message
    for name in BUILTIN_PRESETS:
        assert name in message
    assert "register(presets=" in message


def test_merge_rule_dicts_merge_lists_and_nulls_replace():
    base = {"panel": ["a", "b"], "judge": {"model": "j", "temperature": 0.1}, "straggler_grace": 3}
    merged = deep_merge(base, {"judge": {"temperature": 0.5}, "panel": ["c"], "straggler_grace": None})
    assert merged == {"panel": ["c"], "judge": {"model": "j", "temperature": 0.5}, "straggler_grace": None}
    assert base["panel"] == ["a", "b"], "the preset itself is never mutated"


def test_null_in_a_request_unsets_an_optional_field_and_is_a_400_for_a_required_one():
    store = PresetStore()
    assert store.resolve("budget", {"straggler_grace": None}).straggler_grace is None
    assert store.resolve("budget", {"synthesizer": "openai/gpt-4o"}).synthesizer.model == "openai/gpt-4o"
    with pytest.raises(FusionConfigError, match="fusion.timeout"):
        store.resolve("budget", {"timeout": None})


def test_request_overrides_deep_merge_over_a_preset():
    store = PresetStore()
    spec = store.resolve("budget", {"judge": {"temperature": 0.2}, "timeout": 12})
    assert [m.model for m in spec.panel] == BUILTIN_PRESETS["budget"]["panel"]
    assert spec.judge.model == BUILTIN_PRESETS["budget"]["judge"]
    assert spec.judge.temperature == 0.2
    assert spec.timeout == 12


def test_builtin_presets_use_models_in_litellms_price_map():
    for name, preset in BUILTIN_PRESETS.items():
        spec = FusionSpec.model_validate(preset)
        for member in [*spec.panel, spec.judge]:
            info = litellm.get_model_info(member.model)
            assert info["input_cost_per_token"] and info["output_cost_per_token"], (name, member.model)


def test_presets_from_yaml_file(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("presets:\n  mine:\n    panel: [openai/a, openai/b]\n    judge: openai/j\n    min_quorum: 2\n")
    assert load_presets_file(path)["mine"]["min_quorum"] == 2
    store = PresetStore()
    store.add(path)
    assert store.resolve("mine").min_quorum == 2


def test_invalid_yaml_preset_fails_at_load_naming_preset_and_field(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("mine:\n  panel: [openai/a]\n  judge: openai/j\n  quorum: 2\n")
    with pytest.raises(FusionConfigError) as info:
        PresetStore().add(path)
    assert "preset 'mine'" in str(info.value) and "fusion.quorum: unknown field" in str(info.value)


def test_presets_env_var_is_read(tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text("envpreset:\n  panel: [openai/a]\n  judge: openai/j\n")
    monkeypatch.setenv("LITELLM_FUSION_PRESETS", str(path))
    assert "envpreset" in PresetStore().names()


def test_missing_presets_file_is_a_clear_error(tmp_path):
    with pytest.raises(FusionConfigError, match="cannot read presets file"):
        load_presets_file(tmp_path / "absent.yaml")


def test_member_api_key_is_not_in_repr():
    spec = FusionSpec.model_validate({"panel": [{"model": "openai/a", "api_key": "sk-secret-123"}], "judge": "openai/j"})
    assert "sk-secret-123" not in repr(spec)


def test_builtin_presets_give_every_member_native_web_so_no_search_backend_is_needed():
    from litellm_fusion._web.member import member_web_mode

    for name, preset in BUILTIN_PRESETS.items():
        spec = FusionSpec.model_validate(preset)
        assert [member_web_mode(m, spec, {}) for m in spec.panel] == ["native"] * len(spec.panel), name
