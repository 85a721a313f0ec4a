"""Tokens and cost: :class:`Usage` (one type that sums itself), each nested call's :class:`CallRecord`, and
the per-request :class:`UsageLedger`. Every token or cost sum in the trace, the panel, the judge and the eval is
a :class:`Usage` sum, so they cannot disagree on how an unknown price counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import litellm

__all__ = ["Usage", "CallRecord", "UsageLedger", "call_trace", "usage_of", "cost_of"]


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Tokens and cost of one call or of several: ``a + b`` and :meth:`total` sum them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    """USD; None when no summed call had a known price (a known price plus an unknown one gives the known)."""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=cost,
        )

    @classmethod
    def total(cls, items: Iterable[Usage]) -> Usage:
        """The sum of ``items`` (zero tokens and no cost when there are none)."""
        return sum(items, cls())

    def tokens_dict(self) -> dict[str, int]:
        """The OpenAI-shaped usage: prompt, completion and total tokens."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": self.total_tokens}


@dataclass(frozen=True, kw_only=True)
class CallRecord:
    """Tokens, cost and latency of one nested call."""

    role: str
    """Which stage made the call: ``panel``, ``judge``, ``judge_repair``, ``synthesizer``."""
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    """USD as LiteLLM priced it; None when the model has no known price (counted as 0 in the total)."""
    latency_ms: float
    start_ms: float | None = None
    """When the call started, in ms since the request started (the ledger's origin); None if not measured."""

    @property
    def usage(self) -> Usage:
        """This call's tokens and cost."""
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, cost=self.cost)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.usage.total_tokens


def call_trace(record: CallRecord) -> dict[str, Any]:
    """One nested call as the trace lists it: role, model, start offset, latency, usage, cost."""
    return {
        "role": record.role,
        "model": record.model,
        "start_ms": record.start_ms,
        "latency_ms": round(record.latency_ms, 1),
        "usage": record.usage.tokens_dict(),
        "cost": record.cost,
    }


def usage_of(response: Any) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) of a LiteLLM response or usage object; zeros when absent."""
    usage = getattr(response, "usage", response)
    if usage is None:
        return 0, 0
    if isinstance(usage, dict):
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


def cost_of(
    response: Any,
    *,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: tuple[float | None, float | None] = (None, None),
) -> float | None:
    """The USD cost LiteLLM stamped on ``response``, else computed from the member's or the map's prices.

    Streams carry no stamped cost, so they are priced from their usage: first with the member's own
    per-token prices, then with LiteLLM's price map. Unknown prices give None, never an exception.
    """
    hidden = getattr(response, "_hidden_params", None) or {}
    stamped = hidden.get("response_cost")
    if isinstance(stamped, (int, float)):
        return float(stamped)
    input_price, output_price = prices
    if input_price is not None or output_price is not None:
        return prompt_tokens * (input_price or 0.0) + completion_tokens * (output_price or 0.0)
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    except Exception:  # unmapped model: LiteLLM raises; an unknown price is not an error here
        return None
    return float(prompt_cost + completion_cost)


@dataclass
class UsageLedger:
    """Every nested call of one request, in the order they finished."""

    records: list[CallRecord] = field(default_factory=list)
    origin: float = field(default_factory=time.perf_counter)
    """``time.perf_counter()`` when the request started: the zero of every ``start_ms``."""
    on_record: Callable[[CallRecord], None] | None = None
    """Told of each record as it is added (progress reporting)."""

    def offset_ms(self, at: float | None = None) -> float:
        """``at`` (a ``time.perf_counter()`` value, default now) in ms since the request started, rounded to 0.1."""
        return round(((time.perf_counter() if at is None else at) - self.origin) * 1000, 1)

    def scoped(self) -> UsageLedger:
        """A ledger of its own (one panel member's calls) that also adds each record to this one."""
        return UsageLedger(origin=self.origin, on_record=self.add)

    def add(self, record: CallRecord) -> CallRecord:
        """Record one finished call (failed calls that reported usage are recorded too)."""
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record

    @property
    def usage(self) -> Usage:
        """The sum over every call."""
        return Usage.total(r.usage for r in self.records)

    @property
    def prompt_tokens(self) -> int:
        """Sum of prompt tokens."""
        return self.usage.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        """Sum of completion tokens."""
        return self.usage.completion_tokens

    @property
    def cost(self) -> float:
        """Sum of known costs in USD (calls with unknown prices count as 0)."""
        return self.usage.cost or 0.0

    @property
    def unpriced_models(self) -> list[str]:
        """Models whose calls had no known price, so the total cost undercounts them."""
        return sorted({r.model for r in self.records if r.cost is None})

    def usage_dict(self) -> dict[str, Any]:
        """Summed OpenAI-shaped usage plus ``cost``, as a streaming chunk's usage block wants it."""
        usage = self.usage
        return {**usage.tokens_dict(), "cost": usage.cost or 0.0}

    def to_usage(self) -> litellm.Usage:
        """Summed usage as a ``litellm.Usage`` with ``cost`` set (LiteLLM bills that as the response cost)."""
        summed = self.usage
        usage = litellm.Usage(**summed.tokens_dict())
        usage.cost = summed.cost or 0.0
        return usage
