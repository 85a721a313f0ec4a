#!/usr/bin/env python
"""The local server, before and after: llama-cpp-python's server against llama.cpp's ``llama-server``.

    python benchmarks/local_server.py [--backends llama-cpp-python,llama-server] [--sections tps,panel,fusion,build]
                                      [--tokens 200] [--reps 1] [--threads N] [--out benchmarks/results/local_server.json]

Needs ``make local`` (both models; llama-server built, llama-cpp-python installed). Each backend in turn is
started on a free port with the same threads (``litellm_fusion.local.serve``; ``--threads``, default all
cores), measured, and stopped, so the two never share the cores. Prints a markdown table and writes the raw
numbers as JSON; each server's own log (with its per-request timings: prompt tokens read and tokens
written, each with its time) is kept beside it, ``<out>.<backend>.log``.

  tps     one request per model, ``--tokens`` completion tokens at temperature 0 (end tokens banned, so
          every completion is that long): completion tokens per second of wall time (the prompt is a few
          dozen tokens, so this is generation speed)
  panel   the wall time of a panel's calls sent at once: the ``local`` preset's three members (0.5B at 0.2
          and 0.8, 1.5B at 0.5) and three 1.5B members, against one 1.5B member alone; every call
          ``--tokens`` tokens at a fixed seed
  fusion  one whole ``fusion/local`` call on the demo question (``litellm-fusion demo``), through LiteLLM:
          panel (slowest member), judge, synthesizer and end-to-end wall from the trace, and tokens
  build   what ``make local`` adds: the cached llama-server build's recorded time (its stamp), or with
          ``--cold-build`` a fresh build into a temporary directory, timed

The machine's load averages are recorded before and after every measurement: on a shared machine other
processes inflate every number, and the JSON says how much load there was. Every loop is bounded (``--reps``).
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from litellm_fusion import local  # noqa: E402
from litellm_fusion.local import build  # noqa: E402

SECTIONS = ("tps", "panel", "fusion", "build")
COUNT_PROMPT = [{"role": "user", "content": "Count from 1 to 1000, separated by commas, with nothing else."}]
# Qwen2.5's end tokens (<|endoftext|>, <|im_end|>) banned, so every completion is exactly --tokens long on both servers.
NO_STOP = {"151643": -100, "151645": -100}
SEED = 11
REQUEST_TIMEOUT = 1800.0


def load() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


async def chat(client: httpx.AsyncClient, base: str, model: str, tokens: int, temperature: float) -> dict[str, Any]:
    """One completion; its wall time and completion tokens."""
    body = {"model": model, "messages": COUNT_PROMPT, "max_tokens": tokens, "temperature": temperature, "seed": SEED, "logit_bias": NO_STOP}
    started = time.perf_counter()
    response = await client.post(f"{base}/chat/completions", json=body, timeout=REQUEST_TIMEOUT)
    wall = time.perf_counter() - started
    response.raise_for_status()
    usage = response.json()["usage"]
    return {
        "model": model,
        "wall_s": round(wall, 3),
        "completion_tokens": usage["completion_tokens"],
        "prompt_tokens": usage["prompt_tokens"],
    }


async def section_tps(base: str, tokens: int, reps: int) -> list[dict[str, Any]]:
    rows = []
    async with httpx.AsyncClient(trust_env=False) as client:
        await chat(client, base, local.SMALL, 4, 0)  # warm both models' first-request paths
        await chat(client, base, local.LARGE, 4, 0)
        for model in (local.SMALL, local.LARGE):
            runs = []
            for _ in range(reps):
                before = load()
                result = await chat(client, base, model, tokens, 0)
                runs.append(
                    {
                        **result,
                        "tok_s": round(result["completion_tokens"] / result["wall_s"], 2),
                        "load_before": before,
                        "load_after": load(),
                    }
                )
            rows.append({"model": model, "runs": runs, "tok_s_median": statistics.median(r["tok_s"] for r in runs)})
    return rows


PANELS = {
    "1 member (1.5B)": [(local.LARGE, 0.5)],
    "local preset panel (0.5B, 0.5B, 1.5B)": [(local.SMALL, 0.2), (local.SMALL, 0.8), (local.LARGE, 0.5)],
    "3 × 1.5B": [(local.LARGE, 0.0), (local.LARGE, 0.7), (local.LARGE, 0.7)],
}


async def section_panel(base: str, tokens: int, reps: int) -> list[dict[str, Any]]:
    rows = []
    async with httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=16)) as client:
        for name, members in PANELS.items():
            runs = []
            for _ in range(reps):
                before = load()
                started = time.perf_counter()
                results = await asyncio.gather(*(chat(client, base, model, tokens, temp) for model, temp in members))
                wall = time.perf_counter() - started
                runs.append({"wall_s": round(wall, 3), "members": list(results), "load_before": before, "load_after": load()})
            rows.append(
                {"panel": name, "members": len(members), "runs": runs, "wall_s_median": statistics.median(r["wall_s"] for r in runs)}
            )
    single = rows[0]["wall_s_median"]
    for row in rows:
        row["vs_1_member"] = round(row["wall_s_median"] / single, 2)
    return rows


async def section_fusion(base: str, reps: int) -> list[dict[str, Any]]:
    import litellm

    import litellm_fusion
    from litellm_fusion.cli.demo import DEMO_QUESTION

    litellm.suppress_debug_info = True
    litellm_fusion.register()
    runs = []
    for _ in range(reps):
        before = load()
        started = time.perf_counter()
        response = await litellm.acompletion(
            model="fusion/local", messages=[{"role": "user", "content": DEMO_QUESTION}], fusion=local.local_preset(base)
        )
        wall = time.perf_counter() - started
        trace = response._hidden_params["fusion"]
        runs.append(
            {
                "wall_s": round(wall, 2),
                "panel_s": round(max(m["latency_ms"] for m in trace["panel"]) / 1000, 2),
                "members_s": [round(m["latency_ms"] / 1000, 2) for m in trace["panel"]],
                "member_status": [m["status"] for m in trace["panel"]],
                "judge_s": round(trace["judge"]["latency_ms"] / 1000, 2),
                "judge_output": trace["judge"].get("structured_output"),
                "judge_failed": trace.get("judge_failed"),
                "synthesizer_s": round(trace["synthesizer"]["latency_ms"] / 1000, 2),
                "total_tokens": trace["usage"]["total_tokens"],
                "load_before": before,
                "load_after": load(),
            }
        )
    return runs


def section_build(cold: bool, jobs: int | None) -> dict[str, Any]:
    if cold:
        with tempfile.TemporaryDirectory(prefix="llama-server-cold-") as tmp:
            before = load()
            result = build.build_llama_server(Path(tmp) / "bin", force=True, jobs=jobs)
            return {
                "how": "cold build now, into a temporary directory",
                "seconds": round(result.seconds, 1),
                "load_before": before,
                "load_after": load(),
            }
    found = build.built_binary()
    if found is None:
        return {"how": f"not built: run `{build.BUILD_HINT}` or pass --cold-build", "seconds": None}
    return {"how": f"recorded by the build of {found[0]} at {found[1].get('built_at')}", "seconds": found[1].get("build_seconds")}


async def measure_backend(backend: str, sections: str, tokens: int, reps: int, threads: int, log: Path) -> dict[str, Any]:
    server = local.serve(port=None, backend=backend, log_path=log, n_threads=threads)
    out: dict[str, Any] = {"backend": backend, "started_in_s": round(server.started_in, 1), "base_url": server.base_url, "log": str(log)}
    print(f"# {backend}: serving at {server.base_url} (started in {server.started_in:.1f} s; log {log})", file=sys.stderr, flush=True)
    try:
        if "tps" in sections:
            out["tps"] = await section_tps(server.base_url, tokens, reps)
        if "panel" in sections:
            out["panel"] = await section_panel(server.base_url, tokens, reps)
        if "fusion" in sections:
            out["fusion"] = await section_fusion(server.base_url, reps)
    finally:
        server.stop()
    return out


def table(results: dict[str, Any]) -> str:
    lines = ["| what | " + " | ".join(b["backend"] for b in results["backends"]) + " |", "|---|" + "---|" * len(results["backends"])]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    backends = results["backends"]
    if all("tps" in b for b in backends):
        for i, model in enumerate((local.SMALL, local.LARGE)):
            row(f"{model}: tokens/s, {results['tokens']}-token completion", [f"{b['tps'][i]['tok_s_median']:.1f}" for b in backends])
    if all("panel" in b for b in backends):
        for i, name in enumerate(PANELS):
            row(
                f"panel wall: {name}",
                [f"{b['panel'][i]['wall_s_median']:.1f} s ({b['panel'][i]['vs_1_member']:.2f}× 1 member)" for b in backends],
            )
    if all(b.get("fusion") for b in backends):
        for key, label in (("wall_s", "fusion/local, demo question: end to end"), ("panel_s", "  panel (slowest member)"),
                           ("judge_s", "  judge"), ("synthesizer_s", "  synthesizer"), ("total_tokens", "  tokens")):  # fmt: skip
            row(label, [f"{statistics.median(r[key] for r in b['fusion']):g}" + ("" if key == "total_tokens" else " s") for b in backends])
        if len(backends) == 2:
            a, b = (statistics.median(r["wall_s"] for r in x["fusion"]) for x in backends)
            lines.append(f"| fusion speed-up, {backends[0]['backend']} → {backends[1]['backend']} | {a / b:.2f}× | |")
    if "build" in results:
        seconds = results["build"]["seconds"]
        lines.append(
            f"| llama-server build added to a cold `make local` | {'—' if seconds is None else f'{seconds:.0f} s'} ({results['build']['how']}) | |"
        )
    lines.append(
        f"\nload averages (1, 5, 15 min): {results['load_start']} at start, {results['load_end']} at the end; {results['cpus']} CPUs"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--backends", default=f"{local.LLAMA_CPP_PYTHON},{local.LLAMA_SERVER}")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--cold-build", action="store_true", help="build llama-server from scratch into a temp dir and time it")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--threads", type=int, default=local.default_threads(), help="threads per model (default: all cores)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "local_server.json"))
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not sections <= set(SECTIONS):
        parser.error(f"--sections: one or more of {', '.join(SECTIONS)}")
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "tokens": args.tokens,
        "reps": args.reps,
        "load_start": load(),
        "backends": [],
    }
    for backend in args.backends.split(","):
        log = Path(args.out).with_suffix(f".{backend}.log")  # the server's timings; kept for a failed run too
        log.parent.mkdir(parents=True, exist_ok=True)
        results["backends"].append(asyncio.run(measure_backend(backend, sections, args.tokens, args.reps, args.threads, log)))
    if "build" in sections:
        results["build"] = section_build(args.cold_build, args.jobs)
    results["load_end"] = load()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(table(results))
    print(f"\nraw numbers: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
