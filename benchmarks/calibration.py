"""Upstream calibration (the table's ``server`` rows): what a thread and a process upstream add to a plain call.

Plain ``litellm.acompletion`` against a thread server and a process server, in alternating batches so that
other load on the machine hits both alike: the latency each adds above the scripted latency, and why the
run's upstream is a process by default.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from benchmarks.calls import Context, run_workers
from benchmarks.scenario import MESSAGES, Scenario, member, script
from benchmarks.stats import summary
from benchmarks.table import Row, row
from benchmarks.upstream import Upstream, start_upstream

__all__ = ["TITLE", "CalibrationSettings", "measure", "rows"]

TITLE = "server mode calibration"


@dataclasses.dataclass(frozen=True)
class CalibrationSettings:
    """How many plain calls per upstream mode, how many at once, at what scripted latency."""

    n: int = 64
    """Calls per upstream mode."""
    concurrency: int = 16
    latency: float = 0.1
    """Scripted latency of every call (not scaled)."""

    @classmethod
    def quick(cls) -> CalibrationSettings:
        return cls(n=48)


async def measure(scenario: Scenario, s: CalibrationSettings, up: Upstream, ctx: Context) -> dict[str, Any]:
    """``up`` is the upstream the run uses (``chosen``); one of the other mode is started for the comparison."""
    import litellm

    out: dict[str, Any] = {"chosen": up.mode, "latency_ms": round(s.latency * 1000, 1), "concurrency": s.concurrency}
    servers = {mode: (up if mode == up.mode else start_upstream(mode)) for mode in ("thread", "process")}
    try:
        walls: dict[str, list[float]] = {mode: [] for mode in servers}
        elapsed = dict.fromkeys(servers, 0.0)
        cpu = dict.fromkeys(servers, 0.0)
        calls: dict[str, dict[str, Any]] = {}
        for mode, server in servers.items():
            server.set_scripts({"gpt-4o-mini": script("ok " * 20, s.latency)})
            calls[mode] = {
                **member(server.base_url, "gpt-4o-mini"),
                "messages": MESSAGES,
                "timeout": 60,
                "num_retries": 0,
                "max_retries": 0,
            }
            for _ in range(5):
                await litellm.acompletion(**calls[mode])
        rounds = 2
        per_worker = max(1, s.n // (s.concurrency * rounds))
        for _ in range(rounds):
            for mode, server in servers.items():

                async def worker(_: int, kwargs: dict[str, Any] = calls[mode], sink: list[float] = walls[mode]) -> None:
                    for _ in range(per_worker):
                        started = time.perf_counter()
                        await litellm.acompletion(**kwargs)
                        sink.append(time.perf_counter() - started - s.latency)

                cpu0 = server.stats()["cpu_s"]
                elapsed[mode] += await run_workers(s.concurrency, worker)
                cpu1 = server.stats()["cpu_s"]
                cpu[mode] += (cpu1 - cpu0) if cpu0 is not None else 0.0
        for mode, server in servers.items():
            out[mode] = {
                "added_ms": summary(walls[mode]),
                "elapsed_s": round(elapsed[mode], 2),
                "server_cpu_pct": round(100 * cpu[mode] / elapsed[mode], 1) if server.mode == "process" else None,
                "raw_added_s": walls[mode],
            }
    finally:
        for server in servers.values():
            if server is not up:
                server.close()
    return out


def rows(srv: dict[str, Any]) -> list[Row]:
    """The ``server`` rows of the table."""
    out = []
    for mode in ("thread", "process"):
        if mode in srv:
            m = srv[mode]
            cpu = f", server CPU {m['server_cpu_pct']:.0f}%" if m.get("server_cpu_pct") is not None else ""
            chosen = " **(used)**" if srv.get("chosen") == mode else ""
            out.append(
                row(
                    "server",
                    f"{mode} upstream{chosen}: plain acompletion, c={srv['concurrency']}",
                    m["added_ms"]["n"],
                    m["added_ms"]["p50_ms"],
                    m["added_ms"]["p99_ms"],
                    f"latency above scripted {srv['latency_ms']:.0f} ms",
                    f"{m['elapsed_s']} s{cpu}",
                )
            )
    return out
