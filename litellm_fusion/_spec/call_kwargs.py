"""How a member of a spec becomes the keyword arguments of one nested LiteLLM call, and which secrets a spec
carries (so errors and logs can redact them)."""

from __future__ import annotations

from typing import Any

from litellm_fusion._core.nested import resolve_secret
from litellm_fusion._spec.config import FusionSpec, MemberSpec

__all__ = ["member_kwargs", "secrets_of"]


def member_kwargs(
    member: MemberSpec,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    *,
    default_temperature: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for one nested completion call.

    Keys whose value is None are left out: a None passed to a Router call overrides the deployment's own
    value. Retries default to the spec's (0), and the provider client's own retries are switched off
    too, so the number of upstream requests is exactly what the spec says.

    LiteLLM gets a stable ``timeout`` (the member's own, else the spec's): it keys its HTTP-client cache
    on it, so passing each call's remaining time would build a new client and connection per call. The
    shrinking deadlines are enforced by the wall clock around each call instead (panel, judge, request).
    """
    retries = member.num_retries if member.num_retries is not None else spec.num_retries
    kwargs: dict[str, Any] = {
        "model": member.model,
        "messages": messages,
        "timeout": min(member.timeout or spec.timeout, spec.timeout),
        "num_retries": retries,
        "max_retries": 0,
        "temperature": member.temperature if member.temperature is not None else default_temperature,
        "top_p": member.top_p,
        "max_tokens": member.max_tokens or spec.max_completion_tokens,
        "api_base": member.api_base,
        "api_key": resolve_secret(member.api_key),
        "api_version": member.api_version,
        "input_cost_per_token": member.input_cost_per_token,
        "output_cost_per_token": member.output_cost_per_token,
        **member.extra_params,
        **(extra or {}),
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def secrets_of(spec: FusionSpec) -> tuple[str, ...]:
    """Every API key in ``spec`` (resolved), so error messages and logs can redact them."""
    members = [*spec.panel, spec.judge, spec.synthesizer_or_judge]
    return tuple(filter(None, (resolve_secret(m.api_key) for m in members)))
