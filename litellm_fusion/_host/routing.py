"""Where nested calls go: a LiteLLM Router's ``model_name`` through that Router, anything else to LiteLLM.

Inside the proxy, the proxy's own Router is used, so a member named after a ``model_list`` entry gets
that deployment's credentials, rate limits and cooldowns, and keys live in one place. In the SDK, pass a
Router to ``register(router=...)`` for the same behaviour.
"""

from __future__ import annotations

import sys
from typing import Any

import litellm

from litellm_fusion._core.nested import CompleteFn

__all__ = ["proxy_router", "router_names", "fusion_model_names", "underlying_models", "deployment_spec", "routed_complete"]


def proxy_router() -> Any | None:
    """The running proxy's Router, or None outside the proxy.

    Never imports the proxy: importing ``litellm.proxy.proxy_server`` costs seconds and yields None anyway.
    """
    module = sys.modules.get("litellm.proxy.proxy_server")
    return getattr(module, "llm_router", None) if module is not None else None


def _deployments(router: Any) -> list[dict[str, Any]]:
    getter = getattr(router, "get_model_list", None)
    deployments = getter() if callable(getter) else getattr(router, "model_list", None)
    return [d if isinstance(d, dict) else d.model_dump() for d in deployments or []]


def router_names(router: Any | None) -> set[str]:
    """Every ``model_name`` the Router serves."""
    if router is None:
        return set()
    return {d["model_name"] for d in _deployments(router) if d.get("model_name")}


def fusion_model_names(router: Any | None) -> set[str]:
    """The Router's ``model_name``s that are themselves fusion models (not allowed as members)."""
    if router is None:
        return set()
    return {d["model_name"] for d in _deployments(router) if str((d.get("litellm_params") or {}).get("model", "")).startswith("fusion/")}


def underlying_models(router: Any | None) -> dict[str, str]:
    """``model_name`` → the LiteLLM model behind it, for price and capability look-ups of Router members."""
    if router is None:
        return {}
    models: dict[str, str] = {}
    for deployment in _deployments(router):
        model = (deployment.get("litellm_params") or {}).get("model")
        if deployment.get("model_name") and isinstance(model, str):
            models.setdefault(deployment["model_name"], model)
    return models


def deployment_spec(router: Any | None, litellm_params: dict[str, Any]) -> dict[str, Any] | None:
    """The ``fusion`` dict configured on the deployment serving this request, found by its model id.

    LiteLLM replaces a deployment's custom params with the request's, so the handler cannot tell them
    apart from ``optional_params`` alone; the Router still holds the configured value. When a client
    sends its own credentials the Router serves a per-request copy with a new id; the configured one is
    then ``original_model_id``.
    """
    if router is None:
        return None
    metadata = litellm_params.get("metadata") or {}
    info = {**(litellm_params.get("model_info") or {}), **(metadata.get("model_info") or {})}
    wanted = {info.get("original_model_id"), info.get("id")} - {None}
    for deployment in _deployments(router):
        if (deployment.get("model_info") or {}).get("id") in wanted:
            spec = (deployment.get("litellm_params") or {}).get("fusion")
            return dict(spec) if isinstance(spec, dict) else {}
    return None


def routed_complete(router: Any | None, fallback: CompleteFn | None = None) -> CompleteFn:
    """A completion function sending Router model names through the Router, the rest to LiteLLM."""
    direct = fallback or litellm.acompletion
    if router is None:
        return direct
    names = router_names(router)

    async def complete(**kwargs: Any) -> Any:
        if kwargs["model"] in names:
            # The outer Router owns retries and fallbacks; a member must not fall back on its own.
            return await router.acompletion(**kwargs, fallbacks=[])
        return await direct(**kwargs)

    return complete
