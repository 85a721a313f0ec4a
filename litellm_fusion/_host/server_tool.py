"""OpenRouter's fusion server tool on any proxy model: a pre-call hook the proxy admin opts into.

A request to a non-fusion proxy model ``M`` with ``tools: [{"type": "openrouter:fusion", ...}]`` is
re-pointed, before routing, at the fusion deployment marked ``model_info: {fusion_server_tool: true}``, with
``M`` as its synthesizer (the outer model that decides whether to call the panel). The plugin then reads the
server tool as on any fusion deployment (``_engine.invocation.split_server_tool``): the same client rules and key
checks apply, and the key must itself be allowed to call the fusion deployment (LiteLLM's
``can_key_call_resolved_model``: the key's models, its team's, access groups; LiteLLM's own check ran on ``M``
only, before this hook).

Enable it in the proxy config::

    litellm_settings:
      callbacks: ["litellm_fusion.fusion_server_tool"]
"""

from __future__ import annotations

from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._engine.invocation import SERVER_TOOL_TYPE
from litellm_fusion._host.routing import fusion_model_names, proxy_router
from litellm_fusion._host.tenancy import check_model_access

__all__ = ["HOST_FLAG", "FusionServerTool", "fusion_server_tool", "host_deployment"]

HOST_FLAG = "fusion_server_tool"
"""The ``model_info`` flag that marks the fusion deployment serving server-tool requests to other models."""


def _has_server_tool(tools: Any) -> bool:
    return isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") == SERVER_TOOL_TYPE for t in tools)


def host_deployment(router: Any) -> str | None:
    """The ``model_name`` of the fusion deployment whose ``model_info`` has ``fusion_server_tool: true``."""
    for deployment in router.get_model_list() or []:
        data = deployment if isinstance(deployment, dict) else deployment.model_dump()
        if (data.get("model_info") or {}).get(HOST_FLAG) is True and str((data.get("litellm_params") or {}).get("model", "")).startswith(
            "fusion/"
        ):
            return data["model_name"]
    return None


class FusionServerTool(CustomLogger):
    """Re-points server-tool requests to non-fusion models at the marked fusion deployment (see the module)."""

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str) -> dict[str, Any] | None:  # type: ignore[override]
        """Return the re-pointed request, or None to leave it alone; a 400/401 when it cannot be served."""
        if call_type not in ("completion", "acompletion") or not _has_server_tool(data.get("tools")):
            return None
        router = proxy_router()
        model = data.get("model")
        if router is None or not isinstance(model, str) or model in fusion_model_names(router):
            return None  # a fusion deployment reads the server tool itself
        host = host_deployment(router)
        if host is None:
            raise FusionConfigError(
                f"tools: '{SERVER_TOOL_TYPE}' on the non-fusion model '{model}' needs a fusion deployment marked "
                f"`model_info: {{{HOST_FLAG}: true}}` on this proxy; none is configured. Call a fusion model instead"
            )
        # The key, its team and their access groups must allow the fusion deployment itself: its configured
        # members are granted by access to it (tenancy), and LiteLLM checked only the requested model.
        await check_model_access([(f"tools: '{SERVER_TOOL_TYPE}' (served by the fusion deployment)", host)], user_api_key_dict, router)
        overrides = data.get("fusion")
        if overrides is not None and not isinstance(overrides, dict):
            raise FusionConfigError(f"fusion must be an object (dict), got {type(overrides).__name__}")
        # The model the client asked for is the outer model: it answers, or calls the panel.
        return {**data, "model": host, "fusion": {"synthesizer": model, **(overrides or {})}}


fusion_server_tool = FusionServerTool()
"""The instance a proxy config names in ``litellm_settings.callbacks``."""
