"""The soak's verdict and report: the criteria, the markdown, and one report merged from several workers."""

from __future__ import annotations

import collections
from typing import Any

from benchmarks.soak_config import SoakConfig
from benchmarks.soak_memory import MB
from benchmarks.soak_requests import EXPECTED, MODELS
from benchmarks.soak_symptoms import Symptoms
from benchmarks.stats import slope

__all__ = ["criteria", "render", "merge_reports", "jsonable"]


def criteria(cfg: SoakConfig, result: dict[str, Any], symptoms: Symptoms) -> list[dict[str, Any]]:
    """Each G7 criterion (and the stricter in-flight one) with its value, limit and verdict."""
    base, end, trace_base = result["baseline"], result["end"], result["trace_baseline"]
    measured = [row for row in result["batches"] if row["role"] == "measured"][-5:]
    growth = end["traced_bytes"] - trace_base["traced_bytes"]
    traced_requests = cfg.requests - trace_base["after_requests"]
    samples = [row["traced_bytes"] for row in measured]
    per_batch = slope(samples)
    # Relative to the traced process memory, as LiteLLM's tests compute it (their tracing runs from before the
    # warm-up). With trace="tail" tracing restarted late, so what the warm-up left traced is added back.
    denominator = (samples[0] if samples else 0) + (base["warmup_traced_bytes"] if cfg.trace == "tail" else 0)
    slope_pct = 100.0 * per_batch * (len(samples) - 1) / denominator if denominator else 0.0
    per_request = sum(row["size"] for row in measured) / max(1, len(measured))
    allowance = cfg.concurrency * 3 + 4
    leaks = symptoms.leak_events()
    return [
        {
            "criterion": "asyncio tasks",
            "value": f"{base['tasks']} -> {end['tasks']}",
            "limit": f"<= baseline + {cfg.max_extra_tasks}",
            "pass": end["tasks"] <= base["tasks"] + cfg.max_extra_tasks,
        },
        {
            "criterion": f"tracemalloc net growth over the traced {traced_requests} requests",
            "value": f"{growth / MB:+.3f} MB ({growth / max(1, traced_requests):+.0f} B/request)",
            "limit": f"<= {cfg.max_growth_mb:g} MB",
            "pass": growth <= cfg.max_growth_mb * MB,
        },
        {
            "criterion": "traced-memory slope, last 5 batches",
            "value": f"{slope_pct:+.2f} % of {denominator / MB:.1f} MB ({per_batch / 1024 / max(per_request, 1) * 1000:+.1f} KB "
            "per 1,000 requests)",
            "limit": f"<= {cfg.max_slope_pct:g} % growth",
            "pass": slope_pct <= cfg.max_slope_pct,
        },
        {
            "criterion": "upstream in_flight after drain + gc.collect()",
            "value": f"{base['in_flight']} -> {end['in_flight']}",
            "limit": "== 0",
            "pass": end["in_flight"] == 0,
        },
        {
            "criterion": "upstream in_flight after drain, before gc.collect()",
            "value": f"{end['in_flight_before_gc']} (probe: one more abandoned stream just before the drain)",
            "limit": "== 0 (closed by its owner, not by the cyclic GC)",
            "pass": end["in_flight_before_gc"] == 0,
        },
        {
            "criterion": "open fds",
            "value": f"{base['fds']} -> {end['fds']}",
            "limit": f"<= baseline + {allowance} (concurrency x 3 pooled connections + 4)",
            "pass": end["fds"] <= base["fds"] + allowance,
        },
        {
            "criterion": "ResourceWarning / Unclosed / Task destroyed events",
            "value": str(len(leaks)),
            "limit": "== 0",
            "pass": not leaks,
        },
        {
            "criterion": "outcomes as expected per kind",
            "value": f"{result['tally']['unexpected']} unexpected",
            "limit": "== 0",
            "pass": result["tally"]["unexpected"] == 0,
        },
        {
            "criterion": f"wall time for {cfg.requests} requests",
            "value": f"{result['wall_s']:.1f} s",
            "limit": f"<= {cfg.max_wall:g} s",
            "pass": result["wall_s"] <= cfg.max_wall,
        },
    ]


