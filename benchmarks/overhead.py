"""Overhead (the table's ``a`` rows): fusion's wall time against the critical path and a hand-rolled chain.

Fusion vs the critical path (slowest member + judge + synthesizer, as scripted) and vs the same nested calls
hand-rolled with plain ``litellm.acompletion``, interleaved, at concurrency 1 and 8; then driver CPU,
TCP connections and new LiteLLM SDK clients per request, sequentially against a 0 ms upstream.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.calls import Context, client_cache_keys, client_cache_size, fusion_call, hand_rolled, nested_overhead, run_workers
from benchmarks.scenario import JUDGE, JUDGE_JSON, PANEL, PANEL_TEXT, SYNTH, SYNTH_TEXT, Scenario, script, standard_spec
from benchmarks.stats import summary
from benchmarks.table import Row, row, signed
from benchmarks.table import ms as fmt_ms
from benchmarks.upstream import Upstream

__all__ = ["TITLE", "OverheadSettings", "measure", "rows"]

TITLE = "overhead vs critical path and hand-rolled"
VARIANTS = {
    "fusion": ("fusion", "litellm.acompletion(model='fusion/bench', fusion=spec)"),
    "hand_rolled": ("hand-rolled", "gather(panel) -> judge -> synthesizer with plain litellm.acompletion, timeout=60"),
    "hand_rolled_remaining_timeout": (
        "hand-rolled, timeout=remaining",
        "the same, timeout=<request's remaining seconds> per call, as fusion passes it",
    ),
}
"""Name -> (label in the table, what it does)."""


@dataclasses.dataclass(frozen=True)
class OverheadSettings:
    """How many interleaved rounds at c=1 and c=8, and how many probe requests."""

    rounds_c1: int = 12
    rounds_c8: int = 5
    """Rounds per worker at c=8; a round is one request of each variant, in rotating order."""
    probe_n: int = 10
    """Sequential requests per variant for the CPU and connections probe."""

    @classmethod
    def quick(cls) -> OverheadSettings:
        return cls(rounds_c1=4, rounds_c8=2, probe_n=6)


Variant = Callable[[], Awaitable[tuple[float, dict[str, Any] | None]]]


async def measure(scenario: Scenario, s: OverheadSettings, up: Upstream, ctx: Context) -> dict[str, Any]:
    """Section ``a``: interleaved walls at c=1 and c=8, then the CPU and connections probe."""
    import litellm

    up.set_scripts(scenario.scripts())
    spec = standard_spec(up.base_url)
    hand = await hand_rolled(up, scenario, ctx)
    crit = scenario.critical_path_ms()
    out: dict[str, Any] = {
        "critical_path_ms": crit,
        "scripted": {
            "panel_s": [scenario.lat(x) for x in scenario.panel_latency],
            "judge_s": scenario.lat(scenario.judge_latency),
            "synth_s": scenario.lat(scenario.synth_latency),
        },
        "variants": {name: what for name, (_, what) in VARIANTS.items()},
    }

    async def run_fusion() -> tuple[float, dict[str, Any] | None]:
        wall, response = await fusion_call(spec)
        return wall, response._hidden_params["fusion"]

    async def run_hand() -> tuple[float, dict[str, Any] | None]:
        return (await hand.call("fixed"))["wall"], None

    async def run_hand_remaining() -> tuple[float, dict[str, Any] | None]:
        return (await hand.call("remaining"))["wall"], None

    variants: dict[str, Variant] = {"fusion": run_fusion, "hand_rolled": run_hand, "hand_rolled_remaining_timeout": run_hand_remaining}
    for concurrency, rounds in ((1, s.rounds_c1), (8, s.rounds_c8)):
        out[f"c{concurrency}"] = await _interleaved(variants, concurrency, rounds, crit, up)
    out["cpu_and_connections"] = await _probe(variants, s.probe_n, up)
    out["cpu_and_connections"]["litellm_client_cache_size_now"] = client_cache_size()
    out["cpu_and_connections"]["litellm_client_cache_max"] = litellm.in_memory_llm_clients_cache.max_size_in_memory
    return out


async def _interleaved(variants: dict[str, Variant], concurrency: int, rounds: int, crit: float, up: Upstream) -> dict[str, Any]:
    """``concurrency`` workers, each running ``rounds`` rounds of every variant in rotating order."""
    names = list(variants)
    await up.wait_idle()
    up.reset()
    walls: dict[str, list[float]] = {name: [] for name in names}
    outside: list[float] = []
    pairs: list[float] = []

    async def worker(w: int) -> None:
        for r in range(rounds):
            shift = (w + r) % len(names)  # rotate the order so no variant always goes first
            got: dict[str, float] = {}
            for name in names[shift:] + names[:shift]:
                wall, trace = await variants[name]()
                walls[name].append(wall)
                got[name] = wall
                if trace is not None:
                    extra = nested_overhead(wall, trace)
                    if extra is not None:
                        outside.append(extra)
            pairs.append(got["fusion"] - got["hand_rolled"])

    cache_before = client_cache_keys()
    elapsed = await run_workers(concurrency, worker)
    stats = up.stats()
    cell: dict[str, Any] = {"elapsed_s": round(elapsed, 2)}
    for name in names:
        cell[name] = summary(walls[name])
        cell[name]["minus_critical_path_ms"] = {
            "p50": round(cell[name]["p50_ms"] - crit, 1),
            "p99": round(cell[name]["p99_ms"] - crit, 1),
        }
        cell[name]["raw_s"] = walls[name]
    cell["fusion_minus_hand_rolled_ms"] = {
        "p50": round(cell["fusion"]["p50_ms"] - cell["hand_rolled"]["p50_ms"], 1),
        "p99": round(cell["fusion"]["p99_ms"] - cell["hand_rolled"]["p99_ms"], 1),
        "paired_median": round(1000 * statistics.median(pairs), 1) if pairs else None,
    }
    cell["fusion_outside_nested_calls_ms"] = summary(outside)
    cell["upstream"] = {k: stats[k] for k in ("total", "max_in_flight", "connections", "new_connections", "disconnected_before_done")}
    cell["litellm_clients_created"] = len(client_cache_keys() - cache_before)
    return cell


async def _probe(variants: dict[str, Variant], n: int, up: Upstream) -> dict[str, Any]:
    """CPU and connections per request: sequential calls with zero scripted latency, fresh counters per
    variant. Driver CPU time (the upstream is another process) is robust to other load on the machine."""
    await up.wait_idle()
    up.set_scripts({name: script(PANEL_TEXT[name]) for name in PANEL} | {JUDGE: script(JUDGE_JSON), SYNTH: script(SYNTH_TEXT)})
    probe: dict[str, Any] = {"requests_per_variant": n, "upstream_latency_ms": 0}
    for name, variant in variants.items():
        await variant()
        await up.wait_idle()
        up.reset()
        before = client_cache_keys()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            await variant()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stats = up.stats()
        probe[name] = {
            "driver_cpu_ms_per_request": round(1000 * cpu / n, 1),
            "wall_ms_per_request": round(1000 * wall / n, 1),
            "upstream_calls": stats["total"],
            "tcp_connections_opened": stats["new_connections"],
            "litellm_clients_created": len(client_cache_keys() - before),
        }
    probe["fusion_minus_hand_rolled_cpu_ms"] = round(
        probe["fusion"]["driver_cpu_ms_per_request"] - probe["hand_rolled"]["driver_cpu_ms_per_request"], 1
    )
    return probe


def rows(a: dict[str, Any]) -> list[Row]:
    """The ``a`` rows of the table."""
    out = []
    for c in ("c1", "c8"):
        if c not in a:
            continue
        cell, crit = a[c], a["critical_path_ms"]
        conc = c[1:]
        for name, (label, _) in VARIANTS.items():
            v = cell[name]
            out.append(
                row(
                    "a",
                    f"{label}, c={conc}",
                    v["n"],
                    v["p50_ms"],
                    v["p99_ms"],
                    f"critical path {crit:.0f}",
                    f"{signed(v['minus_critical_path_ms']['p50'])} / {signed(v['minus_critical_path_ms']['p99'])} ms (p50/p99)",
                )
            )
        d = cell["fusion_minus_hand_rolled_ms"]
        o = cell["fusion_outside_nested_calls_ms"]
        out.append(
            row(
                "a",
                f"**overhead fusion − hand-rolled, c={conc}**",
                cell["fusion"]["n"],
                d["p50"],
                d["p99"],
                f"paired median {signed(d['paired_median'])} ms",
                f"fusion time outside nested calls p50 {fmt_ms(o.get('p50_ms'))} ms; {cell['litellm_clients_created']} new LiteLLM SDK clients",
            )
        )
    if "cpu_and_connections" in a:
        r = a["cpu_and_connections"]
        for name, (label, _) in VARIANTS.items():
            v = r[name]
            out.append(
                row(
                    "a",
                    f"{label}: CPU and connections, sequential, 0 ms upstream",
                    r["requests_per_variant"],
                    None,
                    None,
                    f"wall {v['wall_ms_per_request']:.0f} ms/request",
                    f"driver CPU **{v['driver_cpu_ms_per_request']:.1f} ms/request**; "
                    f"{v['tcp_connections_opened']} TCP connections opened for {v['upstream_calls']} calls; "
                    f"{v['litellm_clients_created']} new LiteLLM SDK clients",
                )
            )
    return out
