"""Straggler (the table's ``c`` rows): p99 with one hanging member, quorum + grace against wait-for-all.

One member of three never answers. With a majority quorum and a straggler grace, fusion stops waiting for
it shortly after the quorum; with ``straggler_grace=None`` only ``panel_timeout`` bounds the wait. Either
way the hanging member's upstream connection must be closed by the client.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from benchmarks.calls import Context, fusion_call, run_workers
from benchmarks.scenario import PANEL, Scenario, standard_spec
from benchmarks.stats import summary
from benchmarks.table import Row, row
from benchmarks.table import ms as fmt_ms
from benchmarks.upstream import Upstream

__all__ = ["TITLE", "StragglerSettings", "measure", "rows"]

TITLE = "p99 with one hanging member"
HANG_MODEL = PANEL[2]


@dataclasses.dataclass(frozen=True)
class StragglerSettings:
    """How many requests per mode, and the grace and panel timeout compared."""

    n: int = 8
    """Requests per mode."""
    concurrency: int = 4
    grace: float = 0.5
    """straggler_grace of the quorum mode (scaled)."""
    panel_timeout: float = 5.0
    """panel_timeout of the wait-for-all mode (scaled)."""
    include_default: bool = True
    """Also one round with the spec defaults (a 10 s grace: slow)."""

    @classmethod
    def quick(cls) -> StragglerSettings:
        return cls(n=4, concurrency=4, include_default=False)


async def measure(scenario: Scenario, s: StragglerSettings, up: Upstream, ctx: Context) -> dict[str, Any]:
    """Section ``c``: each mode's requests with the third member hanging."""
    scripts = scenario.scripts()
    scripts[HANG_MODEL] = {"hang": True}
    up.set_scripts(scripts)
    grace, panel_timeout = scenario.lat(s.grace), scenario.lat(s.panel_timeout)
    judge_synth = scenario.lat(scenario.judge_latency) + scenario.lat(scenario.synth_latency)
    quorum_arrives = sorted(scenario.lat(x) for x in scenario.panel_latency[:2])[1]  # the 2nd answer makes the majority (2 of 3)
    modes = {
        "quorum_grace": (
            standard_spec(up.base_url, straggler_grace=grace),
            f"majority quorum (2 of 3) + straggler_grace={grace:g}s",
            quorum_arrives + grace + judge_synth,
        ),
        "wait_for_all": (
            standard_spec(up.base_url, straggler_grace=None, panel_timeout=panel_timeout),
            f"straggler_grace=None, panel_timeout={panel_timeout:g}s",
            panel_timeout + judge_synth,
        ),
    }
    if s.include_default:
        modes["defaults"] = (
            standard_spec(up.base_url),
            "spec defaults (straggler_grace=10s, no panel_timeout)",
            quorum_arrives + 10.0 + judge_synth,
        )
    await fusion_call(modes["quorum_grace"][0])  # warm-up
    out: dict[str, Any] = {"hanging_member": f"openai/{HANG_MODEL}", "concurrency": s.concurrency}
    for name, (spec, label, expected) in modes.items():
        n = s.n if name != "defaults" else s.concurrency  # one round of the slow default
        out[name] = {"label": label, "expected_ms": round(1000 * expected, 1), **await _mode(spec, n, s.concurrency, up)}
    q, w = out["quorum_grace"], out["wait_for_all"]
    out["p99_saved_ms"] = round(w["p99_ms"] - q["p99_ms"], 1)
    out["p99_saved_pct"] = round(100 * (w["p99_ms"] - q["p99_ms"]) / w["p99_ms"], 1)
    return out


async def _mode(spec: dict[str, Any], n: int, concurrency: int, up: Upstream) -> dict[str, Any]:
    """``n`` requests with ``spec``, ``concurrency`` at a time; what became of the hanging member."""
    await up.wait_idle()
    up.reset()
    walls: list[float] = []
    gave_up: list[float] = []
    statuses: dict[str, int] = {}
    queue = list(range(n))

    async def worker(_: int) -> None:
        while queue:
            queue.pop()
            wall, response = await fusion_call(spec)
            walls.append(wall)
            entry = next(m for m in response._hidden_params["fusion"]["panel"] if m["model"] == f"openai/{HANG_MODEL}")
            statuses[entry["status"]] = statuses.get(entry["status"], 0) + 1
            gave_up.append(entry["latency_ms"] / 1000)

    await run_workers(min(concurrency, n), worker)
    # Every fusion call has returned: is any hanging member's upstream request still open?
    open_at_return = sum(r["ended_at"] is None for r in up.records(HANG_MODEL))
    idle = (await up.wait_idle(10.0))["idle"]
    hung = up.records(HANG_MODEL)
    held = [r["ended_at"] - r["started_at"] for r in hung if r["ended_at"] is not None]
    stats = up.stats()
    return {
        **summary(walls),
        "hanging_member_status": statuses,
        "hanging_member_given_up_after": summary(gave_up),
        "hanging_requests": len(hung),
        "hanging_closed_by_client": sum(r["disconnected"] for r in hung),
        "hanging_open_when_fusion_returned": open_at_return,
        "disconnected_before_done": stats["disconnected_before_done"],
        "hanging_connection_held_server_side": summary(held),
        "upstream_idle_after": idle,
        "raw_s": walls,
    }


def rows(c: dict[str, Any]) -> list[Row]:
    """The ``c`` rows of the table."""
    out = []
    for name in ("quorum_grace", "wait_for_all", "defaults"):
        if name in c:
            v = c[name]
            gave_up = v["hanging_member_given_up_after"].get("p50_ms")
            out.append(
                row(
                    "c",
                    v["label"],
                    v["n"],
                    v["p50_ms"],
                    v["p99_ms"],
                    f"expected {v['expected_ms']:.0f}",
                    f"hung member {v['hanging_member_status']} after p50 {fmt_ms(gave_up)} ms; upstream connection closed "
                    f"by the client in {v['hanging_closed_by_client']}/{v['hanging_requests']} requests "
                    f"(disconnected_before_done={v['disconnected_before_done']}; still open when fusion returned: "
                    f"{v['hanging_open_when_fusion_returned']})",
                )
            )
    if "p99_saved_ms" in c:
        out.append(
            row(
                "c",
                "**p99 saved by quorum + grace**",
                "",
                None,
                c["p99_saved_ms"],
                "",
                f"**{c['p99_saved_pct']}%** lower p99 than wait-for-all",
            )
        )
    return out
