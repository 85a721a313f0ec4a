#!/usr/bin/env python
"""litellm-fusion benchmarks: one command, measured side by side against a scripted upstream.

    python benchmarks/run.py [--quick] [--out benchmarks/results/latest.json] [--server process|thread]
                             [--sections abcdef]

Prints a markdown table and writes the raw numbers as JSON (one object per section). Everything runs on
127.0.0.1 against litellm_fusion.testing.ScriptedServer with fixed, scripted latencies, so each number
has a known critical path to compare with:

  server  thread vs process upstream: the extra latency each adds to a plain call (why `process` is used)
  a       overhead: fusion wall vs the critical path (slowest member + judge + synthesizer, as scripted) and
          vs the same nested calls hand-rolled with plain litellm.acompletion, interleaved, at c=1 and c=8
  b       wall of a 5-member panel vs a 1-member panel (same per-member latency): the panel is parallel
  c       p99 with one hanging member: quorum + straggler grace vs wait-for-all (panel_timeout the only
          bound), and whether the hanging member's upstream connection was closed
  d       streaming: time to first token vs the critical path (slowest member + judge + synthesizer TTFT)
  e       requests/s through a real `litellm` proxy process: fusion vs a solo pass-through model
  f       consensus short-circuit (short_circuit="exact") on an agreeing panel: cost and latency saved

Upstream mode: by default the scripted server runs in a child process (benchmarks/upstream.py), so its
request handling never competes with the driver for the GIL or the event loop, and its CPU is accounted
apart; `--server thread` runs it in a thread of the driver instead. The `server` rows measure both, in
alternating batches, in every run.

The proxy for section e is launched first, before the driver imports LiteLLM, so its start-up overlaps the
driver's own import; nothing is measured until it is live, and the JSON records the (near-zero) CPU it uses
while idling through the SDK sections (`idle_proxy_cpu_s`).

Every request loop is bounded in count (a, b, c, d, f) or in time (e), and every section runs under its own
deadline. LITELLM_LOCAL_MODEL_COST_MAP=True is set here before LiteLLM is imported. Percentiles interpolate
linearly between ranks; with n < 100, p99 is close to the maximum.
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Awaitable, Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
import yaml  # noqa: E402
from upstream import Upstream, start_upstream  # noqa: E402

from litellm_fusion._core.processes import free_port  # noqa: E402  (the standard library only)

# LiteLLM is imported only once the upstream server and the proxy process are on their way, so that the
# proxy's ~15 s start-up overlaps the driver's own ~8 s import of LiteLLM on the second core.
litellm: Any = None
litellm_fusion: Any = None


def import_litellm() -> None:
    global litellm, litellm_fusion
    if litellm is None:
        import litellm as _litellm

        import litellm_fusion as _litellm_fusion

        _litellm.suppress_debug_info = True
        litellm, litellm_fusion = _litellm, _litellm_fusion


KEY = "sk-bench"
FUSION_MODEL = "fusion/bench"
# Real ids from LiteLLM's price map, so every nested call has a real cost; the server sees them bare.
PANEL = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano")
EXTRA_PANEL = ("gpt-3.5-turbo", "gpt-4-turbo")  # members 4 and 5 of section b
JUDGE = "gpt-4o"
SYNTH = "gpt-4.1"

MESSAGES = [
    {
        "role": "user",
        "content": "A train leaves at 09:40 and arrives at 13:05, with a 20-minute stop on the way. "
        "How long is it actually moving? Show the working briefly, then give the answer on its own line. " * 2,
    }
]
PANEL_TEXT = {
    "gpt-4o-mini": "From 09:40 to 13:05 is 3 h 25 min; minus the 20-minute stop leaves 3 h 05 min of motion. Answer: 3 h 5 min.",
    "gpt-4.1-mini": "Total elapsed time is 205 minutes. The train stands still for 20 of them, so it moves 185 minutes. Answer: 185 min.",
    "gpt-4.1-nano": "09:40 to 13:05 is 3 hours 25 minutes. Subtracting the stop gives 3 hours 5 minutes moving. Answer: 3 h 05.",
    "gpt-3.5-turbo": "It travels for 3 h 25 min in total, 20 min of which is stopped: 3 h 05 min moving. Answer: 3 h 5 min.",
    "gpt-4-turbo": "205 min elapsed, 20 min stopped, therefore 185 min = 3 h 5 min in motion. Answer: 3 h 5 min.",
}
AGREED_TEXT = "3 hours 5 minutes."
JUDGE_JSON = json.dumps(
    {
        "consensus": ["205 minutes elapse; minus the 20-minute stop the train moves for 185 minutes (3 h 5 min)"],
        "contradictions": [],
        "partial_coverage": [{"models": ["A", "B"], "point": "states the answer in minutes"}],
        "unique_insights": [],
        "blind_spots": [],
    }
)
SYNTH_TEXT = "From 09:40 to 13:05 is 3 h 25 min (205 min). The train stops for 20 min, so it is moving for 185 min.\nAnswer: 3 h 5 min"


# ----- settings ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one run measures and how much. ``full()`` is the default; ``quick()`` is ``--quick``."""

    quick: bool = False
    server: str = "process"
    scale: float = 1.0
    """Multiplier for every scripted latency (member, judge, synthesizer, grace, panel_timeout)."""
    panel_latency: tuple[float, ...] = (0.3, 0.4, 0.5)
    judge_latency: float = 0.3
    synth_latency: float = 0.3
    warmup: int = 3
    calib_n: int = 64
    calib_concurrency: int = 16
    calib_latency: float = 0.1
    a_rounds_c1: int = 12
    a_rounds_c8: int = 5
    """Rounds per worker at c=8; a round is one request of each variant, in rotating order."""
    b_member_latency: float = 0.5
    b_stage_latency: float = 0.1
    b_pairs: int = 8
    c_n: int = 8
    c_concurrency: int = 4
    c_grace: float = 0.5
    c_panel_timeout: float = 5.0
    c_include_default: bool = True
    d_pairs: int = 6
    d_chunk_delay: float = 0.025
    d_chunk_chars: int = 10
    d_holdback_delay: float = 0.2
    d_holdback_pairs: int = 3
    e_duration: float = 10.0
    e_concurrency: int = 8
    e_latency: float = 0.05
    e_startup_timeout: float = 90.0
    f_pairs: int = 10
    probe_n: int = 10

    @classmethod
    def full(cls, **overrides: Any) -> Settings:
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def quick_mode(cls, **overrides: Any) -> Settings:
        quick = cls(
            quick=True,
            scale=0.4,
            warmup=2,
            calib_n=48,
            a_rounds_c1=4,
            a_rounds_c8=2,
            b_pairs=4,
            c_n=4,
            c_concurrency=4,
            c_include_default=False,
            d_pairs=3,
            d_holdback_pairs=2,
            e_duration=4.0,
            f_pairs=4,
            probe_n=6,
        )
        return dataclasses.replace(quick, **overrides)

    def lat(self, seconds: float) -> float:
        return round(seconds * self.scale, 4)


