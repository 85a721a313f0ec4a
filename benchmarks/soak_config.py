"""What one soak runs: :class:`SoakConfig` and its plan of batches."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SoakConfig", "split"]


@dataclass
class SoakConfig:
    """One soak: how many requests, how concurrent, how traced, and the limits of its criteria."""

    requests: int = 10_000
    concurrency: int = 16
    warmup: int = 300
    batches: int = 10
    """Measurement batches; the last 5 are the ones the slope is computed over (and, with ``trace="tail"``,
    the traced ones)."""
    seed: int = 7
    trace: str = "tail"
    """``tail``: tracemalloc runs only for the last 5 batches (plus one batch before them to let LiteLLM's
    churning caches be re-allocated under tracing); ``full``: from before the warm-up to the end."""
    traced_requests: int | None = None
    """Requests in the last 5 batches with ``trace="tail"`` (default: 10 % of ``requests``, at least 100)."""
    trace_warmup: int | None = None
    """Requests in the traced batch before them (default: a fifth of ``traced_requests``, at least 60)."""
    frames: int = 1
    """tracemalloc frames per allocation. 1 triples LiteLLM's per-call CPU; 8 multiplies it by about 8."""
    server: str = "child"
    max_wall: float = 600.0
    max_growth_mb: float = 2.0
    max_slope_pct: float = 20.0
    max_extra_tasks: int = 2
    quiet: bool = False
    tag: str = ""
    """Prefix of the progress lines (a worker's name with ``--procs``)."""

    def plan(self) -> list[tuple[int, str]]:
        """(requests, role) per batch; role is ``bulk``, ``trace-warmup`` or ``measured`` (the last 5)."""
        if self.batches < 6 or self.requests < self.batches:
            raise ValueError("need --batches >= 6 and --requests >= --batches")
        if self.trace == "full":
            return [(size, "measured" if i >= self.batches - 5 else "bulk") for i, size in enumerate(split(self.requests, self.batches))]
        traced = self.traced_requests or max(100, self.requests // 10)
        warm = self.trace_warmup or max(traced // 5, 60)  # 60 requests make 300 calls: more than LiteLLM's client cache holds
        rest = self.requests - traced - warm
        if traced < 5 or rest < self.batches - 6 or (self.batches == 6 and rest != 0):
            raise ValueError(
                f"--trace tail: {self.requests} requests cannot make {self.batches - 6} untraced batches, a traced warm-up "
                f"batch of {warm} and 5 traced batches of {traced} requests in all; change --requests, --batches or --traced-requests"
            )
        bulk = [(size, "bulk") for size in split(rest, self.batches - 6)] if self.batches > 6 else []
        # The batch before the traced ones runs traced too: structures LiteLLM rebuilds all the time (its client
        # cache turns over with every distinct timeout) are then re-allocated under tracing before the baseline.
        return bulk + [(warm, "trace-warmup")] + [(size, "measured") for size in split(traced, 5)]


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` near-equal integers (the larger ones first)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
