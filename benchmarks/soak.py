"""Soak test (perf-reliability goal G7): no leaks after many fusion requests with faults mixed in.

    python benchmarks/soak.py [--requests 10000] [--concurrency 16] [--json out.json]

Runs ``--warmup`` requests, takes a baseline, runs ``--requests`` more in ``--batches`` batches, drains,
``gc.collect()``s and compares. Every request is ``litellm.acompletion(model="fusion/soak", fusion=spec, ...)``
(after ``litellm_fusion.register()``) against a scripted OpenAI-compatible upstream on 127.0.0.1, with this
mix (exact counts per batch, shuffled with ``--seed``):

======================  =====  ==========================================================  ===============
kind                    share  what happens                                                expected
======================  =====  ==========================================================  ===============
normal                  58 %   3 members, judge, synthesizer                               ok
stream                  10 %   the same, ``stream=True``, consumed to the end              stream_ok
stream_abandon           2 %   ``stream=True`` on a long (~26 s) synthesizer stream; the   stream_abandoned
                               caller reads 3 chunks, breaks out and ``aclose()``s it
member_500               7 %   one member answers 500; the quorum (2 of 3) still holds     ok_degraded
member_500_strict        3 %   one member answers 500 with ``min_quorum: 3``               503
member_hang              5 %   one member never answers; ``straggler_grace`` 0.05 s drops  ok_degraded
judge_500                5 %   the judge answers 500; synthesis from the raw answers       ok_degraded
cancel                   5 %   slow panel (5 s); the caller cancels 0.05-1 s in            cancelled
malformed                5 %   bad messages (bad role, missing content, empty list)        400 (no upstream)
======================  =====  ==========================================================  ===============

"Normal" in the G7 sense is the first three rows (70 %). Latencies are 5-20 ms except the cancel panel and
the abandoned stream. After the last batch one more abandoned stream runs (the probe, below).

The upstream runs in a child process (``--server child``, the default) so that the server's own objects,
threads and sockets stay out of the driver's tracemalloc, task and fd counts. The child is the benchmarks'
one upstream, ``benchmarks/upstream.py``: a :class:`~litellm_fusion.testing.ScriptedServer` plus a line
protocol on stdin/stdout for its counters (``in_flight``, requests and connections summed over the batches).
``--server inprocess`` runs the server in a thread of the driver instead: exact same stats, but the server's
objects, its thread (competing for the GIL) and both ends of every socket are then in the driver's
measurements; its files are filtered out of the tracemalloc diff, but not out of the fd count.

tracemalloc (``--trace``). Tracing every allocation is expensive here: LiteLLM spends ~10 ms of CPU per call
and a fusion request makes six (the outer call, 3 members, judge, synthesizer); tracemalloc with 1 frame
roughly triples that, with 8 frames it is ~8x. So by default (``tail``) the warm-up runs traced (see the
slope criterion), the first batches run untraced (checked by the cheap counters: tasks, fds, gc-tracked
objects, ``sys.getallocatedblocks()``, RSS, read after every batch), tracing restarts one batch before the
last five (so that anything LiteLLM rebuilds as it goes is re-allocated under tracing before the traced
baseline), and growth, growth sites and slope come from the last five batches (10 % of ``--requests`` by
default). ``--trace full`` traces from before the warm-up to the end,
as G7 literally asks, at 3x the run time. ``--frames 8`` gives tracebacks deep enough to tell whose code
holds a growing allocation (``--frames 1`` names the allocating line only).

Criteria (each printed as PASS/FAIL; the exit status is 1 if any fails):

* asyncio tasks after drain <= baseline + 2;
* tracemalloc net growth (traced memory, end - traced baseline) <= 2 MB;
* the traced-memory slope over the last 5 batches (least squares) <= 20 % growth, LiteLLM's own criterion
  from its ``tests/memory_leak_tests``: relative to the traced process memory, i.e. what a tracemalloc started
  before the warm-up holds (the warm-up always runs traced; with ``tail`` what it left traced, ~29 MB here,
  is added to the late-restarted trace). The absolute slope (KB per 1,000 requests) is reported as well;
* upstream ``in_flight`` == 0 after drain and ``gc.collect()``;
* upstream ``in_flight`` == 0 after drain *before* ``gc.collect()`` (stricter than G7): an upstream request
  still open then was closed by nobody and would end only when the cyclic GC happens to run. The probe (an
  abandoned ~26 s stream right before the drain) makes a stream that ``aclose()`` does not close certain
  to be caught;
* open fds <= baseline + allowance, allowance = concurrency x 3 (the most upstream connections the
  driver can hold at once: every request's 3 panel members in flight; LiteLLM's cached clients may keep
  that many idle keep-alive connections open, legitimately) + 4 (slack for epoll/eventfd/pipes);
* 0 ResourceWarning / "Unclosed ..." / "Task was destroyed" / unraisable-exception events, from
  ``warnings``, ``logging``, the loop's exception handler and ``sys.unraisablehook``. "coroutine ... was
  never awaited" is counted and shown but is not a criterion: LiteLLM's ``acompletion`` builds the provider
  coroutine in a thread-pool hop (``loop.run_in_executor``), and when the caller is cancelled during that
  hop the coroutine is dropped unawaited (lost work, no resource held);
* every request had its kind's expected outcome;
* wall time <= ``--max-wall`` (default 600 s). The driver is CPU-bound (LiteLLM's per-call cost, above), so
  this depends on the machine: on 2 shared cores 10,000 requests take longer than 10 minutes.

``--procs N`` splits the requests and the concurrency over N driver processes, each a full soak with its own
upstream child, warm-up and criteria (the merged report passes if every worker does): the way to use more than
one core, at the price of each process seeing only its share of the requests.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # `python benchmarks/soak.py` puts benchmarks/ on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.soak_config import SoakConfig, split  # noqa: E402
from benchmarks.soak_driver import drive  # noqa: E402
from benchmarks.soak_report import criteria, jsonable, merge_reports, render  # noqa: E402
from benchmarks.soak_requests import EXPECTED, MIX, MODELS, SCRIPTS, batch_kinds, build_specs  # noqa: E402
from benchmarks.soak_symptoms import Symptoms, capture_symptoms  # noqa: E402
from benchmarks.stats import slope  # noqa: E402
from benchmarks.upstream import start_upstream  # noqa: E402
from litellm_fusion._core.processes import stop_process_group  # noqa: E402

# The soak's pieces are re-exported here for tests/integration/test_soak.py, which checks the ones the
# criteria rest on (the mix, the plan, the slope, the specs) before running a short soak.
__all__ = [
    "main", "run_soak", "run_parallel", "SoakConfig", "MIX", "EXPECTED", "MODELS", "SCRIPTS", "batch_kinds", "build_specs", "slope",
]  # fmt: skip


def run_soak(cfg: SoakConfig) -> dict[str, Any]:
    """Run the soak and return the report (``report["passed"]`` says whether every criterion passed)."""
    import litellm

    cfg.plan()  # validate before starting anything
    saved_suppress = litellm.suppress_debug_info
    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner per expected error
    prefix = f"[{cfg.tag}] " if cfg.tag else ""
    log = (lambda *_: None) if cfg.quiet else (lambda msg: print(prefix + msg, file=sys.stderr, flush=True))
    symptoms = Symptoms()
    if tracemalloc.is_tracing():
        raise RuntimeError("tracemalloc is already tracing; the soak starts and stops it itself")
    # No default script: a model the soak does not script is a bug, and gets the server's 404.
    upstream = start_upstream("process" if cfg.server == "child" else "thread", default=False)
    try:
        upstream.set_scripts(SCRIPTS)
        with capture_symptoms(symptoms):
            if cfg.trace == "full":
                tracemalloc.start(cfg.frames)
            try:
                result = asyncio.run(drive(cfg, upstream, symptoms, log))
                gc.collect()  # anything the loop's shutdown left for the collector shows up now
            finally:
                tracemalloc.stop()
        upstream_cpu = upstream.stats()["cpu_s"] or 0.0  # None in a thread: shared with the driver
    finally:
        upstream.close()
        litellm.suppress_debug_info = saved_suppress
    report: dict[str, Any] = {
        "config": dict(cfg.__dict__),
        "result": result,
        "upstream_cpu_s": upstream_cpu,
        "symptoms": {
            "leak_events": symptoms.leak_events(),
            "warnings": symptoms.warnings,
            "logs": symptoms.logs,
            "loop": symptoms.loop,
            "unraisable": symptoms.unraisable,
            "never_awaited": dict(symptoms.never_awaited),
            "other_warnings": symptoms.other_warnings[:20],
            "other_logs": dict(symptoms.other_logs.most_common(20)),
        },
    }
    report["criteria"] = criteria(cfg, result, symptoms)
    report["passed"] = all(c["pass"] for c in report["criteria"])
    report["markdown"] = render(cfg, report)
    return report


def run_parallel(cfg: SoakConfig, procs: int) -> dict[str, Any]:
    """Split the run over ``procs`` driver processes, each a full soak with its own upstream child.

    The driver is CPU-bound in LiteLLM's per-call work, so one process is limited to one core. Each worker
    gets its share of the requests and of the concurrency, does its own warm-up (the caches are per process)
    and checks every criterion on its own process; the merged report passes if every worker does and the
    longest worker's measured phase fits ``max_wall``.
    """
    requests, concurrency = split(cfg.requests, procs), split(cfg.concurrency, procs)
    traced = split(cfg.traced_requests, procs) if cfg.traced_requests else [None] * procs
    deadline = cfg.max_wall * 5 + 900  # a bound on the wait, well past any run worth waiting for
    with tempfile.TemporaryDirectory(prefix="fusion-soak-procs-") as tmp:
        started = time.perf_counter()
        workers = []
        for i in range(procs):
            out = Path(tmp) / f"worker-{i + 1}.json"
            argv = [
                sys.executable, str(Path(__file__).resolve()),
                "--requests", str(requests[i]), "--concurrency", str(max(1, concurrency[i])), "--warmup", str(cfg.warmup),
                "--batches", str(cfg.batches), "--seed", str(cfg.seed + i), "--trace", cfg.trace, "--frames", str(cfg.frames),
                "--server", cfg.server, "--max-wall", "1e9", "--json", str(out), "--tag", f"w{i + 1}",
            ]  # fmt: skip
            argv += ["--traced-requests", str(traced[i])] if traced[i] else []
            argv += ["--quiet"] if cfg.quiet else []
            # Its own process group, so that stopping a worker stops its upstream child too.
            workers.append((subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True), out))
        try:
            for process, _ in workers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(1.0, deadline - (time.perf_counter() - started)))
        finally:  # a worker past the deadline, or every worker if this process is interrupted
            for process, _ in workers:
                stop_process_group(process)
        elapsed = time.perf_counter() - started
        reports = []
        for i, (process, out) in enumerate(workers):
            if not out.exists():
                raise RuntimeError(f"soak worker {i + 1} wrote no report (exit status {process.returncode})")
            reports.append(json.loads(out.read_text(encoding="utf-8")))
    return merge_reports(cfg, reports, elapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="measured requests (default 10000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent callers (default 16)")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up requests before the baseline (default 300)")
    parser.add_argument("--batches", type=int, default=10, help="measurement batches, >= 6 with --trace tail (default 10)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trace", choices=("tail", "full"), default="tail", help="tracemalloc for the last 5 batches only, or throughout")
    parser.add_argument("--traced-requests", type=int, help="requests in the 5 traced batches (default 10%% of --requests, >= 100)")
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames per allocation (default 1)")
    parser.add_argument("--server", choices=("child", "inprocess"), default="child", help="where the scripted upstream runs")
    parser.add_argument("--max-wall", type=float, default=600.0, help="wall-time limit for the measured requests, s (default 600)")
    parser.add_argument("--json", help="also write the full report as JSON here")
    parser.add_argument("--procs", type=int, default=1, help="driver processes sharing the requests and the concurrency (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = SoakConfig(
        requests=args.requests,
        concurrency=args.concurrency,
        warmup=args.warmup,
        batches=args.batches,
        seed=args.seed,
        trace=args.trace,
        traced_requests=args.traced_requests,
        frames=args.frames,
        server=args.server,
        max_wall=args.max_wall,
        quiet=args.quiet,
        tag=args.tag,
    )
    if args.procs < 1 or args.procs > args.concurrency:
        parser.error("--procs must be between 1 and --concurrency")
    try:
        traced = split(cfg.traced_requests, args.procs) if cfg.traced_requests else [None] * args.procs
        for share, traced_share in zip(split(cfg.requests, args.procs), traced, strict=True):
            SoakConfig(**{**cfg.__dict__, "requests": share, "traced_requests": traced_share}).plan()
    except ValueError as exc:
        parser.error(str(exc))
    report = run_soak(cfg) if args.procs == 1 else run_parallel(cfg, args.procs)
    print(report["markdown"])
    if args.json:
        Path(args.json).write_text(json.dumps(jsonable(report), indent=2, default=str), encoding="utf-8")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
