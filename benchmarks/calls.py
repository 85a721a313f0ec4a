"""The calls being measured: a fusion call (plain or streamed) and its hand-rolled twin, plus the state a run shares.

LiteLLM is imported inside the functions, not at the top: the run starts the upstream and the proxy process
before the driver pays for LiteLLM's import (see ``run.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from benchmarks.scenario import FUSION_MODEL, JUDGE, MESSAGES, PANEL, SYNTH, Scenario, member, standard_spec
from benchmarks.upstream import Upstream

if TYPE_CHECKING:
    from benchmarks.proxy import ProxyProcess

__all__ = [
    "Context", "HandRolled", "fusion_call", "fusion_stream", "consume", "nested_overhead", "hand_rolled", "client_cache_keys",
    "client_cache_size", "run_workers",
]  # fmt: skip


@dataclasses.dataclass
class Context:
    """What the measurements of one run share: the proxy process (if started) and the hand-rolled twins."""

    proxy: ProxyProcess | None = None
    hand_rolled: dict[str, HandRolled] = dataclasses.field(default_factory=dict)
    """By upstream base URL: the streaming measurement reuses the overhead measurement's."""


async def fusion_call(spec: dict[str, Any]) -> tuple[float, Any]:
    """(wall seconds, response) of one ``fusion/bench`` call."""
    import litellm

    started = time.perf_counter()
    response = await litellm.acompletion(model=FUSION_MODEL, messages=MESSAGES, fusion=spec)
    return time.perf_counter() - started, response


async def fusion_stream(spec: dict[str, Any]) -> dict[str, Any]:
    """TTFT (first non-empty content), the first progress line (reasoning), total time, and the gaps between content chunks."""
    import litellm

    started = time.perf_counter()
    stream = await litellm.acompletion(model=FUSION_MODEL, messages=MESSAGES, fusion=spec, stream=True)
    return await consume(stream, started)


async def consume(stream: Any, started: float) -> dict[str, Any]:
    """Read a stream to the end, timing it from ``started``."""
    first = first_progress = None
    stamps: list[float] = []
    text = []
    async for chunk in stream:
        choices = getattr(chunk, "choices", None) or []
        content = choices[0].delta.content if choices else None
        if first_progress is None and choices and getattr(choices[0].delta, "reasoning_content", None):
            first_progress = time.perf_counter()
        if content:
            now = time.perf_counter()
            first = first if first is not None else now
            stamps.append(now)
            text.append(content)
    end = time.perf_counter()
    return {
        "ttft": (first - started) if first is not None else None,
        "first_progress": (first_progress - started) if first_progress is not None else None,
        "total": end - started,
        "chunks": len(stamps),
        "gaps": [b - a for a, b in zip(stamps, stamps[1:], strict=False)],
        "chars": len("".join(text)),
    }


def nested_overhead(wall: float, trace: dict[str, Any]) -> float | None:
    """Wall time not spent inside nested calls: wall − (slowest ok member + judge + synthesizer), as the
    trace timed them (the nested litellm.acompletion calls themselves, LiteLLM's per-call work included)."""
    panel = [m["latency_ms"] for m in trace.get("panel", []) if m.get("status") == "ok"]
    judge = (trace.get("judge") or {}).get("latency_ms") or 0.0
    synth = (trace.get("synthesizer") or {}).get("latency_ms") or 0.0
    if not panel:
        return None
    return wall - (max(panel) + judge + synth) / 1000


class HandRolled:
    """The same nested calls, hand-rolled with plain ``litellm.acompletion``: gather the panel, then the
    judge, then the synthesizer. The judge and synthesizer prompts are the ones a warm-up fusion call
    actually sent (same sizes, same response_format), captured from the scripted server.

    ``timeout="fixed"`` passes timeout=60 to every call (what a hand-written script does);
    ``timeout="remaining"`` passes the request's remaining time, a different float per call, like fusion
    does, to isolate the cost of that choice (LiteLLM keys its SDK client cache on the timeout value).
    """

    def __init__(
        self,
        panel: list[dict[str, Any]],
        judge: dict[str, Any],
        synth: dict[str, Any],
        judge_body: dict[str, Any],
        synth_body: dict[str, Any],
    ) -> None:
        self.panel, self.judge, self.synth = panel, judge, synth
        self.judge_messages = judge_body["messages"]
        self.response_format = judge_body.get("response_format")
        self.synth_messages = synth_body["messages"]

    async def call(self, timeout: str = "fixed", stream: bool = False) -> dict[str, Any]:
        """``{"wall": s}``, or with ``stream`` the synthesizer's stream timed like :func:`consume`."""
        import litellm

        started = time.perf_counter()
        deadline = started + 300.0

        def limit() -> float:
            return 60.0 if timeout == "fixed" else max(0.001, deadline - time.perf_counter())

        common = {"num_retries": 0, "max_retries": 0}
        panel_limit = limit()
        answers = await asyncio.gather(*(litellm.acompletion(**m, messages=MESSAGES, timeout=panel_limit, **common) for m in self.panel))
        assert all(a.choices[0].message.content for a in answers)
        extra = {"response_format": self.response_format} if self.response_format else {}
        judged = await litellm.acompletion(**self.judge, messages=self.judge_messages, timeout=limit(), **extra, **common)
        assert judged.choices[0].message.content
        if stream:
            chunks = await litellm.acompletion(
                **self.synth, messages=self.synth_messages, timeout=limit(), stream=True, stream_options={"include_usage": True}, **common
            )
            return await consume(chunks, started)
        final = await litellm.acompletion(**self.synth, messages=self.synth_messages, timeout=limit(), **common)
        assert final.choices[0].message.content
        return {"wall": time.perf_counter() - started}


async def hand_rolled(up: Upstream, scenario: Scenario, ctx: Context) -> HandRolled:
    """Warm up fusion, capture the judge and synthesizer prompts it sent, build the hand-rolled twin
    (once per upstream)."""
    if up.base_url in ctx.hand_rolled:
        return ctx.hand_rolled[up.base_url]
    spec = standard_spec(up.base_url)
    for _ in range(scenario.warmup):
        await fusion_call(spec)
    judge_body = up.records(JUDGE, bodies=True, last=1)[0]["body"]
    synth_body = up.records(SYNTH, bodies=True, last=1)[0]["body"]
    hand = HandRolled(
        [member(up.base_url, n) for n in PANEL], member(up.base_url, JUDGE), member(up.base_url, SYNTH), judge_body, synth_body
    )
    for _ in range(scenario.warmup):
        await hand.call("fixed")
        await hand.call("remaining")
    ctx.hand_rolled[up.base_url] = hand
    return hand


def client_cache_keys() -> set[str]:
    """Keys of LiteLLM's in-memory SDK client cache (one per distinct client config)."""
    import litellm

    return set(litellm.in_memory_llm_clients_cache.cache_dict)


def client_cache_size() -> int:
    """Entries in LiteLLM's in-memory SDK client cache (max 200)."""
    return len(client_cache_keys())


async def run_workers(concurrency: int, worker: Callable[[int], Awaitable[None]]) -> float:
    """Run ``concurrency`` workers at once; the wall seconds until the last one is done."""
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return time.perf_counter() - started
