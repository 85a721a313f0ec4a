"""Turn what LiteLLM hands the handler into a validated :class:`FusionRequest`, or a 400.

Everything here runs before any upstream call: the spec is resolved and validated, the messages are
checked, and the client's parameters are split into the ones the synthesizer gets and the ones that are
dropped. The client's ``api_base``, ``api_key``, headers and ``metadata`` are never forwarded.
"""

from __future__ import annotations

from typing import Any

import httpx

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._engine.budget import check_cost_cap, check_prompt_size
from litellm_fusion._engine.invocation import check_client_tools, incoming_depth, split_server_tool
from litellm_fusion._engine.run import FusionRequest
from litellm_fusion._engine.synthesis import FINAL_ANSWER_PARAMS
from litellm_fusion._host.clients import ClientVetter, openrouter_overrides
from litellm_fusion._host.routing import deployment_spec, fusion_model_names, router_names, underlying_models
from litellm_fusion._spec.config import FusionSpec, PresetStore
from litellm_fusion._web.member import member_web_mode
from litellm_fusion._web.search import SearchFn, make_search

__all__ = ["build_request", "fusion_overrides", "client_overrides", "validate_messages", "effective_timeout"]

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def fusion_overrides(optional_params: dict[str, Any]) -> dict[str, Any]:
    """The request's fusion overrides: ``extra_body.fusion`` with a top-level ``fusion`` over it."""
    extra_body = optional_params.get("extra_body") or {}
    from_body = extra_body.get("fusion") if isinstance(extra_body, dict) else None
    top = optional_params.get("fusion")
    for where, value in (("extra_body.fusion", from_body), ("fusion", top)):
        if value is not None and not isinstance(value, dict):
            raise FusionConfigError(f"{where} must be an object like {{'panel': [...], 'judge': '...'}}, got {type(value).__name__}")
    return {**(from_body or {}), **(top or {})}


def client_overrides(optional_params: dict[str, Any], configured: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the caller asked for: OpenRouter ``plugins`` and its ``openrouter:fusion`` server tool mapped, with
    the ``fusion`` fields over them.

    Inside the proxy LiteLLM hands the handler the deployment's own ``fusion`` dict (``configured``) when the
    client sent none: that is not an override, so only ``extra_body.fusion`` counts then.
    """
    server_tool = split_server_tool(optional_params.get("tools"), optional_params.get("tool_choice"))
    shaped = {**openrouter_overrides(optional_params.get("plugins")), **server_tool.overrides}
    if configured is not None and optional_params.get("fusion") == configured:
        return {**shaped, **fusion_overrides({"extra_body": optional_params.get("extra_body")})}
    return {**shaped, **fusion_overrides(optional_params)}


def validate_messages(messages: Any) -> list[dict[str, Any]]:
    """Check the conversation's shape; a bad message is a 400 naming its index and the fix."""
    if not isinstance(messages, list) or not messages:
        raise FusionConfigError("messages must be a non-empty list of {'role': ..., 'content': ...} objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise FusionConfigError(f"messages[{i}] must be an object with 'role' and 'content', got {type(message).__name__}")
        role = message.get("role")
        if role not in _ROLES:
            raise FusionConfigError(f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}, got {role!r}")
        content = message.get("content")
        if content is None and not (role == "assistant" and (message.get("tool_calls") or message.get("function_call"))):
            raise FusionConfigError(f"messages[{i}].content is missing; give a string or a list of content parts")
        if content is not None and not isinstance(content, (str, list)):
            raise FusionConfigError(f"messages[{i}].content must be a string or a list of content parts, got {type(content).__name__}")
    return [dict(message) for message in messages]


def effective_timeout(spec_timeout: float, host_timeout: Any) -> float:
    """The smaller of the spec's deadline and LiteLLM's ``timeout`` argument (a number or ``httpx.Timeout``)."""
    if isinstance(host_timeout, httpx.Timeout):
        host_timeout = host_timeout.read or host_timeout.pool
    if isinstance(host_timeout, (int, float)) and host_timeout > 0:
        return min(spec_timeout, float(host_timeout))
    return spec_timeout


def _refuse_nested_fusion(spec: FusionSpec, fusion_names: set[str]) -> None:
    roles = [(f"fusion.panel[{i}]", m) for i, m in enumerate(spec.panel)] + [("fusion.judge", spec.judge)]
    if spec.synthesizer is not None:
        roles.append(("fusion.synthesizer", spec.synthesizer))
    for path, member in roles:
        if member.model in fusion_names:
            raise FusionConfigError(f"{path}: '{member.model}' is a fusion model; fusion models cannot be nested (recursion)")


def build_request(
    *,
    model: str,
    messages: Any,
    optional_params: dict[str, Any],
    litellm_params: dict[str, Any] | None,
    timeout: Any,
    presets: PresetStore,
    router: Any | None = None,
    from_proxy_client: bool = False,
) -> FusionRequest:
    """Validate everything about one call and return the request the pipeline runs.

    SDK callers are trusted: their ``fusion`` (and OpenRouter ``plugins``) merge over the preset as they
    are. A proxy client's overrides are vetted against the deployment's ``clients`` policy and merge over
    the deployment's own ``fusion`` spec, which the Router still holds.
    """
    litellm_params = litellm_params or {}
    server_tool = split_server_tool(optional_params.get("tools"), optional_params.get("tool_choice"))
    check_client_tools(server_tool.tools)
    if from_proxy_client:
        configured = deployment_spec(router, litellm_params) or {}
        requested = client_overrides(optional_params, configured)
        proxy_models = router_names(router) - fusion_model_names(router)
        spec = presets.resolve(model, configured, client_overrides=requested, check_client=ClientVetter(proxy_models))
    else:
        spec = presets.resolve(model, client_overrides(optional_params))
    _refuse_nested_fusion(spec, fusion_model_names(router))
    checked = validate_messages(messages)
    check_prompt_size(checked, spec)
    aliases = underlying_models(router)
    web_modes = tuple(member_web_mode(m, spec, aliases) for m in spec.panel)
    final_params = {k: v for k, v in optional_params.items() if k in FINAL_ANSWER_PARAMS and v is not None}
    if server_tool.overrides:  # the server tool is ours: the synthesizer gets only the client's own tools
        final_params.pop("tools", None)
        final_params.pop("tool_choice", None)
        final_params.update({k: v for k, v in (("tools", server_tool.tools), ("tool_choice", server_tool.tool_choice)) if v is not None})
    return FusionRequest(
        name=model,
        spec=spec,
        messages=checked,
        final_params=final_params,
        timeout=effective_timeout(spec.timeout, timeout),
        aliases=aliases,
        cost_estimate=check_cost_cap(spec, checked, aliases, web_modes),
        web_modes=web_modes,
        web_search=_search_for(spec, web_modes, router),
        depth=incoming_depth(litellm_params),
    )


def _search_for(spec: FusionSpec, web_modes: tuple[str, ...], router: Any | None) -> SearchFn | None:
    """The search function when a member searches client-side (a missing backend is a 400 then); when only
    native members use the web, the configured backend if any, for the refusal fallback."""
    if all(mode == "off" for mode in web_modes):
        return None
    try:
        return make_search(spec.web.search, router=router)
    except FusionConfigError:
        if any(mode in ("client", "presearch") for mode in web_modes):
            raise
        return None
