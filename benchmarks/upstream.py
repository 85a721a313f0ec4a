"""The benchmark's scripted upstream: a ScriptedServer in its own process (or a thread), with a control channel.

``python -m litellm_fusion.testing --port N --scripts file.yaml`` runs the same server standalone but has no
way to read ``stats()`` or change scripts from outside, which the benchmark needs (disconnect accounting,
per-section latencies). So the process mode runs this file as a child process::

    python benchmarks/upstream.py            # prints {"base_url": ...}, then serves JSON-line commands on stdin

Commands (one JSON object per line on stdin, one JSON reply per line on stdout):
``{"cmd": "set", "scripts": {model: script fields | [script fields, ...]}}``, ``{"cmd": "reset"}``,
``{"cmd": "stats"}`` (``stats()`` plus ``connections``: distinct client TCP connections used since the last
reset, ``new_connections``: how many of them were opened since then, and ``cpu_s`` of the server process),
``{"cmd": "records", "model": m, "bodies": bool, "last": n}``, ``{"cmd": "stop"}``.

This module must stay cheap to import (no LiteLLM): the child process imports only aiohttp and the server.
"""

from __future__ import annotations

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


class CountingServer(ScriptedServer):
    """A ScriptedServer that also counts distinct client TCP connections (peer address, port).

    A client that reuses its pooled connections shows few; a client built anew per call shows one per call.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._peers: set[Any] = set()  # since the last reset
        self._ever: set[Any] = set()  # since start: a peer not in it is a newly opened connection
        self._new = 0

    async def _handle_chat(self, request: Any) -> Any:  # the server's own handler, plus the peer
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if peer is not None:
            with self._lock:
                key = tuple(peer)
                self._peers.add(key)
                if key not in self._ever:
                    self._ever.add(key)
                    self._new += 1
        return await super()._handle_chat(request)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._peers.clear()
            self._new = 0

    def connections(self) -> tuple[int, int]:
        """(distinct client connections used, connections opened) since the last reset."""
        with self._lock:
            return len(self._peers), self._new


def _scripts(data: dict[str, Any]) -> dict[str, list[Script]]:
    return {model: [script_from_dict(item) for item in (entry if isinstance(entry, list) else [entry])] for model, entry in data.items()}


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


def _handle(server: CountingServer, command: dict[str, Any]) -> Any:
    cmd = command.get("cmd")
    if cmd == "set":
        for model, queue in _scripts(command["scripts"]).items():
            server.set_script(model, queue)
        return {"ok": True}
    if cmd == "reset":
        server.reset()
        return {"ok": True}
    if cmd == "stats":
        times = os.times()
        used, opened = server.connections()
        return {**server.stats(), "connections": used, "new_connections": opened, "cpu_s": times.user + times.system}
    if cmd == "records":
        return _records(server, command.get("model"), bool(command.get("bodies")), command.get("last"))
    raise ValueError(f"unknown command {cmd!r}")


class Upstream:
    """What the benchmark needs from the scripted upstream, whichever mode it runs in."""

    mode = "?"
    base_url: str
    pid: int

    def set_scripts(self, scripts: dict[str, Any]) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def records(self, model: str | None = None, *, bodies: bool = False, last: int | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadUpstream(Upstream):
    """The server on a daemon thread of the driver process (shares the driver's GIL)."""

    mode = "thread"

    def __init__(self) -> None:
        self.server = CountingServer(default=Script(text="ok")).start()
        self.base_url = self.server.base_url
        self.pid = os.getpid()

    def set_scripts(self, scripts: dict[str, Any]) -> None:
        _handle(self.server, {"cmd": "set", "scripts": scripts})

    def reset(self) -> None:
        self.server.reset()

    def stats(self) -> dict[str, Any]:
        stats = _handle(self.server, {"cmd": "stats"})
        stats["cpu_s"] = None  # shared with the driver; not separable
        return stats

    def records(self, model: str | None = None, *, bodies: bool = False, last: int | None = None) -> list[dict[str, Any]]:
        return _records(self.server, model, bodies, last)

    def close(self) -> None:
        self.server.stop()


class ProcessUpstream(Upstream):
    """The server in a child process (its own interpreter, GIL and event loop), driven over stdin/stdout."""

    mode = "process"

    def __init__(self, startup_timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
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

    def set_scripts(self, scripts: dict[str, Any]) -> None:
        self._call({"cmd": "set", "scripts": scripts})

    def reset(self) -> None:
        self._call({"cmd": "reset"})

    def stats(self) -> dict[str, Any]:
        return self._call({"cmd": "stats"})

    def records(self, model: str | None = None, *, bodies: bool = False, last: int | None = None) -> list[dict[str, Any]]:
        return self._call({"cmd": "records", "model": model, "bodies": bodies, "last": last})

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


def start_upstream(mode: str) -> Upstream:
    """``process`` (default of the benchmark) or ``thread``."""
    return ProcessUpstream() if mode == "process" else ThreadUpstream()


def _serve() -> int:
    server = CountingServer(default=Script(text="ok")).start()
    out = sys.stdout
    out.write(json.dumps({"base_url": server.base_url}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:  # ends when the parent closes stdin (or dies)
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("cmd") == "stop":
                break
            try:
                reply = _handle(server, command)
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
    raise SystemExit(_serve())
