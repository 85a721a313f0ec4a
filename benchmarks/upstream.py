"""The benchmarks' scripted upstream: one ScriptedServer in a child process (or a thread), with a control channel.

``python -m litellm_fusion.testing --port N --scripts file.yaml`` runs the same server standalone but has no
way to read its counters or change scripts from outside, which the benchmarks need (disconnect and
connection accounting, per-measurement latencies, the soak's ``in_flight``). So the process mode runs this
file as a child process::

    python benchmarks/upstream.py [--no-default]   # prints {"base_url", "pid"}, then serves JSON lines on stdin

Both modes answer the same commands (one JSON object per line on stdin, one JSON reply per line on stdout
in the process mode; the same dicts passed in-process in the thread mode):

=====================================================  ==========================================================
``{"cmd": "set", "scripts": {model: fields | [...]}}``  replace those models' scripts (``Script`` fields)
``{"cmd": "reset"}``                                   forget records, restart the counters (``ScriptedServer.reset``)
``{"cmd": "stats"}``                                   ``stats()`` + ``connection_stats()`` + ``cpu_s`` of the server process
``{"cmd": "records", "model", "bodies", "last"}``      the recorded requests (timing, disconnect, status, body)
``{"cmd": "totals"}``                                  counts summed over every ``forget`` (:class:`Totals`)
``{"cmd": "forget"}``                                  drop the records but keep their counts; replies ``totals``
``{"cmd": "idle", "timeout": s}``                      wait until nothing is in flight; ``{"idle": bool, **totals}``
``{"cmd": "stop"}``                                    stop serving and exit
=====================================================  ==========================================================

This module must stay cheap to import (no LiteLLM): the child process imports only aiohttp and the server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from litellm_fusion.testing.server import Script, ScriptedServer, script_from_dict

__all__ = ["Upstream", "ThreadUpstream", "ProcessUpstream", "start_upstream"]


class Totals:
    """Counts that survive :meth:`forget`, for a run too long to keep every request's body (the soak).

    Connections are summed per period between two ``forget()`` calls: a pooled connection used in two
    periods counts twice.
    """

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.by_model: collections.Counter[str] = collections.Counter()
        self.disconnected: collections.Counter[str] = collections.Counter()
        self.connections = 0

    def _current(self) -> tuple[collections.Counter[str], collections.Counter[str], int]:
        records = self.server.requests
        return (
            collections.Counter(r.model for r in records),
            collections.Counter(r.model for r in records if r.disconnected),
            self.server.connection_stats()["connections"],
        )

    def read(self) -> dict[str, Any]:
        """Requests and client disconnects (also by model) and connections, summed over every forget()."""
        stats = self.server.stats()
        by_model, disconnected, connections = self._current()
        by_model.update(self.by_model)
        disconnected.update(self.disconnected)
        return {
            "in_flight": stats["in_flight"],
            "max_in_flight": stats["max_in_flight"],
            "total": sum(by_model.values()),
            "disconnected_before_done": sum(disconnected.values()),
            "connections": self.connections + connections,
            "by_model": dict(by_model),
            "disconnected_by_model": dict(disconnected),
        }

    def forget(self) -> None:
        """Drop the request records (the server keeps every body otherwise), keeping their counts."""
        by_model, disconnected, connections = self._current()
        self.by_model.update(by_model)
        self.disconnected.update(disconnected)
        self.connections += connections
        self.server.reset()


def _records(server: ScriptedServer, model: str | None, bodies: bool, last: int | None) -> list[dict[str, Any]]:
    records = server.requests_for(model) if model else server.requests
    if last:
        records = records[-last:]
    return [
        {
            "model": r.model,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "disconnected": r.disconnected,
            "status": r.status,
            **({"body": r.body} if bodies else {}),
        }
        for r in records
    ]


def _handle(server: ScriptedServer, totals: Totals, command: dict[str, Any]) -> Any:
    """Answer one control command (the table in the module docstring)."""
    cmd = command.get("cmd")
    if cmd == "set":
        for model, entry in command["scripts"].items():
            server.set_script(model, [script_from_dict(item) for item in (entry if isinstance(entry, list) else [entry])])
        return {"ok": True}
    if cmd == "reset":
        server.reset()
        return {"ok": True}
    if cmd == "stats":
        times = os.times()
        return {**server.stats(), **server.connection_stats(), "cpu_s": times.user + times.system}
    if cmd == "records":
        return _records(server, command.get("model"), bool(command.get("bodies")), command.get("last"))
    if cmd == "totals":
        return totals.read()
    if cmd == "forget":
        totals.forget()
        return totals.read()
    if cmd == "idle":
        return {"idle": server.wait_idle(float(command.get("timeout", 5.0))), **totals.read()}
    raise ValueError(f"unknown command {cmd!r}")


class Upstream:
    """What the benchmarks need from the scripted upstream, whichever mode it runs in."""

    mode = "?"
    base_url: str
    pid: int

    def _call(self, command: dict[str, Any], timeout: float = 30.0) -> Any:
        raise NotImplementedError

    def set_scripts(self, scripts: dict[str, Any]) -> None:
        """Replace the scripts of the given models: ``{model: Script fields | [Script fields, ...]}``."""
        self._call({"cmd": "set", "scripts": scripts})

    def reset(self) -> None:
        """Forget the records and restart the counters (``ScriptedServer.reset``)."""
        self._call({"cmd": "reset"})

    def stats(self) -> dict[str, Any]:
        """The server's counters since the last reset, its connections, and its process's CPU seconds."""
        return self._call({"cmd": "stats"})

    def records(self, model: str | None = None, *, bodies: bool = False, last: int | None = None) -> list[dict[str, Any]]:
        """The recorded requests (of ``model``; the ``last`` n), as dicts; with ``bodies`` their JSON bodies too."""
        return self._call({"cmd": "records", "model": model, "bodies": bodies, "last": last})

    def totals(self) -> dict[str, Any]:
        """Counts summed over every :meth:`forget` (see :class:`Totals`)."""
        return self._call({"cmd": "totals"})

    def forget(self) -> dict[str, Any]:
        """Drop the records, keep their counts; returns :meth:`totals`."""
        return self._call({"cmd": "forget"})

    async def wait_idle(self, timeout: float = 15.0) -> dict[str, Any]:
        """Wait (without blocking the caller's loop) until nothing is in flight: ``{"idle": bool, **totals}``."""
        return await asyncio.to_thread(self._call, {"cmd": "idle", "timeout": timeout}, timeout + 30.0)

    def close(self) -> None:
        """Stop the server (and its process)."""
        raise NotImplementedError

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _server(default: bool) -> ScriptedServer:
    return ScriptedServer(default=Script(text="ok") if default else None).start()


class ThreadUpstream(Upstream):
    """The server on a daemon thread of the driver process (shares the driver's GIL)."""

    mode = "thread"

    def __init__(self, default: bool = True) -> None:
        self.server = _server(default)
        self._totals = Totals(self.server)
        self.base_url = self.server.base_url
        self.pid = os.getpid()

    def _call(self, command: dict[str, Any], timeout: float = 30.0) -> Any:
        return _handle(self.server, self._totals, command)

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        stats["cpu_s"] = None  # shared with the driver; not separable
        return stats

    async def wait_idle(self, timeout: float = 15.0) -> dict[str, Any]:
        # The server's own loop runs in its thread: poll it from this loop instead of taking a worker thread.
        idle = await self.server.wait_idle_async(timeout)
        return {"idle": idle, **self._totals.read()}

    def close(self) -> None:
        self.server.stop()


class ProcessUpstream(Upstream):
    """The server in a child process (its own interpreter, GIL and event loop), driven over stdin/stdout."""

    mode = "process"

    def __init__(self, default: bool = True, startup_timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *([] if default else ["--no-default"])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env=env,
        )
        self.pid = self.proc.pid
        self._lock = threading.Lock()
        hello = self._read(startup_timeout)
        self.base_url = hello["base_url"]

    def _read(self, timeout: float) -> Any:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            self.close()
            raise RuntimeError(f"upstream process did not answer within {timeout:.0f}s (exit code {self.proc.poll()})")
        reply = json.loads(result[0])
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(f"upstream process: {reply['error']}")
        return reply

    def _call(self, command: dict[str, Any], timeout: float = 30.0) -> Any:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
            return self._read(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001 - make sure the child goes away
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]


def start_upstream(mode: str, default: bool = True) -> Upstream:
    """``process`` (a child process) or ``thread`` (a thread of the caller).

    ``default``: unknown models get a plain "ok" answer; without it they get the server's 404.
    """
    return ProcessUpstream(default) if mode == "process" else ThreadUpstream(default)


def _serve(default: bool) -> int:
    server = _server(default)
    totals = Totals(server)
    out = sys.stdout
    out.write(json.dumps({"base_url": server.base_url, "pid": os.getpid()}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:  # ends when the parent closes stdin (or dies)
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("cmd") == "stop":
                break
            try:
                reply = _handle(server, totals, command)
            except Exception as exc:  # noqa: BLE001 - report to the parent instead of dying
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        deadline = time.monotonic() + 2
        while server.stats()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve(default="--no-default" not in sys.argv[1:]))
