"""How one nested model call is timed and priced, and how its failure is described (secrets redacted)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import litellm

from litellm_fusion._core.usage import CallRecord, UsageLedger, cost_of, usage_of

__all__ = ["CompleteFn", "CallError", "PricedModel", "resolve_secret", "timed_call"]

CompleteFn = Callable[..., Awaitable[Any]]
"""The completion seam: ``litellm.acompletion`` by default, a Router's ``acompletion`` in the proxy, a fake in tests."""


class PricedModel(Protocol):
    """What :func:`timed_call` needs of the model it calls (a ``MemberSpec`` is one)."""

    model: str
    input_cost_per_token: float | None
    output_cost_per_token: float | None


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


def resolve_secret(value: Any) -> Any:
    """``os.environ/NAME`` read through LiteLLM's secret manager (as the proxy's own config does); anything else as is."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        return litellm.get_secret_str(value)
    return value


async def timed_call(
    complete: CompleteFn,
    kwargs: dict[str, Any],
    *,
    role: str,
    member: PricedModel,
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
