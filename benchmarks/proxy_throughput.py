"""Proxy throughput (the table's ``e`` rows): requests/s through a real ``litellm`` proxy, fusion vs a solo model.

A closed loop of ``concurrency`` clients for ``duration`` seconds against the proxy (one worker), first on
a solo pass-through model, then on the fusion deployment (3 members + judge + synthesizer = 5 nested calls
per request), with the CPU every process used: the proxy's CPU per request is the capacity figure that
other load on the machine does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any

import httpx

from benchmarks.calls import Context
from benchmarks.proxy import ProxyProcess, group_pids, proc_cpu_seconds
from benchmarks.scenario import JUDGE, JUDGE_JSON, MESSAGES, PANEL, PANEL_TEXT, Scenario, script
from benchmarks.stats import summary
from benchmarks.table import Row, row
from benchmarks.table import ms as fmt_ms
from benchmarks.upstream import Upstream

__all__ = ["TITLE", "ProxySettings", "measure", "rows"]

TITLE = "proxy throughput: fusion vs pass-through"


@dataclasses.dataclass(frozen=True)
class ProxySettings:
    """The closed loops' length and concurrency, the upstream latency, the proxy's start-up limit."""

    duration: float = 10.0
    """Seconds of each closed loop."""
    concurrency: int = 8
    latency: float = 0.05
    """Scripted latency of every upstream call (not scaled)."""
    startup_timeout: float = 90.0

    @classmethod
    def quick(cls) -> ProxySettings:
        return cls(duration=4.0)


async def _closed_loop(http: httpx.AsyncClient, model: str, concurrency: int, duration: float) -> dict[str, Any]:
    """``concurrency`` workers send requests back to back until ``duration`` seconds have passed."""
    body = {"model": model, "messages": MESSAGES}
    walls: list[float] = []
    overhead: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + duration

    async def worker(_: int) -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                response = await http.post("/v1/chat/completions", json=body)
                wall = time.perf_counter() - started
                if response.status_code != 200:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                    continue
                walls.append(wall)
                header = response.headers.get("x-litellm-overhead-duration-ms")
                if header:
                    with contextlib.suppress(ValueError):
                        overhead.append(float(header) / 1000)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "elapsed_s": round(elapsed, 2),
        "ok": len(walls),
        "errors": errors,
        "req_per_s": round(len(walls) / elapsed, 2),
        **summary(walls),
        "x_litellm_overhead": summary(overhead),
        "raw_s": walls,
    }


async def measure(scenario: Scenario, s: ProxySettings, up: Upstream, ctx: Context) -> dict[str, Any]:
    """Section ``e``: warm-up, then a closed loop on the solo model and one on fusion."""
    proxy = ctx.proxy
    if proxy is None:
        raise RuntimeError("no proxy process was started")
    lat = s.latency
    up.set_scripts({name: script(PANEL_TEXT[name], lat) for name in PANEL} | {JUDGE: script(JUDGE_JSON, lat)})
    out: dict[str, Any] = {
        "upstream_latency_ms": round(1000 * lat, 1),
        "concurrency": s.concurrency,
        "duration_s": s.duration,
        "workers": 1,
        "critical_path_ms": {"solo": round(1000 * lat, 1), "fusion": round(3000 * lat, 1)},
        "nested_calls_per_fusion_request": 5,
        "config": proxy.config,
    }
    out["startup_s"] = await proxy.wait_live()
    limits = httpx.Limits(max_connections=s.concurrency * 2, max_keepalive_connections=s.concurrency * 2)
    async with httpx.AsyncClient(
        base_url=proxy.base, headers={"Authorization": f"Bearer {proxy.master_key}"}, timeout=30.0, limits=limits, trust_env=False
    ) as http:
        headers: dict[str, dict[str, str]] = {}
        for model in ("m1", "fusion-bench"):  # warm-up: sequential, then one burst
            for _ in range(3):
                response = await http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
                if response.status_code != 200:
                    raise RuntimeError(f"warm-up {model}: {response.status_code} {response.text[:300]}")
            headers[model] = {k: v for k, v in response.headers.items() if k.lower().startswith("x-litellm")}
            await _closed_loop(http, model, s.concurrency, 1.0)
        out["x_litellm_headers"] = headers
        for label, model in (("solo", "m1"), ("fusion", "fusion-bench")):
            out[label] = await _measured_loop(http, proxy, up, model, s, out["critical_path_ms"][label])
    out["fusion_over_solo_rps"] = round(out["fusion"]["req_per_s"] / out["solo"]["req_per_s"], 3) if out["solo"]["req_per_s"] else None
    out["nested_calls_per_s_fusion"] = round(out["fusion"]["upstream_calls"] / out["fusion"]["elapsed_s"], 1)
    out["proxy_log_error_lines"] = proxy.log_error_lines()
    out["proxy_log"] = str(proxy.log_path)
    return out


async def _measured_loop(
    http: httpx.AsyncClient, proxy: ProxyProcess, up: Upstream, model: str, s: ProxySettings, critical_path_ms: float
) -> dict[str, Any]:
    """One closed loop on ``model``, with the CPU the proxy, the upstream and the driver used meanwhile."""
    await up.wait_idle()
    up.reset()
    pids = group_pids(proxy.process.pid)
    proxy_cpu0, up_cpu0, me0 = proc_cpu_seconds(pids), up.stats()["cpu_s"], time.process_time()
    result = await _closed_loop(http, model, s.concurrency, s.duration)
    elapsed = result["elapsed_s"]
    stats = up.stats()
    proxy_cpu = proc_cpu_seconds(pids) - proxy_cpu0
    result["proxy_cpu_pct"] = round(100 * proxy_cpu / elapsed, 1)
    result["proxy_cpu_ms_per_request"] = round(1000 * proxy_cpu / result["ok"], 1) if result["ok"] else None
    # Other load on the machine decides how much CPU the proxy gets; CPU per request does not depend on it.
    result["req_per_s_per_proxy_core"] = round(1000 / result["proxy_cpu_ms_per_request"], 1) if result["ok"] and proxy_cpu else None
    result["upstream_cpu_pct"] = round(100 * (stats["cpu_s"] - up_cpu0) / elapsed, 1) if up_cpu0 is not None else None
    result["driver_cpu_pct"] = round(100 * (time.process_time() - me0) / elapsed, 1)
    result["upstream_calls"] = stats["total"]
    result["upstream_tcp_connections_opened"] = stats["new_connections"]
    result["minus_critical_path_ms"] = {
        "p50": round(result["p50_ms"] - critical_path_ms, 1) if result.get("p50_ms") else None,
        "p99": round(result["p99_ms"] - critical_path_ms, 1) if result.get("p99_ms") else None,
    }
    return result


def rows(e: dict[str, Any]) -> list[Row]:
    """The ``e`` rows of the table."""
    out = []
    for name, label in (("solo", "proxy pass-through (solo model)"), ("fusion", "proxy fusion (3 members + judge/synth)")):
        if name in e:
            v = e[name]
            out.append(
                row(
                    "e",
                    f"{label}, c={e['concurrency']}, {e['duration_s']:g} s",
                    v["ok"],
                    v.get("p50_ms"),
                    v.get("p99_ms"),
                    f"critical path {e['critical_path_ms'][name]:.0f}",
                    f"**{v['req_per_s']} req/s**, errors {v['errors'] or 0}; proxy CPU {v['proxy_cpu_pct']:.0f}% "
                    f"= {fmt_ms(v['proxy_cpu_ms_per_request'])} ms/request (upstream {v['upstream_cpu_pct'] or 0:.0f}%, "
                    f"driver {v['driver_cpu_pct']:.0f}%); {v['upstream_tcp_connections_opened']} upstream connections "
                    f"opened for {v['upstream_calls']} calls; x-litellm-overhead p50 {fmt_ms(v['x_litellm_overhead'].get('p50_ms'))} ms",
                )
            )
    if "fusion_over_solo_rps" in e:
        cap = f"{e['fusion']['req_per_s_per_proxy_core']} vs {e['solo']['req_per_s_per_proxy_core']} req/s per proxy core (fusion vs solo)"
        out.append(
            row(
                "e",
                "fusion req/s ÷ pass-through req/s; CPU-bound capacity: " + cap,
                "",
                None,
                None,
                "5 nested calls per fusion request",
                f"{e['fusion_over_solo_rps']}× ({e['nested_calls_per_s_fusion']} nested calls/s)",
            )
        )
    return out
