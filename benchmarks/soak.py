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
threads and sockets stay out of the driver's tracemalloc, task and fd counts. The child is this file run
with ``--serve``: a :class:`~litellm_fusion.testing.ScriptedServer` plus a line protocol on stdin/stdout
for ``stats()``. Why not ``python -m litellm_fusion.testing``? It has no HTTP stats endpoint (only
``/health``, ``/v1/models`` and the chat routes), so ``in_flight`` could not be read from another process.
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

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import logging
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__all__ = ["main", "run_soak", "run_parallel", "SoakConfig", "MIX", "EXPECTED", "MODELS", "SCRIPTS"]

MB = 1024 * 1024
UPSTREAM_KEY = "sk-soak-upstream"

# kind -> share of every batch; the shares sum to 1.
MIX: dict[str, float] = {
    "normal": 0.58,
    "stream": 0.10,
    "stream_abandon": 0.02,
    "member_500": 0.07,
    "member_500_strict": 0.03,
    "member_hang": 0.05,
    "judge_500": 0.05,
    "cancel": 0.05,
    "malformed": 0.05,
}
EXPECTED: dict[str, str] = {
    "normal": "ok",
    "stream": "stream_ok",
    "stream_abandon": "stream_abandoned",
    "member_500": "ok_degraded",
    "member_500_strict": "503",
    "member_hang": "ok_degraded",
    "judge_500": "ok_degraded",
    "cancel": "cancelled",
    "malformed": "400",
}

ANALYSIS = '{"consensus": ["Paris"], "contradictions": [], "partial_coverage": [], "unique_insights": [], "blind_spots": []}'

# Role -> the upstream model name. Real ids from LiteLLM's bundled price map: every nested call is priced
# like a real one, and LiteLLM's model-info look-ups take their fast path (an unknown name costs a fuzzy
# search through the whole map on every call, ~1 ms of CPU each). The server sees the name without "openai/".
MODELS: dict[str, str] = {
    "a": "gpt-4o-mini",
    "b": "gpt-4.1-mini",
    "c": "gpt-4.1-nano",
    "judge": "gpt-4o",
    "synth": "gpt-4.1",
    "synth_long": "gpt-4.1-2025-04-14",
    "err": "gpt-4o-mini-2024-07-18",
    "judge_err": "gpt-4o-2024-08-06",
    "hang": "gpt-4.1-mini-2025-04-14",
    "slow_a": "gpt-3.5-turbo",
    "slow_b": "gpt-3.5-turbo-0125",
    "slow_c": "gpt-4-turbo",
}

# Role -> Script fields.
ROLE_SCRIPTS: dict[str, dict[str, Any]] = {
    "a": {"text": "Member A: Paris is the capital of France.", "latency": 0.005},
    "b": {"text": "Member B: the capital of France is Paris, on the Seine.", "latency": 0.010},
    "c": {"text": "Member C: Paris.", "latency": 0.020},
    "judge": {"text": ANALYSIS, "latency": 0.010},
    "synth": {"text": "Paris is the capital of France, on the Seine.", "latency": 0.005, "chunk_chars": 8, "chunk_delay": 0.001},
    # ~26 s of stream: an abandoned one still open at the drain was not closed by the caller's aclose().
    "synth_long": {"text": "Paris. " * 300, "latency": 0.005, "chunk_chars": 4, "chunk_delay": 0.05},
    "err": {"status": 500, "latency": 0.005, "error_message": "scripted member failure"},
    "judge_err": {"status": 500, "latency": 0.010, "error_message": "scripted judge failure"},
    "hang": {"hang": True},
    "slow_a": {"text": "Slow A: Paris.", "latency": 5.0},
    "slow_b": {"text": "Slow B: Paris.", "latency": 5.0},
    "slow_c": {"text": "Slow C: Paris.", "latency": 5.0},
}
SCRIPTS: dict[str, dict[str, Any]] = {MODELS[role]: script for role, script in ROLE_SCRIPTS.items()}

LEAK_PATTERN = re.compile(r"unclosed|task was destroyed|resourcewarning|exception ignored", re.IGNORECASE)
NEVER_AWAITED = re.compile(r"was never awaited")


