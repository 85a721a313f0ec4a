#!/usr/bin/env python
"""litellm-fusion benchmarks: one command, measured side by side against a scripted upstream.

    python benchmarks/run.py [--quick] [--out benchmarks/results/latest.json] [--server process|thread]
                             [--sections abcdef]

Prints a markdown table and writes the raw numbers as JSON (one object per section). Everything runs on
127.0.0.1 against litellm_fusion.testing.ScriptedServer with fixed, scripted latencies, so each number
has a known critical path to compare with. One module per measurement, keyed by its section letter:

  server  calibration.py       thread vs process upstream: the extra latency each adds to a plain call (why `process` is used)
  a       overhead.py          fusion wall vs the critical path (slowest member + judge + synthesizer, as scripted) and
                               vs the same nested calls hand-rolled with plain litellm.acompletion, interleaved, at c=1 and c=8
  b       panel_width.py       wall of a 5-member panel vs a 1-member panel (same per-member latency): the panel is parallel
  c       straggler.py         p99 with one hanging member: quorum + straggler grace vs wait-for-all (panel_timeout the only
                               bound), and whether the hanging member's upstream connection was closed
  d       streaming.py         time to first token vs the critical path (slowest member + judge + synthesizer TTFT)
  e       proxy_throughput.py  requests/s through a real `litellm` proxy process: fusion vs a solo pass-through model
  f       short_circuit.py     consensus short-circuit (short_circuit="exact") on an agreeing panel: cost and latency saved

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
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `python benchmarks/run.py` puts benchmarks/ on the path, not the package's parent
    sys.path.insert(0, str(HERE.parent))

from benchmarks import calibration, overhead, panel_width, proxy_throughput, short_circuit, straggler, streaming, table  # noqa: E402
from benchmarks.calibration import CalibrationSettings  # noqa: E402
from benchmarks.calls import Context  # noqa: E402
from benchmarks.overhead import OverheadSettings  # noqa: E402
from benchmarks.panel_width import PanelWidthSettings  # noqa: E402
from benchmarks.proxy import ProxyProcess  # noqa: E402
from benchmarks.proxy_throughput import ProxySettings  # noqa: E402
from benchmarks.scenario import Scenario  # noqa: E402
from benchmarks.short_circuit import ShortCircuitSettings  # noqa: E402
from benchmarks.straggler import StragglerSettings  # noqa: E402
from benchmarks.streaming import StreamingSettings  # noqa: E402
from benchmarks.upstream import Upstream, start_upstream  # noqa: E402

__all__ = ["Settings", "MEASUREMENTS", "run_benchmarks", "render_table", "main"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one run measures and how much: the shared scenario, then each measurement's own settings.

    ``full()`` is the default; ``quick_mode()`` is ``--quick``. Their keyword overrides replace fields; a dict
    for a measurement's field replaces only the named fields of its settings, e.g. ``overhead={"probe_n": 3}``.
    """

    quick: bool = False
    server: str = "process"
    scenario: Scenario = dataclasses.field(default_factory=Scenario)
    calibration: CalibrationSettings = dataclasses.field(default_factory=CalibrationSettings)
    overhead: OverheadSettings = dataclasses.field(default_factory=OverheadSettings)
    panel_width: PanelWidthSettings = dataclasses.field(default_factory=PanelWidthSettings)
    straggler: StragglerSettings = dataclasses.field(default_factory=StragglerSettings)
    streaming: StreamingSettings = dataclasses.field(default_factory=StreamingSettings)
    proxy: ProxySettings = dataclasses.field(default_factory=ProxySettings)
    short_circuit: ShortCircuitSettings = dataclasses.field(default_factory=ShortCircuitSettings)

    @classmethod
    def full(cls, **overrides: Any) -> Settings:
        return cls().replace(**overrides)

    @classmethod
    def quick_mode(cls, **overrides: Any) -> Settings:
        """Smaller counts, and every scaled latency x0.4."""
        quick = cls(
            quick=True,
            scenario=Scenario.quick(),
            calibration=CalibrationSettings.quick(),
            overhead=OverheadSettings.quick(),
            panel_width=PanelWidthSettings.quick(),
            straggler=StragglerSettings.quick(),
            streaming=StreamingSettings.quick(),
            proxy=ProxySettings.quick(),
            short_circuit=ShortCircuitSettings.quick(),
        )
        return quick.replace(**overrides)

    def replace(self, **overrides: Any) -> Settings:
        """A copy with ``overrides``; a dict value updates the named fields of that settings object."""
        merged = {
            name: dataclasses.replace(getattr(self, name), **value) if isinstance(value, dict) else value
            for name, value in overrides.items()
        }
        return dataclasses.replace(self, **merged)


