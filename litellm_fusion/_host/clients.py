"""What a proxy client may ask of a fusion deployment, and how much of the trace it gets back.

A proxy client is not trusted like the proxy's own config: it may pick models from an allow-list, tune a
few numbers, and lower the trace exposure, but never bring its own endpoint, key or headers into a nested
call (the CVE-2024-6587 class: a client-supplied ``api_base`` receiving the proxy's credentials).
OpenRouter's request shape (``plugins: [{"id": "fusion", ...}]``) is mapped onto the same overrides, so
clients written for OpenRouter Fusion work unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._spec.config import EXPOSURE_LEVELS, FusionSpec, map_openrouter_fields

__all__ = ["CLIENT_FIELDS", "CLIENT_MEMBER_FIELDS", "CLIENT_WEB_FIELDS", "openrouter_overrides", "ClientVetter", "exposed_trace"]

CLIENT_FIELDS = frozenset(
    {
        "panel",
        "judge",
        "synthesizer",
        "temperature",
        "max_completion_tokens",
        "timeout",
        "min_quorum",
        "expose",
        "invocation",
        "aggregation",
        "short_circuit",
        "progress",
        "web",
    }
)
"""Spec fields a proxy client may override (of ``web``, only ``max_tool_calls``, and only lower)."""

CLIENT_WEB_FIELDS = frozenset({"max_tool_calls"})
"""``web`` fields a proxy client may set: search backends, fetch limits and modes stay with the proxy."""

CLIENT_MEMBER_FIELDS = frozenset({"model", "temperature", "top_p", "max_tokens"})
"""Member fields a proxy client may set; endpoints, keys and raw LiteLLM params stay with the proxy."""


def openrouter_overrides(plugins: Any) -> dict[str, Any]:
    """Map OpenRouter's ``plugins: [{"id": "fusion", "analysis_models": [...], "model": judge, ...}]``.

    Other plugins are left alone (they are OpenRouter's, not ours). ``max_tool_calls`` becomes
    ``web.max_tool_calls``, which a client may lower but not raise (:class:`ClientVetter`).
    """
    if plugins is None:
        return {}
    if not isinstance(plugins, list):
        raise FusionConfigError("plugins must be a list like [{'id': 'fusion', 'analysis_models': [...], 'model': '...'}]")
    overrides: dict[str, Any] = {}
    for plugin in plugins:
        if not isinstance(plugin, dict) or plugin.get("id") != "fusion":
            continue
        overrides.update(map_openrouter_fields(plugin))
    return overrides


class ClientVetter:
    """Checks a proxy client's overrides against the deployment's policy (``spec.clients``).

    Args:
        proxy_models: the proxy's own non-fusion model names, the default allow-list.
    """

    def __init__(self, proxy_models: set[str]) -> None:
        self.proxy_models = proxy_models

    def __call__(self, overrides: dict[str, Any], trusted: FusionSpec) -> dict[str, Any]:
        """Return the overrides to apply (``expose`` capped at the deployment's level) or raise a 400."""
        policy = trusted.clients
        if not policy.allow_overrides:
            raise FusionConfigError(
                "this fusion deployment does not accept per-request overrides; remove `fusion`/`plugins` from the request"
            )
        for key in overrides:
            if key not in CLIENT_FIELDS:
                raise FusionConfigError(
                    f"fusion.{key}: not settable by clients of this proxy; clients may set: {', '.join(sorted(CLIENT_FIELDS))}"
                )
        allowed = set(policy.allowed_models) if policy.allowed_models is not None else self.proxy_models
        vetted = copy.deepcopy(overrides)
        panel = vetted.get("panel")
        if panel is not None:
            if not isinstance(panel, list):
                raise FusionConfigError("fusion.panel: must be a list of model names")
            if len(panel) > policy.max_panel:
                raise FusionConfigError(f"fusion.panel: at most {policy.max_panel} members on this deployment, got {len(panel)}")
            for i, member in enumerate(panel):
                self._check_member(member, f"fusion.panel[{i}]", allowed)
        for role in ("judge", "synthesizer"):
            if vetted.get(role) is not None:
                self._check_member(vetted[role], f"fusion.{role}", allowed)
        timeout = vetted.get("timeout")
        if isinstance(timeout, (int, float)) and timeout > trusted.timeout:
            raise FusionConfigError(f"fusion.timeout: at most {trusted.timeout:g}s on this deployment, got {timeout:g}")
        if "expose" in vetted:
            vetted["expose"] = _lower_exposure(vetted["expose"], trusted.expose)
        if "web" in vetted:
            _check_web(vetted["web"], trusted)
        return vetted

    @staticmethod
    def _check_member(member: Any, path: str, allowed: set[str]) -> None:
        if isinstance(member, dict):
            for key in member:
                if key not in CLIENT_MEMBER_FIELDS:
                    raise FusionConfigError(
                        f"{path}.{key}: clients cannot set endpoints, credentials or raw parameters; "
                        f"allowed member fields: {', '.join(sorted(CLIENT_MEMBER_FIELDS))}. Configure the model on the proxy instead"
                    )
            model = member.get("model")
        else:
            model = member
        if not isinstance(model, str) or model not in allowed:
            shown = ", ".join(sorted(allowed)) or "none"
            raise FusionConfigError(f"{path}: {model!r} is not a model clients may use on this deployment; allowed: {shown}")


def _check_web(web: Any, trusted: FusionSpec) -> None:
    # More tool calls mean more spend and more fetched pages than the admin configured: a client may only lower it.
    if not isinstance(web, dict):
        raise FusionConfigError("fusion.web: must be an object like {'max_tool_calls': 4}")
    for key in web:
        if key not in CLIENT_WEB_FIELDS:
            raise FusionConfigError(f"fusion.web.{key}: not settable by clients of this proxy; clients may set: max_tool_calls")
    asked = web.get("max_tool_calls")
    if asked is not None and (not isinstance(asked, int) or isinstance(asked, bool) or not 1 <= asked <= trusted.web.max_tool_calls):
        raise FusionConfigError(
            f"fusion.web.max_tool_calls (OpenRouter's max_tool_calls): must be an integer from 1 to "
            f"{trusted.web.max_tool_calls} on this deployment, got {asked!r}"
        )


def _lower_exposure(asked: Any, configured: str) -> str:
    if asked not in EXPOSURE_LEVELS:
        raise FusionConfigError(f"fusion.expose: must be one of {', '.join(EXPOSURE_LEVELS)}, got {asked!r}")
    return min(asked, configured, key=EXPOSURE_LEVELS.index)


def exposed_trace(trace: dict[str, Any], level: str) -> dict[str, Any] | None:
    """The trace as the caller may see it: ``full``, ``summary`` (member texts removed) or ``none``."""
    if level == "none":
        return None
    if level == "full":
        return trace
    summary = copy.deepcopy(trace)
    for member in summary.get("panel", []):
        member.pop("content", None)
    return summary
