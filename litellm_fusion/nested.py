"""How one nested model call is made: its kwargs, its timing and how its failure is described."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import litellm

from .config import FusionSpec, MemberSpec
from .usage import CallRecord, UsageLedger, cost_of, usage_of

__all__ = ["CompleteFn", "CallError", "member_kwargs", "timed_call"]

CompleteFn = Callable[..., Awaitable[Any]]
"""The completion seam: ``litellm.acompletion`` by default, a Router's ``acompletion`` in the proxy, a fake in tests."""


MIN_SECRET_CHARS = 8
"""The shortest API key that error messages redact; real provider keys are far longer."""


@dataclass(frozen=True, kw_only=True)
class CallError:
    """Why a nested call failed, safe to show to the caller (secrets redacted)."""

    type: str
    """The exception class name, e.g. ``RateLimitError``, ``Timeout``."""
    status_code: int | None
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException, *, secrets: tuple[str, ...] = ()) -> CallError:
        """Describe ``exc``; any of ``secrets`` in its message is replaced by ``[redacted]``.

        Values shorter than ``MIN_SECRET_CHARS`` are placeholders (``api_key="x"`` for a local server), not
        secrets: replacing them would mangle every word that contains them.
        """
        message = str(exc) or type(exc).__name__
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                message = message.replace(secret, "[redacted]")
        if len(message) > 500:
            message = message[:500] + "…"
        status = getattr(exc, "status_code", None)
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            status = 408
        return cls(type=type(exc).__name__, status_code=status if isinstance(status, int) else None, message=message)

    def as_dict(self) -> dict[str, Any]:
        """The trace form."""
        return {"type": self.type, "status_code": self.status_code, "message": self.message}


def _resolve_secret(value: str | None) -> str | None:
    if value and value.startswith("os.environ/"):
        return litellm.get_secret_str(value)
    return value


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
        "api_key": _resolve_secret(member.api_key),
        "api_version": member.api_version,
        "input_cost_per_token": member.input_cost_per_token,
        "output_cost_per_token": member.output_cost_per_token,
        **member.extra_params,
        **(extra or {}),
    }
    return {key: value for key, value in kwargs.items() if value is not None}


async def timed_call(
    complete: CompleteFn,
    kwargs: dict[str, Any],
    *,
    role: str,
    member: MemberSpec,
    ledger: UsageLedger,
) -> tuple[Any, CallRecord]:
    """Make one non-streaming call, record its usage and cost in ``ledger``, and return both."""
    started = time.perf_counter()
    response = await complete(**kwargs)
    latency_ms = (time.perf_counter() - started) * 1000
    prompt_tokens, completion_tokens = usage_of(response)
    record = CallRecord(
        role=role,
        model=member.model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost_of(
            response,
            model=member.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            prices=(member.input_cost_per_token, member.output_cost_per_token),
        ),
        latency_ms=latency_ms,
        start_ms=ledger.offset_ms(started),
    )
    return response, ledger.add(record)


def secrets_of(spec: FusionSpec) -> tuple[str, ...]:
    """Every API key in ``spec`` (resolved), so error messages and logs can redact them."""
    members = [*spec.panel, spec.judge, spec.synthesizer_or_judge]
    return tuple(filter(None, (_resolve_secret(m.api_key) for m in members)))
