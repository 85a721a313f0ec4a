"""One ledger per fusion request that sums the tokens and cost of every nested call."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import litellm

__all__ = ["CallRecord", "UsageLedger", "call_trace", "usage_of", "cost_of"]


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
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def usage_dict(self) -> dict[str, int]:
        """The OpenAI-shaped usage of this call."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


def call_trace(record: CallRecord) -> dict[str, Any]:
    """One nested call as the trace lists it: role, model, start offset, latency, usage, cost."""
    return {
        "role": record.role,
        "model": record.model,
        "start_ms": record.start_ms,
        "latency_ms": round(record.latency_ms, 1),
        "usage": record.usage_dict(),
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

    def add(self, record: CallRecord) -> CallRecord:
        """Record one finished call (failed calls that reported usage are recorded too)."""
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record

    @property
    def prompt_tokens(self) -> int:
        """Sum of prompt tokens."""
        return sum(r.prompt_tokens for r in self.records)

    @property
    def completion_tokens(self) -> int:
        """Sum of completion tokens."""
        return sum(r.completion_tokens for r in self.records)

    @property
    def cost(self) -> float:
        """Sum of known costs in USD (calls with unknown prices count as 0)."""
        return sum(r.cost or 0.0 for r in self.records)

    @property
    def unpriced_models(self) -> list[str]:
        """Models whose calls had no known price, so the total cost undercounts them."""
        return sorted({r.model for r in self.records if r.cost is None})

    def usage_dict(self) -> dict[str, Any]:
        """Summed OpenAI-shaped usage plus ``cost``, as a streaming chunk's usage block wants it."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost": self.cost,
        }

    def to_usage(self) -> litellm.Usage:
        """Summed usage as a ``litellm.Usage`` with ``cost`` set (LiteLLM bills that as the response cost)."""
        usage = litellm.Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
        )
        usage.cost = self.cost
        return usage
