"""The soak's driver: warm-up, baseline, the batches (tracing the last ones), the probe, the drain.

It runs in the driver's event loop against the scripted upstream and returns the raw readings; the criteria
and the report are ``soak_report``'s.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import random
import time
import tracemalloc
from typing import Any

from benchmarks.soak_config import SoakConfig
from benchmarks.soak_memory import MB, counters, growth_sites, snapshot_filters
from benchmarks.soak_requests import EXPECTED, batch_kinds, build_specs, one_request
from benchmarks.soak_symptoms import Symptoms, loop_exception_handler
from benchmarks.upstream import Upstream

__all__ = ["drive"]


async def run_batch(
    kinds: list[str], start: int, cfg: SoakConfig, specs: dict[str, Any], rng: random.Random, tally: dict[str, Any]
) -> None:
    """Run ``kinds`` with ``cfg.concurrency`` workers; add outcomes to ``tally``."""
    queue = iter(enumerate(kinds, start))

    async def worker() -> None:
        for n, kind in queue:
            outcome, detail = await one_request(kind, n, specs, rng)
            tally["outcomes"][outcome] += 1
            tally["by_kind"][kind][outcome] += 1
            if outcome != EXPECTED[kind]:
                tally["unexpected"] += 1
                if len(tally["unexpected_samples"]) < 10:
                    tally["unexpected_samples"].append(f"{kind} -> {outcome}: {detail}")

    workers = [asyncio.create_task(worker(), name=f"soak-worker-{i}") for i in range(cfg.concurrency)]
    await asyncio.gather(*workers)


def _new_tally() -> dict[str, Any]:
    return {
        "outcomes": collections.Counter(),
        "by_kind": collections.defaultdict(collections.Counter),
        "unexpected": 0,
        "unexpected_samples": [],
    }


async def _settle(upstream: Upstream, timeout: float = 15.0, before_gc: float = 3.0) -> dict[str, Any]:
    """Drain: wait (``before_gc`` s) for the upstream to have nothing in flight, note what is still open, then
    ``gc.collect()`` (and let the finalizers it schedules run) and wait again.

    What is in flight before the collection was closed by nobody: only the cyclic garbage collector would
    end it (after an unpredictable delay, or never if it does not run), and until then the upstream keeps
    generating, and billing, tokens nobody reads.
    """
    before = await upstream.wait_idle(before_gc)
    for _ in range(3):
        await asyncio.sleep(0.1)  # finalizers scheduled by the GC (async generators, aiohttp) run here
        gc.collect()
    stats = await upstream.wait_idle(timeout)
    return {**stats, "in_flight_before_gc": before["in_flight"]}


async def drive(cfg: SoakConfig, upstream: Upstream, symptoms: Symptoms, log: Any) -> dict[str, Any]:
    """Warm up, take the baselines, run the plan's batches, probe, drain; the raw readings of the run."""
    import litellm

    import litellm_fusion

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(loop_exception_handler(symptoms))
    litellm_fusion.register()
    specs = build_specs(upstream.base_url)
    rng = random.Random(cfg.seed)
    filters = snapshot_filters(cfg.server)
    plan = cfg.plan()

    warm, reference_bytes = await _warm_up(cfg, upstream, specs, rng, log)
    gc.collect()
    up_base = upstream.totals()
    base = {
        **counters(),
        "in_flight": up_base["in_flight"],
        "leak_events": len(symptoms.leak_events()),
        "upstream": up_base,
        "warmup_traced_bytes": reference_bytes,
    }
    log(
        f"baseline: {base['tasks']} tasks, {base['fds']} fds, {base['gc_objects']} gc objects, {base['blocks']} blocks, "
        f"client cache {base['client_cache']}; plan {[(n, role) for n, role in plan]}"
    )
    trace_base: dict[str, Any] | None = None
    base_snapshot: tracemalloc.Snapshot | None = None

    def take_trace_baseline() -> None:
        nonlocal trace_base, base_snapshot
        gc.collect()
        # The snapshot is taken before the reading, so its own size is in both readings.
        base_snapshot = tracemalloc.take_snapshot().filter_traces(filters)
        trace_base = {"traced_bytes": tracemalloc.get_traced_memory()[0], "after_requests": done}

    tally = _new_tally()
    rows = []
    run_started = time.perf_counter()
    cpu_started = time.process_time()
    done = 0
    for i, (size, role) in enumerate(plan):
        if role == "trace-warmup" and not tracemalloc.is_tracing():
            tracemalloc.start(cfg.frames)
        if role == "measured" and trace_base is None:
            if not tracemalloc.is_tracing():
                tracemalloc.start(cfg.frames)
            take_trace_baseline()
        t0, c0 = time.perf_counter(), time.process_time()
        await run_batch(batch_kinds(size, rng), done, cfg, specs, rng, tally)
        done += size
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        stats = await _settle(upstream)
        upstream.forget()
        row = {"batch": i + 1, "role": role, "size": size, "requests": done, **_readings(seconds, cpu, size, stats)}
        rows.append(row)
        _log_batch(log, row, len(plan))
    wall = time.perf_counter() - run_started
    cpu = time.process_time() - cpu_started

    # A last abandoned stream right before the drain, so that an upstream stream the caller's aclose() did
    # not close is certainly still open (its script streams for ~26 s) when the drain looks.
    probe = await one_request("stream_abandon", cfg.requests, specs, rng)

    # Drain and compare.
    final_stats = await _settle(upstream, timeout=30.0)
    gc.collect()
    end = {
        **counters(),
        "traced_bytes": tracemalloc.get_traced_memory()[0],
        "in_flight": final_stats["in_flight"],
        "in_flight_before_gc": final_stats["in_flight_before_gc"],
        "probe": probe[0],
        "upstream": final_stats,
        "task_names": sorted(f"{t.get_name()} ({getattr(t.get_coro(), '__qualname__', '?')})" for t in asyncio.all_tasks()),
    }
    end_snapshot = tracemalloc.take_snapshot().filter_traces(filters)
    assert base_snapshot is not None and trace_base is not None
    sites, by_owner = growth_sites(base_snapshot, end_snapshot)
    del base_snapshot, end_snapshot

    # Close LiteLLM's cached clients now, so nothing is left for the interpreter's exit, and drop them from
    # the cache: a closed client left there would be handed to the next caller in this process (a test).
    with contextlib.suppress(Exception):
        await litellm.close_litellm_async_clients()
    litellm.in_memory_llm_clients_cache.flush_cache()
    return {
        "baseline": base,
        "trace_baseline": trace_base,
        "end": end,
        "batches": rows,
        "tally": tally,
        "warmup_outcomes": dict(warm["outcomes"]),
        "wall_s": wall,
        "driver_cpu_s": cpu,
        "growth_sites": sites,
        "growth_by_owner": by_owner,
    }