MEASUREMENTS: dict[str, tuple[ModuleType, str]] = {
    "server": (calibration, "calibration"),
    "a": (overhead, "overhead"),
    "b": (panel_width, "panel_width"),
    "c": (straggler, "straggler"),
    "d": (streaming, "streaming"),
    "e": (proxy_throughput, "proxy"),
    "f": (short_circuit, "short_circuit"),
}
"""Section key (the table's §, the JSON's key, ``--sections``) -> (its module, the Settings field of its settings).

Each module has ``TITLE``, ``measure(scenario, settings, upstream, context)`` and ``rows(result)``."""


def machine_facts(s: Settings) -> dict[str, Any]:
    """Where and with what the run measured (recorded in the JSON's ``meta`` and the table's first line)."""
    import litellm_fusion

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
        "latency_scale": s.scenario.scale,
    }


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


async def run_async(s: Settings, sections: str, log: Callable[[str], None], up: Upstream, proxy: ProxyProcess | None) -> dict[str, Any]:
    """Every wanted section in order, each under its own deadline; a failed one records its error."""
    results: dict[str, Any] = {"meta": machine_facts(s)}
    wanted = ["server", *sections] if "server" not in sections else list(sections)
    budget = 240.0 if not s.quick else 120.0  # per section, a safety net only
    results["meta"]["upstream_base_url"] = up.base_url
    ctx = Context(proxy=proxy)
    if proxy is not None:
        # Measure nothing while the proxy is still starting (it takes a core for ~15 s).
        log(f"[{time.strftime('%H:%M:%S')}] waiting for the proxy to come up ...")
        with contextlib.suppress(Exception):  # section e reports a proxy that never came up
            log(f"  proxy live after {await proxy.wait_live()} s")
    for key in wanted:
        if key not in MEASUREMENTS:
            continue
        module, field = MEASUREMENTS[key]
        log(f"[{time.strftime('%H:%M:%S')}] section {key}: {module.TITLE} ...")
        started = time.perf_counter()
        proxy_cpu0 = proxy.cpu_seconds() if proxy is not None else None
        try:
            async with asyncio.timeout(budget):
                results[key] = await module.measure(s.scenario, getattr(s, field), up, ctx)
        except Exception as exc:  # one broken section must not hide the others
            results[key] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            log(f"  section {key} FAILED: {type(exc).__name__}: {exc}")
        results[key]["section_wall_s"] = round(time.perf_counter() - started, 1)
        if proxy is not None and key != "e":  # the proxy idles meanwhile: check it costs (next to) nothing
            results[key]["idle_proxy_cpu_s"] = round(proxy.cpu_seconds() - proxy_cpu0, 2)
        with contextlib.suppress(Exception):
            await up.wait_idle(10.0)
    results["meta"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def render_table(results: dict[str, Any]) -> str:
    """The markdown table: each section's rows in section order, then a row per failed section."""
    rows: list[table.Row] = []
    for key, (module, _) in MEASUREMENTS.items():
        result = results.get(key)
        if isinstance(result, dict) and "error" not in result:
            rows += module.rows(result)
    for key, value in results.items():
        if isinstance(value, dict) and "error" in value:
            rows.append(table.row(key, "**FAILED**", "", None, None, "", value["error"][:200]))
    return table.render(results["meta"], rows)


def run_benchmarks(
    s: Settings, sections: str = "abcdef", out: str | os.PathLike[str] | None = None, log: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], str]:
    """Run the sections, write the JSON to ``out`` (if given), return (results, markdown table)."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    up = start_upstream(s.server)
    proxy: ProxyProcess | None = None
    try:
        if "e" in sections:
            proxy = ProxyProcess(up.base_url, s.proxy.startup_timeout)
        # LiteLLM is imported only now that the upstream and the proxy process are on their way, so that the
        # proxy's ~15 s start-up overlaps the driver's own ~8 s import of LiteLLM on the second core.
        import litellm

        import litellm_fusion

        litellm.suppress_debug_info = True
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
    table_md = render_table(results)
    results["table_markdown"] = table_md
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return results, table_md


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and latencies x0.4 (under ~90 s)")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.json"), help="where to write the JSON")
    parser.add_argument("--server", choices=("process", "thread"), default="process", help="where the scripted upstream runs")
    parser.add_argument("--sections", default="abcdef", help="which sections to run, e.g. 'ab' (the server calibration always runs)")
    args = parser.parse_args(argv)
    settings = Settings.quick_mode(server=args.server) if args.quick else Settings.full(server=args.server)
    started = time.perf_counter()
    results, table_md = run_benchmarks(settings, args.sections, args.out)
    print(table_md)
    print(f"\nJSON: {args.out}  (total {time.perf_counter() - started:.0f} s)")
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
