"""Panel width (the table's ``b`` rows): the wall of a 5-member panel against a 1-member one.

Same per-member latency for every member; if the panel runs in parallel, five members cost about what one
does, far from the sequential sum.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from benchmarks.calls import Context, fusion_call
from benchmarks.scenario import (
    EXTRA_PANEL,
    JUDGE,
    JUDGE_JSON,
    PANEL,
    PANEL_TEXT,
    SYNTH,
    SYNTH_TEXT,
    Scenario,
    member,
    script,
    standard_spec,
)
from benchmarks.stats import summary
from benchmarks.table import Row, row
from benchmarks.upstream import Upstream

__all__ = ["TITLE", "PanelWidthSettings", "measure", "rows"]

TITLE = "5-member vs 1-member panel"


@dataclasses.dataclass(frozen=True)
class PanelWidthSettings:
    """The scripted latencies of the wide and narrow panels, and how many calls of each."""

    member_latency: float = 0.5
    stage_latency: float = 0.1
    """Judge and synthesizer latency each."""
    pairs: int = 8
    """Calls of each width, alternating which goes first."""

    @classmethod
    def quick(cls) -> PanelWidthSettings:
        return cls(pairs=4)


async def measure(scenario: Scenario, s: PanelWidthSettings, up: Upstream, ctx: Context) -> dict[str, Any]:
    """Section ``b``: 1-member and 5-member panels, alternating."""
    five = (*PANEL, *EXTRA_PANEL)
    scripts = {name: script(PANEL_TEXT[name], scenario.lat(s.member_latency)) for name in five}
    scripts[JUDGE] = script(JUDGE_JSON, scenario.lat(s.stage_latency))
    scripts[SYNTH] = script(SYNTH_TEXT, scenario.lat(s.stage_latency))
    up.set_scripts(scripts)
    specs = {
        "panel_1": standard_spec(up.base_url, panel=[member(up.base_url, five[0])]),
        "panel_5": standard_spec(up.base_url, panel=[member(up.base_url, n) for n in five]),
    }
    for spec in specs.values():
        await fusion_call(spec)
    await up.wait_idle()
    up.reset()
    walls: dict[str, list[float]] = {k: [] for k in specs}
    slowest: dict[str, list[float]] = {k: [] for k in specs}
    for i in range(s.pairs):
        order = list(specs) if i % 2 == 0 else list(reversed(specs))
        for name in order:
            wall, response = await fusion_call(specs[name])
            walls[name].append(wall)
            trace = response._hidden_params["fusion"]
            assert all(m["status"] == "ok" for m in trace["panel"]), trace["panel"]
            slowest[name].append(max(m["latency_ms"] for m in trace["panel"]) / 1000)
    stats = up.stats()
    per_stage = scenario.lat(s.stage_latency)
    out: dict[str, Any] = {
        "member_latency_ms": round(1000 * scenario.lat(s.member_latency), 1),
        "judge_and_synth_latency_ms": round(1000 * per_stage, 1),
        "critical_path_ms": round(1000 * (scenario.lat(s.member_latency) + 2 * per_stage), 1),
        "if_sequential_5_ms": round(1000 * (5 * scenario.lat(s.member_latency) + 2 * per_stage), 1),
        "upstream_max_in_flight": stats["max_in_flight"],
    }
    for name in specs:
        out[name] = {**summary(walls[name]), "slowest_member": summary(slowest[name]), "raw_s": walls[name]}
    out["ratio_p50_5_over_1"] = round(out["panel_5"]["p50_ms"] / out["panel_1"]["p50_ms"], 3)
    return out


def rows(b: dict[str, Any]) -> list[Row]:
    """The ``b`` rows of the table."""
    if "panel_1" not in b:
        return []
    return [
        row(
            "b",
            "1-member panel",
            b["panel_1"]["n"],
            b["panel_1"]["p50_ms"],
            b["panel_1"]["p99_ms"],
            f"critical path {b['critical_path_ms']:.0f}",
            f"member {b['member_latency_ms']:.0f} ms, judge+synth {2 * b['judge_and_synth_latency_ms']:.0f} ms",
        ),
        row(
            "b",
            "5-member panel",
            b["panel_5"]["n"],
            b["panel_5"]["p50_ms"],
            b["panel_5"]["p99_ms"],
            f"sequential would be {b['if_sequential_5_ms']:.0f}",
            f"**{b['ratio_p50_5_over_1']:.2f}×** the 1-member wall (p50); upstream max in flight {b['upstream_max_in_flight']}",
        ),
    ]