async def _warm_up(cfg: SoakConfig, upstream: Upstream, specs: dict[str, Any], rng: random.Random, log: Any) -> tuple[dict[str, Any], int]:
    """The warm-up batches; (their tally, the bytes they left traced).

    It imports LiteLLM's lazy modules, fills its client cache and the fusion preset store. It runs traced in
    both modes: what it leaves traced is the "process memory" the slope percentage is relative to, as in
    LiteLLM's own leak tests, which start tracemalloc before their warm-up.
    """
    if not tracemalloc.is_tracing():
        tracemalloc.start(cfg.frames)
    started = time.perf_counter()
    warm = _new_tally()
    for offset in range(0, cfg.warmup, 100):
        size = min(100, cfg.warmup - offset)
        await run_batch(batch_kinds(size, rng), -cfg.warmup + offset, cfg, specs, rng, warm)
    await _settle(upstream)
    upstream.forget()
    gc.collect()
    reference_bytes = tracemalloc.get_traced_memory()[0]
    if cfg.trace == "tail":
        tracemalloc.stop()  # restarted one batch before the traced ones
    log(
        f"warm-up: {cfg.warmup} requests in {time.perf_counter() - started:.1f}s, outcomes {dict(warm['outcomes'])}, "
        f"{reference_bytes / MB:.2f} MB traced"
    )
    return warm, reference_bytes


def _readings(seconds: float, cpu: float, size: int, stats: dict[str, Any]) -> dict[str, Any]:
    """A batch's time and CPU, the process counters and the upstream's counts, read after its drain."""
    return {
        "seconds": round(seconds, 2),
        "cpu_ms_per_request": round(cpu / size * 1000, 1),
        "traced_bytes": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        **counters(),
        "in_flight": stats["in_flight"],
        "in_flight_before_gc": stats["in_flight_before_gc"],
        "upstream_total": stats["total"],
        "upstream_connections": stats["connections"],
        "upstream_disconnected": stats["disconnected_before_done"],
    }


def _log_batch(log: Any, row: dict[str, Any], batches: int) -> None:
    size, seconds = row["size"], row["seconds"]
    traced = f"traced {row['traced_bytes'] / MB:.2f} MB, " if row["traced_bytes"] is not None else ""
    log(
        f"batch {row['batch']}/{batches} ({row['role']}): {size} req in {seconds:.1f}s ({size / max(seconds, 1e-9):.1f}/s, "
        f"{row['cpu_ms_per_request']:.0f} ms CPU/req), {traced}tasks {row['tasks']}, fds {row['fds']}, "
        f"in_flight {row['in_flight_before_gc']} before gc / {row['in_flight']} after, gc objects {row['gc_objects']}, "
        f"client cache {row['client_cache']}, "
        f"upstream conns so far {row['upstream_connections']}"
    )