def upstream_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the upstream saw between two cumulative readings, by role (panel member a, judge, ...)."""
    roles = {model: role for role, model in MODELS.items()}

    def by_role(key: str) -> dict[str, int]:
        counts = collections.Counter(after.get(key, {}))
        counts.subtract(before.get(key, {}))
        return {roles.get(model, model): n for model, n in sorted(counts.items(), key=lambda kv: roles.get(kv[0], kv[0])) if n}

    return {
        "total": after["total"] - before["total"],
        "disconnected_before_done": after["disconnected_before_done"] - before["disconnected_before_done"],
        "connections": after["connections"] - before["connections"],
        "by_role": by_role("by_model"),
        "disconnected_by_role": by_role("disconnected_by_model"),
    }


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.2f}"


def render(cfg: SoakConfig, report: dict[str, Any]) -> str:
    """The markdown report."""
    result = report["result"]
    base, end, trace_base = result["baseline"], result["end"], result["trace_baseline"]
    lines = [
        f"## Soak: {cfg.requests} fusion requests (+{cfg.warmup} warm-up), concurrency {cfg.concurrency}, "
        f"upstream {cfg.server}, tracemalloc {cfg.trace} ({cfg.frames} frame{'s' if cfg.frames > 1 else ''}), seed {cfg.seed}",
        "",
        f"Wall {result['wall_s']:.1f} s ({cfg.requests / max(result['wall_s'], 1e-9):.1f} req/s); driver CPU {result['driver_cpu_s']:.1f} s"
        f" ({result['driver_cpu_s'] / cfg.requests * 1000:.0f} ms/request); "
        f"upstream process CPU {report.get('upstream_cpu_s') or 0:.1f} s.",
        "",
        "| measure | baseline | after drain |",
        "|---|---:|---:|",
        f"| asyncio tasks | {base['tasks']} | {end['tasks']} |",
        f"| tracemalloc traced MB (baseline at request {trace_base['after_requests']}) | "
        f"{_mb(trace_base['traced_bytes'])} | {_mb(end['traced_bytes'])} |",
        f"| tracemalloc traced MB after the traced warm-up (the slope's reference) | {_mb(base['warmup_traced_bytes'])} | |",
        f"| open fds | {base['fds']} | {end['fds']} |",
        f"| upstream in_flight (before gc.collect()) | {base['in_flight']} | {end['in_flight']} ({end['in_flight_before_gc']}) |",
        f"| leak events (warnings, logs, loop handler, unraisable) | {base['leak_events']} | {len(report['symptoms']['leak_events'])} |",
        f"| gc-tracked objects | {base['gc_objects']} | {end['gc_objects']} |",
        f"| pymalloc blocks (`sys.getallocatedblocks`) | {base['blocks']} | {end['blocks']} |",
        f"| RSS MB | {_mb(base['rss'])} | {_mb(end['rss'])} |",
        f"| LiteLLM client cache entries | {base['client_cache']} | {end['client_cache']} |",
        "",
        "| criterion | value | limit | result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c['criterion']} | {c['value']} | {c['limit']} | {'PASS' if c['pass'] else 'FAIL'} |" for c in report["criteria"]]
    tally = result["tally"]
    lines += ["", "| outcome | count |", "|---|---:|"]
    lines += [f"| {outcome} | {count} |" for outcome, count in sorted(tally["outcomes"].items())]
    lines += ["", "| kind | expected | outcomes |", "|---|---|---|"]
    lines += [f"| {kind} | {EXPECTED[kind]} | {dict(counter)} |" for kind, counter in sorted(tally["by_kind"].items())]
    up = upstream_delta(base["upstream"], end["upstream"])
    lines += [
        "",
        f"Upstream during the measured requests: {up['total']} requests, {up['disconnected_before_done']} closed by the client "
        f"before done, {up['connections']} distinct client TCP connections. By role: "
        + ", ".join(f"{role} {n} ({up['disconnected_by_role'].get(role, 0)} closed early)" for role, n in up["by_role"].items())
        + ".",
        "",
        "| batch | role | requests | s | CPU ms/req | traced MB | tasks | fds | in_flight before/after gc | gc objects | blocks "
        "| client cache "
        "| upstream conns (cum.) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['batch']} | {r['role']} | {r['size']} | {r['seconds']:.1f} | {r['cpu_ms_per_request']:.0f} | {_mb(r['traced_bytes'])} | "
        f"{r['tasks']} | {r['fds']} | {r['in_flight_before_gc']} / {r['in_flight']} | {r['gc_objects']} | {r['blocks']} | "
        f"{r['client_cache']} | "
        f"{r['upstream_connections']} |"
        for r in result["batches"]
    ]
    lines += [
        "",
        "Top 5 tracemalloc growth sites (traced baseline -> after drain):",
        "",
        "| size | blocks | owner | site (most recent frame first) |",
        "|---:|---:|---|---|",
    ]
    for site in result["growth_sites"]:
        where = " <- ".join(site["traceback"][:4])
        lines.append(f"| {site['size_diff'] / 1024:+.1f} KB | {site['count_diff']:+d} | {site['owner']} | {where} |")
    owners = ", ".join(f"{owner} {size / 1024:+.1f} KB" for owner, size in result["growth_by_owner"].items())
    lines += ["", f"Net traced growth by owner: {owners}"]
    if tally["unexpected_samples"]:
        lines += ["", "Unexpected outcomes (first 10):", *[f"- {s}" for s in tally["unexpected_samples"]]]
    never = report["symptoms"]["never_awaited"]
    if never:
        lines += [
            "",
            "Coroutines never awaited (not a criterion; LiteLLM's acompletion drops the coroutine its executor hop returns "
            "when the caller is cancelled during that hop):",
            *[f"- {count} x {text}" for text, count in never.items()],
        ]
    events = report["symptoms"]["leak_events"]
    if events:
        lines += ["", "Leak events (first 10):", *[f"- {e}" for e in events[:10]]]
    others = report["symptoms"]["other_logs"]
    if others:
        lines += ["", "Other WARNING+ log records (top 5):", *[f"- {count} x {text}" for text, count in list(others.items())[:5]]]
    lines += ["", f"Tasks left: {', '.join(end['task_names']) or 'none'}", ""]
    lines += [f"{'PASS' if c['pass'] else 'FAIL'}: {c['criterion']}: {c['value']} ({c['limit']})" for c in report["criteria"]]
    lines.append(f"OVERALL: {'PASS' if report['passed'] else 'FAIL'}")
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """``value`` with str keys everywhere (Counters keyed by anything become plain dicts)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def merge_reports(cfg: SoakConfig, reports: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    """One report from the workers' reports: a criterion passes if it passes in every worker."""
    names = [f"w{i + 1}" for i in range(len(reports))]
    wall = max(r["result"]["wall_s"] for r in reports)
    criteria = []
    for index, criterion in enumerate(reports[0]["criteria"]):
        if criterion["criterion"].startswith("wall time"):
            continue
        rows = [r["criteria"][index] for r in reports]
        criteria.append(
            {
                "criterion": criterion["criterion"].split(" over the traced ")[0],
                "value": "; ".join(f"{name}: {row['value']}" for name, row in zip(names, rows, strict=True)),
                "limit": criterion["limit"],
                "pass": all(row["pass"] for row in rows),
            }
        )
    criteria.append(
        {
            "criterion": f"wall time for {cfg.requests} requests ({len(reports)} processes)",
            "value": f"{wall:.1f} s (longest worker's measured phase; {elapsed:.1f} s with start-up and warm-ups)",
            "limit": f"<= {cfg.max_wall:g} s",
            "pass": wall <= cfg.max_wall,
        }
    )
    outcomes: collections.Counter = collections.Counter()
    for r in reports:
        outcomes.update(r["result"]["tally"]["outcomes"])
    passed = all(c["pass"] for c in criteria)
    lines = [
        f"## Soak: {cfg.requests} fusion requests over {len(reports)} driver processes, concurrency {cfg.concurrency} in all",
        "",
        f"Wall {wall:.1f} s for the measured requests ({cfg.requests / max(wall, 1e-9):.1f} req/s), {elapsed:.1f} s in all; "
        f"driver CPU {sum(r['result']['driver_cpu_s'] for r in reports):.1f} s.",
        "",
        "| criterion | value | limit | result |",
        "|---|---|---|---|",
        *[f"| {c['criterion']} | {c['value']} | {c['limit']} | {'PASS' if c['pass'] else 'FAIL'} |" for c in criteria],
        "",
        "| outcome | count |",
        "|---|---:|",
        *[f"| {outcome} | {count} |" for outcome, count in sorted(outcomes.items())],
    ]
    for name, r in zip(names, reports, strict=True):
        lines += ["", f"### Worker {name}", "", r["markdown"].split("\n", 1)[1].strip()]
    lines += ["", *[f"{'PASS' if c['pass'] else 'FAIL'}: {c['criterion']}: {c['value']} ({c['limit']})" for c in criteria]]
    lines.append(f"OVERALL: {'PASS' if passed else 'FAIL'}")
    return {"config": dict(cfg.__dict__), "workers": reports, "criteria": criteria, "passed": passed, "markdown": "\n".join(lines)}
