"""Short-circuit (the table's ``f`` rows): cost and latency saved by ``short_circuit="exact"`` on an agreeing panel.

Every member gives the same answer, so with the short-circuit on fusion returns it without a judge or a
synthesizer: the critical path is the slowest member alone.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from benchmarks.calls import Context, fusion_call
from benchmarks.scenario import AGREED_TEXT, Scenario, standard_spec
from benchmarks.stats import summary
from benchmarks.table import Row, row
from benchmarks.upstream import Upstream

__all__ = ["TITLE", "ShortCircuitSettings", "measure", "rows"]

TITLE = "consensus short-circuit savings"


@dataclasses.dataclass(frozen=True)
class ShortCircuitSettings:
    """How many calls with the short-circuit off and on."""

    pairs: int = 10
    """Calls with each setting (off, exact), alternating which goes first."""

    @classmethod
    def quick(cls) -> ShortCircuitSettings:
        return cls(pairs=4)


async def measure(scenario: Scenario, s: ShortCircuitSettings, up: Upstream, ctx: Context) -> dict[str, Any]:
    """Section ``f``: an agreeing panel with ``short_circuit`` off and ``exact``, alternating."""
    up.set_scripts(scenario.scripts(panel_text=AGREED_TEXT))
    specs = {"off": standard_spec(up.base_url, short_circuit="off"), "exact": standard_spec(up.base_url, short_circuit="exact")}
    for spec in specs.values():
        await fusion_call(spec)
    await up.wait_idle()
    up.reset()
    walls: dict[str, list[float]] = {k: [] for k in specs}
    costs: dict[str, list[float]] = {k: [] for k in specs}
    taken: dict[str, list[Any]] = {k: [] for k in specs}
    for i in range(s.pairs):
        for name in list(specs) if i % 2 == 0 else list(reversed(specs)):
            wall, response = await fusion_call(specs[name])
            walls[name].append(wall)
            costs[name].append(response._hidden_params["response_cost"])
            taken[name].append(response._hidden_params["fusion"]["short_circuit"])
    stats = up.stats()
    out: dict[str, Any] = {
        "critical_path_ms": {
            "off": scenario.critical_path_ms(),
            "exact": round(1000 * max(scenario.lat(x) for x in scenario.panel_latency), 1),
        }
    }
    for name in specs:
        out[name] = {
            **summary(walls[name]),
            "mean_cost_usd": statistics.fmean(costs[name]),
            "short_circuit": sorted({str(x) for x in taken[name]}),
            "raw_s": walls[name],
            "raw_cost_usd": costs[name],
        }
    off, exact = out["off"], out["exact"]
    out["cost_saved_pct"] = round(100 * (off["mean_cost_usd"] - exact["mean_cost_usd"]) / off["mean_cost_usd"], 1)
    out["latency_saved_pct_p50"] = round(100 * (off["p50_ms"] - exact["p50_ms"]) / off["p50_ms"], 1)
    out["upstream_calls_by_model"] = stats["by_model"]
    return out


def rows(f: dict[str, Any]) -> list[Row]:
    """The ``f`` rows of the table."""
    out = []
    for name in ("off", "exact"):
        if name in f:
            v = f[name]
            out.append(
                row(
                    "f",
                    f"short_circuit={name}, agreeing panel",
                    v["n"],
                    v["p50_ms"],
                    v["p99_ms"],
                    f"critical path {f['critical_path_ms'][name]:.0f}",
                    f"mean cost ${v['mean_cost_usd']:.6f}; taken: {v['short_circuit']}",
                )
            )
    if "cost_saved_pct" in f:
        out.append(
            row(
                "f",
                "**saved by short_circuit=exact**",
                "",
                None,
                None,
                "",
                f"**{f['cost_saved_pct']}% cost, {f['latency_saved_pct_p50']}% latency (p50)**",
            )
        )
    return out
