"""The proxy pre-call hook that serves OpenRouter's fusion server tool on non-fusion models (in process)."""

from __future__ import annotations

import litellm
import pytest

# The hook is a proxy callback, checked by the proxy's own auth checks (litellm[proxy]; the SDK-only CI venv has no proxy).
pytest.importorskip("fastapi", reason="needs litellm[proxy]: the proxy's auth checks")
pytest.importorskip("apscheduler", reason="needs litellm[proxy]: the proxy's auth checks")

from litellm_fusion._core.errors import FusionConfigError, ModelAccessDeniedError  # noqa: E402
from litellm_fusion._host import server_tool  # noqa: E402

TOOL = {"type": "openrouter:fusion", "parameters": {}}


def _router(*, flagged: bool = True) -> litellm.Router:
    return litellm.Router(
        model_list=[
            {"model_name": "m1", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "x"}},
            {"model_name": "m2", "litellm_params": {"model": "openai/gpt-4o", "api_key": "x"}},
            {
                "model_name": "fz-tool",
                "litellm_params": {"model": "fusion/fz-tool", "fusion": {"panel": ["m1"], "judge": "m2"}},
                "model_info": {"fusion_server_tool": flagged},
            },
        ]
    )


@pytest.fixture(autouse=True)
def _registered(fusion_registered):
    yield fusion_registered


@pytest.fixture
def router(monkeypatch):
    router = _router()
    monkeypatch.setattr(server_tool, "proxy_router", lambda: router)
    return router


def _key(models: list[str]):
    from litellm.proxy._types import UserAPIKeyAuth

    return UserAPIKeyAuth(api_key="sk-test-hook", models=models)


async def test_repoints_a_non_fusion_model_at_the_flagged_fusion(router) -> None:
    data = {"model": "m1", "messages": [], "tools": [TOOL], "fusion": {"temperature": 0.1}}
    out = await server_tool.fusion_server_tool.async_pre_call_hook(_key([]), None, data, "acompletion")
    assert out["model"] == "fz-tool" and out["fusion"] == {"synthesizer": "m1", "temperature": 0.1}
    assert out["tools"] == [TOOL], "the plugin reads the server tool itself"


async def test_leaves_other_requests_alone(router) -> None:
    hook = server_tool.fusion_server_tool
    assert await hook.async_pre_call_hook(_key([]), None, {"model": "m1", "messages": []}, "acompletion") is None
    assert await hook.async_pre_call_hook(_key([]), None, {"model": "fz-tool", "tools": [TOOL]}, "acompletion") is None
    assert await hook.async_pre_call_hook(_key([]), None, {"model": "m1", "tools": [TOOL]}, "aembedding") is None


async def test_the_key_must_be_allowed_the_fusion_deployment(router) -> None:
    with pytest.raises(ModelAccessDeniedError) as caught:
        await server_tool.fusion_server_tool.async_pre_call_hook(_key(["m1"]), None, {"model": "m1", "tools": [TOOL]}, "acompletion")
    assert caught.value.status_code == 403 and "'fz-tool'" in str(caught.value)
    out = await server_tool.fusion_server_tool.async_pre_call_hook(
        _key(["m1", "fz-tool"]), None, {"model": "m1", "tools": [TOOL]}, "acompletion"
    )
    assert out["model"] == "fz-tool"


async def test_a_team_limited_key_must_have_the_fusion_deployment_in_its_teams_models(router) -> None:
    """The key has no models of its own; its team's models decide (LiteLLM's rules), for the host deployment too."""
    from litellm.proxy._types import UserAPIKeyAuth

    team_key = UserAPIKeyAuth(api_key="sk-test-hook", models=[], team_id="t1", team_models=["m1"])
    with pytest.raises(ModelAccessDeniedError, match="'fz-tool'"):
        await server_tool.fusion_server_tool.async_pre_call_hook(team_key, None, {"model": "m1", "tools": [TOOL]}, "acompletion")
    allowed = UserAPIKeyAuth(api_key="sk-test-hook", models=[], team_id="t1", team_models=["m1", "fz-tool"])
    out = await server_tool.fusion_server_tool.async_pre_call_hook(allowed, None, {"model": "m1", "tools": [TOOL]}, "acompletion")
    assert out["model"] == "fz-tool"


async def test_no_flagged_deployment_is_a_400_naming_the_fix(monkeypatch) -> None:
    router = _router(flagged=False)
    monkeypatch.setattr(server_tool, "proxy_router", lambda: router)
    with pytest.raises(FusionConfigError, match="fusion_server_tool: true"):
        await server_tool.fusion_server_tool.async_pre_call_hook(_key([]), None, {"model": "m1", "tools": [TOOL]}, "acompletion")