# ----- the upstream: a child process (default) or a thread ----------------------------------------------


def _counting_server_class() -> type:
    from litellm_fusion.testing.server import ScriptedServer

    class CountingServer(ScriptedServer):
        """A ScriptedServer that also counts distinct client TCP connections (by peer address and port)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.peers: set[tuple[Any, ...]] = set()
            self.kept_by_model: collections.Counter = collections.Counter()
            self.kept_disconnected: collections.Counter = collections.Counter()
            self.kept_connections = 0

        async def _handle_chat(self, request: Any) -> Any:
            transport = request.transport
            peer = transport.get_extra_info("peername") if transport is not None else None
            if peer is not None:
                with self._lock:
                    self.peers.add(tuple(peer))
            return await super()._handle_chat(request)

        def _current(self) -> tuple[collections.Counter, collections.Counter, int]:
            records = self.requests
            with self._lock:
                peers = len(self.peers)
            return (
                collections.Counter(r.model for r in records),
                collections.Counter(r.model for r in records if r.disconnected),
                peers,
            )

        def cumulative(self) -> dict[str, Any]:
            """Counts summed over every forget(): requests and client disconnects (also by model), connections."""
            stats = self.stats()
            by_model, disconnected, peers = self._current()
            by_model.update(self.kept_by_model)
            disconnected.update(self.kept_disconnected)
            return {
                "in_flight": stats["in_flight"],
                "max_in_flight": stats["max_in_flight"],
                "total": sum(by_model.values()),
                "disconnected_before_done": sum(disconnected.values()),
                "connections": self.kept_connections + peers,
                "by_model": dict(by_model),
                "disconnected_by_model": dict(disconnected),
            }

        def forget(self) -> None:
            """Drop the request records (the server keeps every body otherwise), keeping the counts."""
            by_model, disconnected, peers = self._current()
            with self._lock:
                self.kept_by_model.update(by_model)
                self.kept_disconnected.update(disconnected)
                self.kept_connections += peers
                self.peers.clear()
            self.reset()

    return CountingServer


def _serve(scripts_path: str) -> int:
    """Child mode: serve the scripts; answer ``stats`` / ``forget`` / ``idle <s>`` lines on stdin."""
    from litellm_fusion.testing.server import load_scripts

    scripts, default = load_scripts(scripts_path)
    server = _counting_server_class()(scripts, default=default).start()
    try:
        print(json.dumps({"base_url": server.base_url, "pid": os.getpid()}), flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "stats":
                reply: Any = server.cumulative()
            elif command == "forget":
                server.forget()
                reply = server.cumulative()
            elif command == "idle":
                reply = {"idle": server.wait_idle(float(arg or 5)), **server.cumulative()}
            elif command == "cpu":
                reply = {"cpu_s": time.process_time()}
            elif command == "quit":
                break
            else:
                reply = {"error": f"unknown command {command!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        server.stop()
    return 0


class ChildUpstream:
    """The scripted upstream in a child process (this file with ``--serve``), read through a pipe."""

    mode = "child"

    def __init__(self, scripts_path: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(scripts_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lock = threading.Lock()
        hello = self._read(timeout=30.0)
        self.base_url: str = hello["base_url"]

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self._proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not box or not box[0]:
            raise RuntimeError(f"the upstream child (pid {self._proc.pid}) did not answer within {timeout:g}s")
        return json.loads(box[0])

    def _ask(self, line: str, timeout: float = 30.0) -> dict[str, Any]:
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
            return self._read(timeout)

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def forget(self) -> dict[str, Any]:
        return self._ask("forget")

    def cpu_s(self) -> float:
        return float(self._ask("cpu")["cpu_s"])

    async def wait_idle(self, timeout: float) -> dict[str, Any]:
        return await asyncio.to_thread(self._ask, f"idle {timeout:g}", timeout + 30.0)

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                with contextlib.suppress(Exception):
                    self._ask("quit", timeout=5.0)
        finally:
            for stream in (self._proc.stdin, self._proc.stdout):
                with contextlib.suppress(Exception):
                    stream.close()  # type: ignore[union-attr]
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)


class ThreadUpstream:
    """The scripted upstream on a thread of the driver (``--server inprocess``)."""

    mode = "inprocess"

    def __init__(self, scripts_path: Path) -> None:
        from litellm_fusion.testing.server import load_scripts

        scripts, default = load_scripts(scripts_path)
        self._server = _counting_server_class()(scripts, default=default).start()
        self.base_url = self._server.base_url

    def stats(self) -> dict[str, Any]:
        return self._server.cumulative()

    def forget(self) -> dict[str, Any]:
        self._server.forget()
        return self._server.cumulative()

    def cpu_s(self) -> float:
        return 0.0  # shared with the driver

    async def wait_idle(self, timeout: float) -> dict[str, Any]:
        idle = await self._server.wait_idle_async(timeout)
        return {"idle": idle, **self._server.cumulative()}

    def close(self) -> None:
        self._server.stop()


# ----- what each kind of request sends ------------------------------------------------------------------


def _member(base_url: str, role: str) -> dict[str, Any]:
    return {"model": f"openai/{MODELS[role]}", "api_base": base_url, "api_key": UPSTREAM_KEY}


def build_specs(base_url: str) -> dict[str, dict[str, Any]]:
    """The pre-built fusion spec of each kind (malformed uses the normal one)."""

    def spec(panel: list[str], judge: str = "judge", synth: str = "synth", **extra: Any) -> dict[str, Any]:
        return {
            "panel": [_member(base_url, m) for m in panel],
            "judge": _member(base_url, judge),
            "synthesizer": _member(base_url, synth),
            # Generous: the driver is CPU-bound, so under 16-way concurrency a request waits its turn for seconds.
            "timeout": 120.0,
            "panel_timeout": 60.0,
            **extra,
        }

    normal = spec(["a", "b", "c"])
    return {
        "normal": normal,
        "stream": normal,
        "stream_abandon": spec(["a", "b", "c"], synth="synth_long"),
        "member_500": spec(["a", "b", "err"]),
        "member_500_strict": spec(["a", "b", "err"], min_quorum=3),
        "member_hang": spec(["a", "b", "hang"], straggler_grace=0.05),
        "judge_500": spec(["a", "b", "c"], judge="judge_err"),
        "cancel": spec(["slow_a", "slow_b", "slow_c"]),
        "malformed": normal,
    }


MALFORMED_MESSAGES: list[Any] = [
    [{"role": "bogus", "content": "What is the capital of France?"}],
    [{"role": "user"}],
    [],
]


def _messages(n: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Question {n}: what is the capital of France? Answer in one sentence."}]


def _status(exc: BaseException) -> str:
    code = getattr(exc, "status_code", None)
    return str(code) if isinstance(code, int) else f"error:{type(exc).__name__}"


async def one_request(kind: str, n: int, specs: dict[str, dict[str, Any]], rng: random.Random) -> tuple[str, str | None]:
    """Run one request of ``kind``; return (outcome, detail for an unexpected one)."""
    import litellm

    spec = specs[kind]
    messages: Any = _messages(n)
    if kind == "malformed":
        messages = MALFORMED_MESSAGES[n % len(MALFORMED_MESSAGES)]
    try:
        if kind == "cancel":
            task = asyncio.create_task(litellm.acompletion(model="fusion/soak", fusion=spec, messages=messages))
            await asyncio.sleep(rng.uniform(0.05, 1.0))
            if task.done():
                response = task.result()
                return ("ok_degraded" if response._hidden_params["fusion"]["degraded"] else "ok"), "finished before the cancel"
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Ours, not the caller's: only swallow it if this task itself is not being cancelled.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                return "cancelled", None
            return "ok", "finished despite the cancel"
        if kind in ("stream", "stream_abandon"):
            stream = await litellm.acompletion(
                model="fusion/soak", fusion=spec, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            text, chunks, usage = [], 0, None
            try:
                async for chunk in stream:
                    chunks += 1
                    if chunk.choices:
                        text.append(chunk.choices[0].delta.content or "")
                    usage = getattr(chunk, "usage", None) or usage
                    if kind == "stream_abandon" and chunks >= 3:
                        break
            finally:
                await stream.aclose()
            if kind == "stream_abandon":
                return "stream_abandoned", None
            if not "".join(text).strip() or usage is None:
                return "stream_incomplete", f"{chunks} chunks, text={''.join(text)!r}, usage={usage!r}"
            return "stream_ok", None
        response = await litellm.acompletion(model="fusion/soak", fusion=spec, messages=messages)
        if not (response.choices[0].message.content or "").strip():
            return "empty", "empty answer"
        trace = response._hidden_params["fusion"]
        return ("ok_degraded" if trace["degraded"] else "ok"), None
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the outcome is the status; anything unexpected is reported with its message
        return _status(exc), f"{type(exc).__name__}: {str(exc)[:300]}"


# ----- capture of leak symptoms -------------------------------------------------------------------------


@dataclass
class Symptoms:
    """Leak symptoms seen through each channel (one event is counted in one channel only)."""

    warnings: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    loop: list[str] = field(default_factory=list)
    unraisable: list[str] = field(default_factory=list)
    never_awaited: collections.Counter = field(default_factory=collections.Counter)
    """"coroutine ... was never awaited", by coroutine: lost work, not a held resource; reported, not a criterion."""
    other_warnings: list[str] = field(default_factory=list)
    other_logs: collections.Counter = field(default_factory=collections.Counter)

    def leak_events(self) -> list[str]:
        return self.warnings + self.logs + self.loop + self.unraisable

    def take(self, msg: warnings.WarningMessage) -> None:
        """Sort one warning as it is emitted, while the object it is about (an unclosed transport, a
        coroutine never awaited) still exists: if tracemalloc traced its allocation, say where that was."""
        text = f"{msg.category.__name__}: {msg.message} ({_short(msg.filename)}:{msg.lineno})"
        allocated = _allocated_at(msg.source)
        if NEVER_AWAITED.search(str(msg.message)):
            self.never_awaited[str(msg.message).split("\n")[0] + (f" (created at {allocated})" if allocated else "")] += 1
        elif issubclass(msg.category, ResourceWarning) or LEAK_PATTERN.search(str(msg.message)):
            self.warnings.append((text + (f"; allocated at {allocated}" if allocated else ""))[:700])
        else:
            self.other_warnings.append(text[:300])


def _allocated_at(obj: object) -> str | None:
    """Where tracemalloc saw ``obj`` allocated (most recent frame first), if it was tracing then and now."""
    if obj is None or not tracemalloc.is_tracing():
        return None
    traceback = tracemalloc.get_object_traceback(obj)
    if traceback is None:
        return None
    return " <- ".join(f"{_short(frame.filename)}:{frame.lineno}" for frame in reversed(list(traceback)[-4:]))


class _CaptureHandler(logging.Handler):
    def __init__(self, symptoms: Symptoms) -> None:
        super().__init__(level=logging.WARNING)
        self.symptoms = symptoms

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a badly formatted record is still a record
            message = str(record.msg)
        text = f"{record.name} {record.levelname}: {message}"
        if LEAK_PATTERN.search(message):
            self.symptoms.logs.append(text[:500])
        else:
            self.symptoms.other_logs[text[:160]] += 1


_CAPTURED_LOGGERS = ("", "asyncio", "aiohttp", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "openai")


@contextlib.contextmanager
def capture_symptoms(symptoms: Symptoms) -> Iterator[None]:
    """Route warnings, log records (WARNING+) and unraisable exceptions into ``symptoms``."""
    handler = _CaptureHandler(symptoms)
    loggers = [logging.getLogger(name) for name in _CAPTURED_LOGGERS]
    saved_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        text = f"{info.err_msg or 'Exception ignored in'}: {info.object!r}: {info.exc_type.__name__}: {info.exc_value}"
        symptoms.unraisable.append(text[:500])

    # Garbage left by whatever ran before (earlier tests in the same process) is collected now, so that its
    # warnings are not counted as the soak's.
    gc.collect()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", ResourceWarning)
        warnings.simplefilter("always", RuntimeWarning)
        # record=True routes every WarningMessage (with its ``source`` object) through this hook, which
        # catch_warnings restores on exit; taking it here lets take() look the object up while it exists.
        warnings._showwarnmsg_impl = symptoms.take  # type: ignore[attr-defined]
        for logger in loggers:
            # A logger that does not propagate (LiteLLM's own) would hide its records from the root's handler.
            if logger.name == "root" or not logger.propagate:
                logger.addHandler(handler)
        sys.unraisablehook = unraisable
        try:
            yield
        finally:
            sys.unraisablehook = saved_hook
            for logger in loggers:
                logger.removeHandler(handler)


def _loop_exception_handler(symptoms: Symptoms):
    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        exc = context.get("exception")
        where = context.get("task") or context.get("future") or context.get("client_session") or ""
        symptoms.loop.append(f"{message} {type(exc).__name__ + ': ' + str(exc) if exc else ''} {where}"[:500])

    return handle


# ----- measurements -------------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _owner(filename: str) -> str:
    path = filename.replace("\\", "/")
    for marker, owner in (
        ("/litellm_fusion/", "litellm_fusion"),
        ("/litellm/", "litellm"),
        ("/openai/", "openai"),
        ("/httpx/", "httpx"),
        ("/httpcore/", "httpcore"),
        ("/aiohttp/", "aiohttp"),
        ("/benchmarks/", "soak driver"),
        ("/asyncio/", "asyncio"),
        ("/pydantic", "pydantic"),
    ):
        if marker in path:
            return owner
    return "other"


def _attribution(traceback: tracemalloc.Traceback) -> str:
    """The owning package: the most recent frame in fusion / LiteLLM / the HTTP stack, else the top frame."""
    frames = list(traceback)  # oldest first
    for wanted in ("litellm_fusion", "litellm", "openai", "httpx", "httpcore", "aiohttp"):
        for frame in reversed(frames):
            if _owner(frame.filename) == wanted:
                return wanted
    return _owner(frames[-1].filename) if frames else "other"


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _snapshot_filters(mode: str) -> list[tracemalloc.Filter]:
    filters = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    if mode == "inprocess":
        filters.append(tracemalloc.Filter(False, "*/litellm_fusion/testing/*"))
        filters.append(tracemalloc.Filter(False, "*/aiohttp/web*"))
    return filters


def growth_sites(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int = 5) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The top growth sites (by traceback) and the net growth by owning package."""
    stats = after.compare_to(before, "traceback")
    by_owner: collections.Counter = collections.Counter()
    for stat in stats:
        by_owner[_attribution(stat.traceback)] += stat.size_diff
    sites = []
    for stat in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top]:
        frames = list(stat.traceback)
        sites.append(
            {
                "size_diff": stat.size_diff,
                "count_diff": stat.count_diff,
                "owner": _attribution(stat.traceback),
                "site": f"{_short(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?",
                "traceback": [f"{_short(f.filename)}:{f.lineno}" for f in reversed(frames)],  # most recent first
            }
        )
    return sites, dict(by_owner.most_common())