# ----- small helpers -----------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's default)."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary(values_s: Sequence[float]) -> dict[str, Any]:
    """p50/p99/mean/min/max in ms from seconds."""
    ms = [v * 1000 for v in values_s if v is not None]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 1),
        "p99_ms": round(pct(ms, 99), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
    }


def member(base_url: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"model": f"openai/{name}", "api_base": base_url, "api_key": KEY, **extra}


def script(text: str, latency: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"text": text, "latency": latency, **extra}


def client_cache_size() -> int:
    """Entries in LiteLLM's in-memory SDK client cache (one per distinct client config; max 200)."""
    return len(litellm.in_memory_llm_clients_cache.cache_dict)


def client_cache_keys() -> set[str]:
    return set(litellm.in_memory_llm_clients_cache.cache_dict)


async def wait_idle(up: Upstream, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if up.stats()["in_flight"] == 0:
            return True
        await asyncio.sleep(0.05)
    return False


def proc_cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the given processes, from /proc (0 for a process that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def group_pids(pgid: int) -> list[int]:
    """Every process in a process group (the proxy and any worker it forked)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    pids.append(int(entry.name))
    return pids


async def run_workers(concurrency: int, worker: Callable[[int], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return time.perf_counter() - started


# ----- the calls being measured ------------------------------------------------------------------------


async def fusion_call(spec: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await litellm.acompletion(model=FUSION_MODEL, messages=MESSAGES, fusion=spec)
    return time.perf_counter() - started, response


async def fusion_stream(spec: dict[str, Any]) -> dict[str, Any]:
    """TTFT (first non-empty content), the first progress line (reasoning), total time, and the gaps between content chunks."""
    started = time.perf_counter()
    stream = await litellm.acompletion(model=FUSION_MODEL, messages=MESSAGES, fusion=spec, stream=True)
    return await _consume(stream, started)


async def _consume(stream: Any, started: float) -> dict[str, Any]:
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
            return await _consume(chunks, started)
        final = await litellm.acompletion(**self.synth, messages=self.synth_messages, timeout=limit(), **common)
        assert final.choices[0].message.content
        return {"wall": time.perf_counter() - started}


def standard_scripts(s: Settings, synth_extra: dict[str, Any] | None = None, panel_text: str | None = None) -> dict[str, Any]:
    scripts = {name: script(panel_text or PANEL_TEXT[name], s.lat(lat)) for name, lat in zip(PANEL, s.panel_latency, strict=True)}
    scripts[JUDGE] = script(JUDGE_JSON, s.lat(s.judge_latency))
    scripts[SYNTH] = script(SYNTH_TEXT, s.lat(s.synth_latency), **(synth_extra or {}))
    return scripts


def standard_spec(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "panel": [member(base_url, name) for name in PANEL],
        "judge": member(base_url, JUDGE),
        "synthesizer": member(base_url, SYNTH),
        "timeout": 60,
        **extra,
    }


def critical_path_ms(s: Settings) -> float:
    return round(1000 * (max(s.lat(x) for x in s.panel_latency) + s.lat(s.judge_latency) + s.lat(s.synth_latency)), 1)


_HAND_ROLLED: dict[str, HandRolled] = {}


async def make_hand_rolled(up: Upstream, s: Settings) -> HandRolled:
    """Warm up fusion, capture the judge and synthesizer prompts it sent, build the hand-rolled twin
    (once per upstream: section d reuses section a's)."""
    if up.base_url in _HAND_ROLLED:
        return _HAND_ROLLED[up.base_url]
    spec = standard_spec(up.base_url)
    for _ in range(s.warmup):
        await fusion_call(spec)
    judge_body = up.records(JUDGE, bodies=True, last=1)[0]["body"]
    synth_body = up.records(SYNTH, bodies=True, last=1)[0]["body"]
    hand = HandRolled(
        [member(up.base_url, n) for n in PANEL], member(up.base_url, JUDGE), member(up.base_url, SYNTH), judge_body, synth_body
    )
    for _ in range(s.warmup):
        await hand.call("fixed")
        await hand.call("remaining")
    _HAND_ROLLED[up.base_url] = hand
    return hand


# ----- sections ----------------------------------------------------------------------------------------


async def section_server(s: Settings, up: Upstream, ctx: dict[str, Any]) -> dict[str, Any]:
    """Plain litellm.acompletion against a thread server and a process server, alternating batches so that
    other load on the machine hits both alike: the latency each adds above the scripted latency."""
    out: dict[str, Any] = {"chosen": s.server, "latency_ms": round(s.calib_latency * 1000, 1), "concurrency": s.calib_concurrency}
    servers = {mode: (up if mode == up.mode else start_upstream(mode)) for mode in ("thread", "process")}
    try:
        walls: dict[str, list[float]] = {mode: [] for mode in servers}
        elapsed = dict.fromkeys(servers, 0.0)
        cpu = dict.fromkeys(servers, 0.0)
        calls: dict[str, dict[str, Any]] = {}
        for mode, server in servers.items():
            server.set_scripts({"gpt-4o-mini": script("ok " * 20, s.calib_latency)})
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
        per_worker = max(1, s.calib_n // (s.calib_concurrency * rounds))
        for _ in range(rounds):
            for mode, server in servers.items():

                async def worker(_: int, kwargs: dict[str, Any] = calls[mode], sink: list[float] = walls[mode]) -> None:
                    for _ in range(per_worker):
                        started = time.perf_counter()
                        await litellm.acompletion(**kwargs)
                        sink.append(time.perf_counter() - started - s.calib_latency)

                cpu0 = server.stats()["cpu_s"]
                elapsed[mode] += await run_workers(s.calib_concurrency, worker)
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


async def section_a(s: Settings, up: Upstream, ctx: dict[str, Any]) -> dict[str, Any]:
    up.set_scripts(standard_scripts(s))
    spec = standard_spec(up.base_url)
    hand = await make_hand_rolled(up, s)
    crit = critical_path_ms(s)
    out: dict[str, Any] = {
        "critical_path_ms": crit,
        "scripted": {"panel_s": [s.lat(x) for x in s.panel_latency], "judge_s": s.lat(s.judge_latency), "synth_s": s.lat(s.synth_latency)},
        "variants": {
            "fusion": "litellm.acompletion(model='fusion/bench', fusion=spec)",
            "hand_rolled": "gather(panel) -> judge -> synthesizer with plain litellm.acompletion, timeout=60",
            "hand_rolled_remaining_timeout": "the same, timeout=<request's remaining seconds> per call, as fusion passes it",
        },
    }
    variants: dict[str, Callable[[], Awaitable[tuple[float, dict[str, Any] | None]]]] = {}

    async def run_fusion() -> tuple[float, dict[str, Any] | None]:
        wall, response = await fusion_call(spec)
        return wall, response._hidden_params["fusion"]

    async def run_hand() -> tuple[float, dict[str, Any] | None]:
        return (await hand.call("fixed"))["wall"], None

    async def run_hand_remaining() -> tuple[float, dict[str, Any] | None]:
        return (await hand.call("remaining"))["wall"], None

    variants = {"fusion": run_fusion, "hand_rolled": run_hand, "hand_rolled_remaining_timeout": run_hand_remaining}
    names = list(variants)
    for concurrency, rounds in ((1, s.a_rounds_c1), (8, s.a_rounds_c8)):
        await wait_idle(up)
        up.reset()
        walls: dict[str, list[float]] = {name: [] for name in names}
        outside: list[float] = []
        pairs: list[float] = []

        async def worker(
            w: int, walls: dict[str, list[float]] = walls, outside: list[float] = outside, pairs: list[float] = pairs, rounds: int = rounds
        ) -> None:
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
        out[f"c{concurrency}"] = cell

    # CPU and connections per request: sequential calls with zero scripted latency, fresh counters per
    # variant. Driver CPU time (the upstream is another process) is robust to other load on the machine.
    await wait_idle(up)
    fast = {name: script(PANEL_TEXT[name]) for name in PANEL} | {JUDGE: script(JUDGE_JSON), SYNTH: script(SYNTH_TEXT)}
    up.set_scripts(fast)
    probe: dict[str, Any] = {"requests_per_variant": s.probe_n, "upstream_latency_ms": 0}
    for name in names:
        await variants[name]()
        await wait_idle(up)
        up.reset()
        before = client_cache_keys()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(s.probe_n):
            await variants[name]()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stats = up.stats()
        probe[name] = {
            "driver_cpu_ms_per_request": round(1000 * cpu / s.probe_n, 1),
            "wall_ms_per_request": round(1000 * wall / s.probe_n, 1),
            "upstream_calls": stats["total"],
            "tcp_connections_opened": stats["new_connections"],
            "litellm_clients_created": len(client_cache_keys() - before),
        }
    probe["fusion_minus_hand_rolled_cpu_ms"] = round(
        probe["fusion"]["driver_cpu_ms_per_request"] - probe["hand_rolled"]["driver_cpu_ms_per_request"], 1
    )
    probe["litellm_client_cache_size_now"] = client_cache_size()
    probe["litellm_client_cache_max"] = litellm.in_memory_llm_clients_cache.max_size_in_memory
    out["cpu_and_connections"] = probe
    return out


async def section_b(s: Settings, up: Upstream, ctx: dict[str, Any]) -> dict[str, Any]:
    five = (*PANEL, *EXTRA_PANEL)
    scripts = {name: script(PANEL_TEXT[name], s.lat(s.b_member_latency)) for name in five}
    scripts[JUDGE] = script(JUDGE_JSON, s.lat(s.b_stage_latency))
    scripts[SYNTH] = script(SYNTH_TEXT, s.lat(s.b_stage_latency))
    up.set_scripts(scripts)
    specs = {
        "panel_1": standard_spec(up.base_url, panel=[member(up.base_url, five[0])]),
        "panel_5": standard_spec(up.base_url, panel=[member(up.base_url, n) for n in five]),
    }
    for spec in specs.values():
        await fusion_call(spec)
    await wait_idle(up)
    up.reset()
    walls: dict[str, list[float]] = {k: [] for k in specs}
    slowest: dict[str, list[float]] = {k: [] for k in specs}
    for i in range(s.b_pairs):
        order = list(specs) if i % 2 == 0 else list(reversed(specs))
        for name in order:
            wall, response = await fusion_call(specs[name])
            walls[name].append(wall)
            trace = response._hidden_params["fusion"]
            assert all(m["status"] == "ok" for m in trace["panel"]), trace["panel"]
            slowest[name].append(max(m["latency_ms"] for m in trace["panel"]) / 1000)
    stats = up.stats()
    per_stage = s.lat(s.b_stage_latency)
    out: dict[str, Any] = {
        "member_latency_ms": round(1000 * s.lat(s.b_member_latency), 1),
        "judge_and_synth_latency_ms": round(1000 * per_stage, 1),
        "critical_path_ms": round(1000 * (s.lat(s.b_member_latency) + 2 * per_stage), 1),
        "if_sequential_5_ms": round(1000 * (5 * s.lat(s.b_member_latency) + 2 * per_stage), 1),
        "upstream_max_in_flight": stats["max_in_flight"],
    }
    for name in specs:
        out[name] = {**summary(walls[name]), "slowest_member": summary(slowest[name]), "raw_s": walls[name]}
    out["ratio_p50_5_over_1"] = round(out["panel_5"]["p50_ms"] / out["panel_1"]["p50_ms"], 3)
    return out


async def section_c(s: Settings, up: Upstream, ctx: dict[str, Any]) -> dict[str, Any]:
    hang_model = PANEL[2]
    scripts = standard_scripts(s)
    scripts[hang_model] = {"hang": True}
    up.set_scripts(scripts)
    grace, panel_timeout = s.lat(s.c_grace), s.lat(s.c_panel_timeout)
    judge_synth = s.lat(s.judge_latency) + s.lat(s.synth_latency)
    quorum_arrives = sorted(s.lat(x) for x in s.panel_latency[:2])[1]  # the 2nd answer makes the majority (2 of 3)
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
    if s.c_include_default:
        modes["defaults"] = (
            standard_spec(up.base_url),
            "spec defaults (straggler_grace=10s, no panel_timeout)",
            quorum_arrives + 10.0 + judge_synth,
        )
    await fusion_call(modes["quorum_grace"][0])  # warm-up
    out: dict[str, Any] = {"hanging_member": f"openai/{hang_model}", "concurrency": s.c_concurrency}
    for name, (spec, label, expected) in modes.items():
        await wait_idle(up)
        up.reset()
        walls: list[float] = []
        gave_up: list[float] = []
        statuses: dict[str, int] = {}
        concurrency = s.c_concurrency
        n = s.c_n if name != "defaults" else concurrency  # one round of the slow default
        queue = list(range(n))

        async def worker(
            _: int,
            walls: list[float] = walls,
            gave_up: list[float] = gave_up,
            statuses: dict[str, int] = statuses,
            spec: dict[str, Any] = spec,
            queue: list[int] = queue,
        ) -> None:
            while queue:
                queue.pop()
                wall, response = await fusion_call(spec)
                walls.append(wall)
                entry = next(m for m in response._hidden_params["fusion"]["panel"] if m["model"] == f"openai/{hang_model}")
                statuses[entry["status"]] = statuses.get(entry["status"], 0) + 1
                gave_up.append(entry["latency_ms"] / 1000)

        await run_workers(min(concurrency, n), worker)
        # Every fusion call has returned: is any hanging member's upstream request still open?
        open_at_return = sum(r["ended_at"] is None for r in up.records(hang_model))
        idle = await wait_idle(up, timeout=10.0)
        hung = up.records(hang_model)
        held = [r["ended_at"] - r["started_at"] for r in hung if r["ended_at"] is not None]
        stats = up.stats()
        out[name] = {
            "label": label,
            "expected_ms": round(1000 * expected, 1),
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
    q, w = out["quorum_grace"], out["wait_for_all"]
    out["p99_saved_ms"] = round(w["p99_ms"] - q["p99_ms"], 1)
    out["p99_saved_pct"] = round(100 * (w["p99_ms"] - q["p99_ms"]) / w["p99_ms"], 1)
    return out


async def section_d(s: Settings, up: Upstream, ctx: dict[str, Any]) -> dict[str, Any]:
    text = SYNTH_TEXT
    synth_extra = {"chunk_delay": s.d_chunk_delay, "chunk_chars": s.d_chunk_chars}
    scripts = standard_scripts(s, synth_extra=synth_extra)
    scripts[SYNTH]["text"] = text
    up.set_scripts(scripts)
    spec = standard_spec(up.base_url)
    hand = await make_hand_rolled(up, s)
    await fusion_stream(spec)
    await hand.call("fixed", stream=True)
    await wait_idle(up)
    up.reset()
    runs: dict[str, list[dict[str, Any]]] = {"fusion": [], "hand_rolled": []}
    for i in range(s.d_pairs):
        order = ["fusion", "hand_rolled"] if i % 2 == 0 else ["hand_rolled", "fusion"]
        for name in order:
            runs[name].append(await fusion_stream(spec) if name == "fusion" else await hand.call("fixed", stream=True))
    crit = critical_path_ms(s)
    chunks_expected = -(-len(text) // s.d_chunk_chars)
    out: dict[str, Any] = {
        "critical_path_ttft_ms": crit,
        "chunk_delay_ms": round(1000 * s.d_chunk_delay, 1),
        "content_chunks_scripted": chunks_expected,
        "stream_end_expected_ms": round(crit + 1000 * s.d_chunk_delay * (chunks_expected - 1), 1),
    }
    for name, items in runs.items():
        ttft = summary([r["ttft"] for r in items])
        out[name] = {
            "ttft": ttft,
            "ttft_minus_critical_path_ms": {"p50": round(ttft["p50_ms"] - crit, 1), "p99": round(ttft["p99_ms"] - crit, 1)},
            "total": summary([r["total"] for r in items]),
            "content_chunks": [r["chunks"] for r in items],
            "gap": summary([g for r in items for g in r["gaps"]]),
            "raw": items if name == "fusion" else [{k: v for k, v in r.items() if k != "gaps"} for r in items],
        }
    out["fusion"]["first_progress"] = summary([r["first_progress"] for r in runs["fusion"]])
    for r in runs["fusion"]:
        r.pop("gaps", None)
    out["fusion_minus_hand_rolled_ttft_ms"] = {
        "p50": round(out["fusion"]["ttft"]["p50_ms"] - out["hand_rolled"]["ttft"]["p50_ms"], 1),
        "p99": round(out["fusion"]["ttft"]["p99_ms"] - out["hand_rolled"]["ttft"]["p99_ms"], 1),
    }
    # Does fusion hold the first content chunk back until the second arrives? Same stream, 4 chunks with a
    # long chunk_delay: if it does, the TTFT gap to hand-rolled grows by about that delay.
    up.set_scripts({SYNTH: script("abcdefghijklmnopqrst", s.lat(s.synth_latency), chunk_delay=s.d_holdback_delay, chunk_chars=5)})
    probe: dict[str, list[float]] = {"fusion": [], "hand_rolled": []}
    for _ in range(s.d_holdback_pairs):
        probe["fusion"].append((await fusion_stream(spec))["ttft"])
        probe["hand_rolled"].append((await hand.call("fixed", stream=True))["ttft"])
    gap = round(1000 * (statistics.median(probe["fusion"]) - statistics.median(probe["hand_rolled"])), 1)
    out["holdback_probe"] = {
        "chunk_delay_ms": round(1000 * s.d_holdback_delay, 1),
        "fusion_ttft": summary(probe["fusion"]),
        "hand_rolled_ttft": summary(probe["hand_rolled"]),
        "fusion_minus_hand_rolled_ttft_ms_median": gap,
        "first_chunk_held_back": gap > 0.6 * 1000 * s.d_holdback_delay,
    }
    return out


async def section_f(s: Settings, up: Upstream, ctx: dict[str, Any]) -> dict[str, Any]:
    up.set_scripts(standard_scripts(s, panel_text=AGREED_TEXT))
    specs = {"off": standard_spec(up.base_url, short_circuit="off"), "exact": standard_spec(up.base_url, short_circuit="exact")}
    for spec in specs.values():
        await fusion_call(spec)
    await wait_idle(up)
    up.reset()
    walls: dict[str, list[float]] = {k: [] for k in specs}
    costs: dict[str, list[float]] = {k: [] for k in specs}
    taken: dict[str, list[Any]] = {k: [] for k in specs}
    for i in range(s.f_pairs):
        for name in list(specs) if i % 2 == 0 else list(reversed(specs)):
            wall, response = await fusion_call(specs[name])
            walls[name].append(wall)
            costs[name].append(response._hidden_params["response_cost"])
            taken[name].append(response._hidden_params["fusion"]["short_circuit"])
    stats = up.stats()
    out: dict[str, Any] = {
        "critical_path_ms": {"off": critical_path_ms(s), "exact": round(1000 * max(s.lat(x) for x in s.panel_latency), 1)}
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


# ----- section e: the proxy ----------------------------------------------------------------------------


def _proxy_env(master_key: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (
            k.upper().endswith("_API_KEY")
            or k.upper() in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
            or k.startswith(("LITELLM_", "DATABASE_URL", "REDIS_"))
        )
    }
    env.update(
        LITELLM_MASTER_KEY=master_key,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


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


class ProxyProcess:
    """A real ``litellm --config ... --host 127.0.0.1 --port N`` process (one worker), in its own process group.

    Its model_list has solo models on the scripted upstream and a fusion deployment whose members are those
    model names (so nested calls go through the proxy's Router).
    """

    def __init__(self, base_url: str, s: Settings) -> None:
        solo = {"api_base": base_url, "api_key": KEY}
        self.config = {
            "model_list": [
                {"model_name": "m1", "litellm_params": {"model": f"openai/{PANEL[0]}", **solo}},
                {"model_name": "m2", "litellm_params": {"model": f"openai/{PANEL[1]}", **solo}},
                {"model_name": "m3", "litellm_params": {"model": f"openai/{PANEL[2]}", **solo}},
                {"model_name": "j", "litellm_params": {"model": f"openai/{JUDGE}", **solo}},
                {
                    "model_name": "fusion-bench",
                    "litellm_params": {"model": "fusion/bench", "fusion": {"panel": ["m1", "m2", "m3"], "judge": "j", "timeout": 60}},
                },
            ],
            "litellm_settings": {
                "custom_provider_map": [{"provider": "fusion", "custom_handler": "litellm_fusion.fusion_llm"}],
                "num_retries": 0,
            },
        }
        self.workdir = Path(tempfile.mkdtemp(prefix="fusion-bench-proxy-"))
        config_path = self.workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        self.master_key = f"sk-bench-{secrets.token_hex(16)}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "proxy.log"
        self.startup_timeout = s.e_startup_timeout
        command = [
            str(Path(sys.executable).parent / "litellm"),
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.started = time.perf_counter()
        self.startup_s: float | None = None
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=_proxy_env(self.master_key),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown reaches every process it forks
            )

    async def wait_live(self) -> float:
        """Seconds from launch until /health/liveliness answered 200; raises if it exits or times out."""
        if self.startup_s is not None:
            return self.startup_s
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as probe:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"proxy exited with {self.process.returncode}; log {self.log_path}")
                if time.perf_counter() - self.started > self.startup_timeout:
                    raise RuntimeError(f"proxy not live after {self.startup_timeout:.0f}s; log {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get(self.base + "/health/liveliness")).status_code == 200:
                        self.startup_s = round(time.perf_counter() - self.started, 1)
                        return self.startup_s
                await asyncio.sleep(0.25)

    def stop(self) -> None:
        _stop_group(self.process)

    def log_error_lines(self) -> int:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return sum(1 for line in text.splitlines() if "ERROR" in line or "Traceback" in line)


async def section_e(s: Settings, up: Upstream, ctx: dict[str, Any]) -> dict[str, Any]:
    proxy: ProxyProcess | None = ctx.get("proxy")
    if proxy is None:
        raise RuntimeError("no proxy process was started")
    lat = s.e_latency
    up.set_scripts({name: script(PANEL_TEXT[name], lat) for name in PANEL} | {JUDGE: script(JUDGE_JSON, lat)})
    out: dict[str, Any] = {
        "upstream_latency_ms": round(1000 * lat, 1),
        "concurrency": s.e_concurrency,
        "duration_s": s.e_duration,
        "workers": 1,
        "critical_path_ms": {"solo": round(1000 * lat, 1), "fusion": round(3000 * lat, 1)},
        "nested_calls_per_fusion_request": 5,
        "config": proxy.config,
    }
    out["startup_s"] = await proxy.wait_live()
    limits = httpx.Limits(max_connections=s.e_concurrency * 2, max_keepalive_connections=s.e_concurrency * 2)
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
            await _closed_loop(http, model, s.e_concurrency, 1.0)
        out["x_litellm_headers"] = headers
        for label, model in (("solo", "m1"), ("fusion", "fusion-bench")):
            await wait_idle(up)
            up.reset()
            pids = group_pids(proxy.process.pid)
            proxy_cpu0, up_cpu0, me0 = proc_cpu_seconds(pids), up.stats()["cpu_s"], time.process_time()
            result = await _closed_loop(http, model, s.e_concurrency, s.e_duration)
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
                "p50": round(result["p50_ms"] - out["critical_path_ms"][label], 1) if result.get("p50_ms") else None,
                "p99": round(result["p99_ms"] - out["critical_path_ms"][label], 1) if result.get("p99_ms") else None,
            }
            out[label] = result
    out["fusion_over_solo_rps"] = round(out["fusion"]["req_per_s"] / out["solo"]["req_per_s"], 3) if out["solo"]["req_per_s"] else None
    out["nested_calls_per_s_fusion"] = round(out["fusion"]["upstream_calls"] / out["fusion"]["elapsed_s"], 1)
    out["proxy_log_error_lines"] = proxy.log_error_lines()
    out["proxy_log"] = str(proxy.log_path)
    return out


# ----- the run -----------------------------------------------------------------------------------------

SECTIONS: dict[str, tuple[str, Callable[[Settings, Upstream, dict[str, Any]], Awaitable[dict[str, Any]]]]] = {
    "server": ("server mode calibration", section_server),
    "a": ("overhead vs critical path and hand-rolled", section_a),
    "b": ("5-member vs 1-member panel", section_b),
    "c": ("p99 with one hanging member", section_c),
    "d": ("streaming time to first token", section_d),
    "e": ("proxy throughput: fusion vs pass-through", section_e),
    "f": ("consensus short-circuit savings", section_f),
}


def machine_facts(s: Settings) -> dict[str, Any]:
    commit = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "litellm": _version("litellm"),
        "litellm_fusion": litellm_fusion.__version__,
        "git_commit": commit,
        "platform": platform.platform(),
        "time_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": s.quick,
        "server_mode": s.server,
        "latency_scale": s.scale,
    }


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


async def run_async(s: Settings, sections: str, log: Callable[[str], None], up: Upstream, proxy: ProxyProcess | None) -> dict[str, Any]:
    results: dict[str, Any] = {"meta": machine_facts(s)}
    wanted = ["server", *sections] if "server" not in sections else list(sections)
    budget = 240.0 if not s.quick else 120.0  # per section, a safety net only
    results["meta"]["upstream_base_url"] = up.base_url
    ctx: dict[str, Any] = {"proxy": proxy}
    if proxy is not None:
        # Measure nothing while the proxy is still starting (it takes a core for ~15 s).
        log(f"[{time.strftime('%H:%M:%S')}] waiting for the proxy to come up ...")
        with contextlib.suppress(Exception):  # section e reports a proxy that never came up
            log(f"  proxy live after {await proxy.wait_live()} s")
    for key in wanted:
        if key not in SECTIONS:
            continue
        title, fn = SECTIONS[key]
        log(f"[{time.strftime('%H:%M:%S')}] section {key}: {title} ...")
        started = time.perf_counter()
        proxy_cpu0 = proc_cpu_seconds(group_pids(proxy.process.pid)) if proxy is not None else None
        try:
            async with asyncio.timeout(budget):
                results[key] = await fn(s, up, ctx)
        except Exception as exc:  # one broken section must not hide the others
            results[key] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            log(f"  section {key} FAILED: {type(exc).__name__}: {exc}")
        results[key]["section_wall_s"] = round(time.perf_counter() - started, 1)
        if proxy is not None and key != "e":  # the proxy idles meanwhile: check it costs (next to) nothing
            results[key]["idle_proxy_cpu_s"] = round(proc_cpu_seconds(group_pids(proxy.process.pid)) - proxy_cpu0, 2)
        with contextlib.suppress(Exception):
            await wait_idle(up, timeout=10.0)
    results["meta"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _ms(value: Any) -> str:
    return "–" if value is None else f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _signed(value: Any) -> str:
    return "–" if value is None else f"{value:+,.0f}" if abs(value) >= 100 else f"{value:+,.1f}"


def render_table(results: dict[str, Any]) -> str:
    meta = results["meta"]
    rows: list[tuple[str, ...]] = []

    def row(section: str, case: str, n: Any, p50: Any, p99: Any, reference: str, result: str) -> None:
        rows.append((section, case, str(n), _ms(p50), _ms(p99), reference, result))

    srv = results.get("server", {})
    for mode in ("thread", "process"):
        if mode in srv:
            m = srv[mode]
            cpu = f", server CPU {m['server_cpu_pct']:.0f}%" if m.get("server_cpu_pct") is not None else ""
            chosen = " **(used)**" if srv.get("chosen") == mode else ""
            row(
                "server",
                f"{mode} upstream{chosen}: plain acompletion, c={srv['concurrency']}",
                m["added_ms"]["n"],
                m["added_ms"]["p50_ms"],
                m["added_ms"]["p99_ms"],
                f"latency above scripted {srv['latency_ms']:.0f} ms",
                f"{m['elapsed_s']} s{cpu}",
            )
    a = results.get("a", {})
    for c in ("c1", "c8"):
        if c not in a:
            continue
        cell, crit = a[c], a["critical_path_ms"]
        conc = c[1:]
        for name, label in (
            ("fusion", "fusion"),
            ("hand_rolled", "hand-rolled"),
            ("hand_rolled_remaining_timeout", "hand-rolled, timeout=remaining"),
        ):
            v = cell[name]
            row(
                "a",
                f"{label}, c={conc}",
                v["n"],
                v["p50_ms"],
                v["p99_ms"],
                f"critical path {crit:.0f}",
                f"{_signed(v['minus_critical_path_ms']['p50'])} / {_signed(v['minus_critical_path_ms']['p99'])} ms (p50/p99)",
            )
        d = cell["fusion_minus_hand_rolled_ms"]
        o = cell["fusion_outside_nested_calls_ms"]
        row(
            "a",
            f"**overhead fusion − hand-rolled, c={conc}**",
            cell["fusion"]["n"],
            d["p50"],
            d["p99"],
            f"paired median {_signed(d['paired_median'])} ms",
            f"fusion time outside nested calls p50 {_ms(o.get('p50_ms'))} ms; {cell['litellm_clients_created']} new LiteLLM SDK clients",
        )
    if "cpu_and_connections" in a:
        r = a["cpu_and_connections"]
        for name, label in (
            ("fusion", "fusion"),
            ("hand_rolled", "hand-rolled"),
            ("hand_rolled_remaining_timeout", "hand-rolled, timeout=remaining"),
        ):
            v = r[name]
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
    b = results.get("b", {})
    if "panel_1" in b:
        row(
            "b",
            "1-member panel",
            b["panel_1"]["n"],
            b["panel_1"]["p50_ms"],
            b["panel_1"]["p99_ms"],
            f"critical path {b['critical_path_ms']:.0f}",
            f"member {b['member_latency_ms']:.0f} ms, judge+synth {2 * b['judge_and_synth_latency_ms']:.0f} ms",
        )
        row(
            "b",
            "5-member panel",
            b["panel_5"]["n"],
            b["panel_5"]["p50_ms"],
            b["panel_5"]["p99_ms"],
            f"sequential would be {b['if_sequential_5_ms']:.0f}",
            f"**{b['ratio_p50_5_over_1']:.2f}×** the 1-member wall (p50); upstream max in flight {b['upstream_max_in_flight']}",
        )
    c = results.get("c", {})
    for name in ("quorum_grace", "wait_for_all", "defaults"):
        if name in c:
            v = c[name]
            gave_up = v["hanging_member_given_up_after"].get("p50_ms")
            row(
                "c",
                v["label"],
                v["n"],
                v["p50_ms"],
                v["p99_ms"],
                f"expected {v['expected_ms']:.0f}",
                f"hung member {v['hanging_member_status']} after p50 {_ms(gave_up)} ms; upstream connection closed "
                f"by the client in {v['hanging_closed_by_client']}/{v['hanging_requests']} requests "
                f"(disconnected_before_done={v['disconnected_before_done']}; still open when fusion returned: "
                f"{v['hanging_open_when_fusion_returned']})",
            )
    if "p99_saved_ms" in c:
        row(
            "c",
            "**p99 saved by quorum + grace**",
            "",
            None,
            c["p99_saved_ms"],
            "",
            f"**{c['p99_saved_pct']}%** lower p99 than wait-for-all",
        )
    d_ = results.get("d", {})
    for name, label in (("fusion", "fusion stream TTFT"), ("hand_rolled", "hand-rolled stream TTFT")):
        if name in d_:
            v = d_[name]
            row(
                "d",
                label,
                v["ttft"]["n"],
                v["ttft"]["p50_ms"],
                v["ttft"]["p99_ms"],
                f"critical-path TTFT {d_['critical_path_ttft_ms']:.0f}",
                f"{_signed(v['ttft_minus_critical_path_ms']['p50'])} / {_signed(v['ttft_minus_critical_path_ms']['p99'])} ms; "
                f"stream end p50 {_ms(v['total']['p50_ms'])} (expected {_ms(d_['stream_end_expected_ms'])}); "
                f"chunk gap p50 {_ms(v['gap'].get('p50_ms'))} ms; content chunks {sorted(set(v['content_chunks']))}",
            )
    if "first_progress" in d_.get("fusion", {}):
        v = d_["fusion"]["first_progress"]
        row("d", "fusion stream: first progress line (reasoning)", v["n"], v["p50_ms"], v["p99_ms"],
            f"fusion TTFT p50 {_ms(d_['fusion']['ttft']['p50_ms'])}", "life before the panel answered")  # fmt: skip
    if "fusion_minus_hand_rolled_ttft_ms" in d_:
        x = d_["fusion_minus_hand_rolled_ttft_ms"]
        row("d", "**TTFT fusion − hand-rolled**", "", x["p50"], x["p99"], f"chunk_delay {d_['chunk_delay_ms']:.0f} ms", "")
    if "holdback_probe" in d_:
        h = d_["holdback_probe"]
        row(
            "d",
            f"TTFT with chunk_delay {h['chunk_delay_ms']:.0f} ms: fusion vs hand-rolled",
            h["fusion_ttft"]["n"],
            h["fusion_ttft"]["p50_ms"],
            h["fusion_ttft"]["p99_ms"],
            f"hand-rolled p50 {_ms(h['hand_rolled_ttft']['p50_ms'])}",
            f"fusion − hand-rolled {_signed(h['fusion_minus_hand_rolled_ttft_ms_median'])} ms: "
            f"first chunk held back = {h['first_chunk_held_back']}",
        )
    e = results.get("e", {})
    for name, label in (("solo", "proxy pass-through (solo model)"), ("fusion", "proxy fusion (3 members + judge/synth)")):
        if name in e:
            v = e[name]
            row(
                "e",
                f"{label}, c={e['concurrency']}, {e['duration_s']:g} s",
                v["ok"],
                v.get("p50_ms"),
                v.get("p99_ms"),
                f"critical path {e['critical_path_ms'][name]:.0f}",
                f"**{v['req_per_s']} req/s**, errors {v['errors'] or 0}; proxy CPU {v['proxy_cpu_pct']:.0f}% "
                f"= {_ms(v['proxy_cpu_ms_per_request'])} ms/request (upstream {v['upstream_cpu_pct'] or 0:.0f}%, "
                f"driver {v['driver_cpu_pct']:.0f}%); {v['upstream_tcp_connections_opened']} upstream connections "
                f"opened for {v['upstream_calls']} calls; x-litellm-overhead p50 {_ms(v['x_litellm_overhead'].get('p50_ms'))} ms",
            )
    if "fusion_over_solo_rps" in e:
        cap = f"{e['fusion']['req_per_s_per_proxy_core']} vs {e['solo']['req_per_s_per_proxy_core']} req/s per proxy core (fusion vs solo)"
        row(
            "e",
            "fusion req/s ÷ pass-through req/s; CPU-bound capacity: " + cap,
            "",
            None,
            None,
            "5 nested calls per fusion request",
            f"{e['fusion_over_solo_rps']}× ({e['nested_calls_per_s_fusion']} nested calls/s)",
        )
    f = results.get("f", {})
    for name in ("off", "exact"):
        if name in f:
            v = f[name]
            row(
                "f",
                f"short_circuit={name}, agreeing panel",
                v["n"],
                v["p50_ms"],
                v["p99_ms"],
                f"critical path {f['critical_path_ms'][name]:.0f}",
                f"mean cost ${v['mean_cost_usd']:.6f}; taken: {v['short_circuit']}",
            )
    if "cost_saved_pct" in f:
        row(
            "f",
            "**saved by short_circuit=exact**",
            "",
            None,
            None,
            "",
            f"**{f['cost_saved_pct']}% cost, {f['latency_saved_pct_p50']}% latency (p50)**",
        )
    for key, value in results.items():
        if isinstance(value, dict) and "error" in value:
            row(key, "**FAILED**", "", None, None, "", value["error"][:200])

    head = ("§", "case", "n", "p50 ms", "p99 ms", "reference (ms)", "result")
    lines = [
        f"Machine: nproc={meta['nproc']}, loadavg {meta['loadavg_at_start']} → {meta.get('loadavg_at_end')}, Python {meta['python']}, "
        f"LiteLLM {meta['litellm']}, commit {meta['git_commit']}, {'--quick' if meta['quick'] else 'full'} run, "
        f"latency scale {meta['latency_scale']}, upstream: ScriptedServer in a separate **{meta['server_mode']}**"
        + (
            " (benchmarks/upstream.py child process, own GIL and event loop)"
            if meta["server_mode"] == "process"
            else " (thread of the driver process)"
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
    return "\n".join(lines)


def run_benchmarks(
    s: Settings, sections: str = "abcdef", out: str | os.PathLike[str] | None = None, log: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], str]:
    """Run the sections, write the JSON to ``out`` (if given), return (results, markdown table)."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    up = start_upstream(s.server)
    proxy: ProxyProcess | None = None
    try:
        if "e" in sections:
            proxy = ProxyProcess(up.base_url, s)
        import_litellm()
        saved_map = list(litellm.custom_provider_map)
        litellm_fusion.register()
        try:
            results = asyncio.run(run_async(s, sections, log, up, proxy))
        finally:
            litellm.custom_provider_map = saved_map
    finally:
        if proxy is not None:
            proxy.stop()
        up.close()
    table = render_table(results)
    results["table_markdown"] = table
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return results, table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and latencies x0.5 (under ~90 s)")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.json"), help="where to write the JSON")
    parser.add_argument("--server", choices=("process", "thread"), default="process", help="where the scripted upstream runs")
    parser.add_argument("--sections", default="abcdef", help="which sections to run, e.g. 'ab' (the server calibration always runs)")
    args = parser.parse_args(argv)
    settings = Settings.quick_mode(server=args.server) if args.quick else Settings.full(server=args.server)
    started = time.perf_counter()
    results, table = run_benchmarks(settings, args.sections, args.out)
    print(table)
    print(f"\nJSON: {args.out}  (total {time.perf_counter() - started:.0f} s)")
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