def slope(values: list[float]) -> float:
    """Least-squares slope per step."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    den = sum((x - mean_x) ** 2 for x in range(n))
    return num / den


def _client_cache_size() -> int | None:
    import litellm

    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    return len(getattr(cache, "cache_dict", {})) if cache is not None else None


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _counters() -> dict[str, Any]:
    """The cheap process-wide counters read after every batch (after ``gc.collect()``)."""
    return {
        "tasks": len(asyncio.all_tasks()),
        "fds": open_fds(),
        "gc_objects": len(gc.get_objects()),
        "blocks": sys.getallocatedblocks(),
        "rss": _rss_bytes(),
        "client_cache": _client_cache_size(),
    }


# ----- the run ------------------------------------------------------------------------------------------


@dataclass
class SoakConfig:
    requests: int = 10_000
    concurrency: int = 16
    warmup: int = 300
    batches: int = 10
    """Measurement batches; the last 5 are the ones the slope is computed over (and, with ``trace="tail"``,
    the traced ones)."""
    seed: int = 7
    trace: str = "tail"
    """``tail``: tracemalloc runs only for the last 5 batches (plus one batch before them to let LiteLLM's
    churning caches be re-allocated under tracing); ``full``: from before the warm-up to the end."""
    traced_requests: int | None = None
    """Requests in the last 5 batches with ``trace="tail"`` (default: 10 % of ``requests``, at least 100)."""
    trace_warmup: int | None = None
    """Requests in the traced batch before them (default: a fifth of ``traced_requests``, at least 60)."""
    frames: int = 1
    """tracemalloc frames per allocation. 1 triples LiteLLM's per-call CPU; 8 multiplies it by about 8."""
    server: str = "child"
    max_wall: float = 600.0
    max_growth_mb: float = 2.0
    max_slope_pct: float = 20.0
    max_extra_tasks: int = 2
    quiet: bool = False
    tag: str = ""
    """Prefix of the progress lines (a worker's name with ``--procs``)."""

    def plan(self) -> list[tuple[int, str]]:
        """(requests, role) per batch; role is ``bulk``, ``trace-warmup`` or ``measured`` (the last 5)."""
        if self.batches < 6 or self.requests < self.batches:
            raise ValueError("need --batches >= 6 and --requests >= --batches")
        if self.trace == "full":
            return [(size, "measured" if i >= self.batches - 5 else "bulk") for i, size in enumerate(_split(self.requests, self.batches))]
        traced = self.traced_requests or max(100, self.requests // 10)
        warm = self.trace_warmup or max(traced // 5, 60)  # 60 requests make 300 calls: more than LiteLLM's client cache holds
        rest = self.requests - traced - warm
        if traced < 5 or rest < self.batches - 6 or (self.batches == 6 and rest != 0):
            raise ValueError(
                f"--trace tail: {self.requests} requests cannot make {self.batches - 6} untraced batches, a traced warm-up "
                f"batch of {warm} and 5 traced batches of {traced} requests in all; change --requests, --batches or --traced-requests"
            )
        bulk = [(size, "bulk") for size in _split(rest, self.batches - 6)] if self.batches > 6 else []
        # The batch before the traced ones runs traced too: structures LiteLLM rebuilds all the time (its client
        # cache turns over with every distinct timeout) are then re-allocated under tracing before the baseline.
        return bulk + [(warm, "trace-warmup")] + [(size, "measured") for size in _split(traced, 5)]


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def batch_kinds(n: int, rng: random.Random) -> list[str]:
    """Exactly the MIX shares of ``n`` (largest remainder), shuffled."""
    exact = {kind: share * n for kind, share in MIX.items()}
    counts = {kind: int(math.floor(v)) for kind, v in exact.items()}
    for kind in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[kind] += 1
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    rng.shuffle(kinds)
    return kinds


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


async def _settle(upstream: Any, timeout: float = 15.0, before_gc: float = 3.0) -> dict[str, Any]:
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


async def _drive(cfg: SoakConfig, upstream: Any, symptoms: Symptoms, log: Any) -> dict[str, Any]:
    import litellm

    import litellm_fusion

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception_handler(symptoms))
    litellm_fusion.register()
    specs = build_specs(upstream.base_url)
    rng = random.Random(cfg.seed)
    filters = _snapshot_filters(cfg.server)
    plan = cfg.plan()

    # Warm-up: imports LiteLLM's lazy modules, fills its client cache and the fusion preset store. It runs
    # traced in both modes: what it leaves traced is the "process memory" the slope percentage is relative to,
    # as in LiteLLM's own leak tests, which start tracemalloc before their warm-up.
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

    gc.collect()
    up_base = upstream.stats()
    base = {
        **_counters(),
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
        row = {
            "batch": i + 1,
            "role": role,
            "size": size,
            "requests": done,
            "seconds": round(seconds, 2),
            "cpu_ms_per_request": round(cpu / size * 1000, 1),
            "traced_bytes": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
            **_counters(),
            "in_flight": stats["in_flight"],
            "in_flight_before_gc": stats["in_flight_before_gc"],
            "upstream_total": stats["total"],
            "upstream_connections": stats["connections"],
            "upstream_disconnected": stats["disconnected_before_done"],
        }
        rows.append(row)
        traced = f"traced {row['traced_bytes'] / MB:.2f} MB, " if row["traced_bytes"] is not None else ""
        log(
            f"batch {i + 1}/{len(plan)} ({role}): {size} req in {seconds:.1f}s ({size / max(seconds, 1e-9):.1f}/s, "
            f"{row['cpu_ms_per_request']:.0f} ms CPU/req), {traced}tasks {row['tasks']}, fds {row['fds']}, "
            f"in_flight {row['in_flight_before_gc']} before gc / {row['in_flight']} after, gc objects {row['gc_objects']}, "
            f"client cache {row['client_cache']}, "
            f"upstream conns so far {row['upstream_connections']}"
        )
    wall = time.perf_counter() - run_started
    cpu = time.process_time() - cpu_started

    # A last abandoned stream right before the drain, so that an upstream stream the caller's aclose() did
    # not close is certainly still open (its script streams for ~26 s) when the drain looks.
    probe = await one_request("stream_abandon", cfg.requests, specs, rng)

    # Drain and compare.
    final_stats = await _settle(upstream, timeout=30.0)
    gc.collect()
    end = {
        **_counters(),
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

    # Close LiteLLM's cached clients now, so nothing is left for the interpreter's exit (or the next test).
    with contextlib.suppress(Exception):
        await litellm.close_litellm_async_clients()
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


def _criteria(cfg: SoakConfig, result: dict[str, Any], symptoms: Symptoms) -> list[dict[str, Any]]:
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
    with tempfile.TemporaryDirectory(prefix="fusion-soak-") as tmp:
        scripts_path = Path(tmp) / "scripts.yaml"
        scripts_path.write_text(json.dumps(SCRIPTS), encoding="utf-8")  # JSON is YAML
        upstream = ChildUpstream(scripts_path) if cfg.server == "child" else ThreadUpstream(scripts_path)
        try:
            with capture_symptoms(symptoms):
                if cfg.trace == "full":
                    tracemalloc.start(cfg.frames)
                try:
                    result = asyncio.run(_drive(cfg, upstream, symptoms, log))
                    gc.collect()  # anything the loop's shutdown left for the collector shows up now
                finally:
                    tracemalloc.stop()
            upstream_cpu = upstream.cpu_s()
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
    report["criteria"] = _criteria(cfg, result, symptoms)
    report["passed"] = all(c["pass"] for c in report["criteria"])
    report["markdown"] = render(cfg, report)
    return report


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ----- several driver processes ------------------------------------------------------------------------


def run_parallel(cfg: SoakConfig, procs: int) -> dict[str, Any]:
    """Split the run over ``procs`` driver processes, each a full soak with its own upstream child.

    The driver is CPU-bound in LiteLLM's per-call work, so one process is limited to one core. Each worker
    gets its share of the requests and of the concurrency, does its own warm-up (the caches are per process)
    and checks every criterion on its own process; the merged report passes if every worker does and the
    longest worker's measured phase fits ``max_wall``.
    """
    requests, concurrency = _split(cfg.requests, procs), _split(cfg.concurrency, procs)
    traced = _split(cfg.traced_requests, procs) if cfg.traced_requests else [None] * procs
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
            workers.append((subprocess.Popen(argv, stdout=subprocess.DEVNULL), out))
        for process, _ in workers:
            try:
                process.wait(timeout=max(1.0, deadline - (time.perf_counter() - started)))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        elapsed = time.perf_counter() - started
        reports = []
        for i, (process, out) in enumerate(workers):
            if not out.exists():
                raise RuntimeError(f"soak worker {i + 1} wrote no report (exit status {process.returncode})")
            reports.append(json.loads(out.read_text(encoding="utf-8")))
    return merge_reports(cfg, reports, elapsed)


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
    parser.add_argument("--serve", metavar="SCRIPTS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.serve)
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
        traced = _split(cfg.traced_requests, args.procs) if cfg.traced_requests else [None] * args.procs
        for share, traced_share in zip(_split(cfg.requests, args.procs), traced, strict=True):
            SoakConfig(**{**cfg.__dict__, "requests": share, "traced_requests": traced_share}).plan()
    except ValueError as exc:
        parser.error(str(exc))
    report = run_soak(cfg) if args.procs == 1 else run_parallel(cfg, args.procs)
    print(report["markdown"])
    if args.json:
        Path(args.json).write_text(json.dumps(_jsonable(report), indent=2, default=str), encoding="utf-8")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
