"""Helpers for the proxy end-to-end tests: free ports, a real ``litellm`` proxy process, scripted answers.

``start_proxy(config)`` writes the config (and any extra files, such as a callback module) into a fresh
directory, launches the venv's ``litellm`` console script on 127.0.0.1, waits for
``/health/liveliness`` and yields a :class:`Proxy`; on exit it terminates the whole process group and
waits for it. A proxy that does not come up raises with the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from litellm_fusion._core.processes import free_port, stop_process_group
from litellm_fusion.testing import answer_blocks, scripted_analysis, stage_of

__all__ = [
    "Proxy",
    "free_port",
    "start_proxy",
    "launch_proxy",
    "LITELLM_BIN",
    "responder",
    "SPEND_PROBE_SOURCE",
    "read_jsonl",
]

LITELLM_BIN = Path(sys.executable).parent / "litellm"
STARTUP_TIMEOUT = 90.0


@dataclass
class Proxy:
    """A ``litellm`` proxy process: :meth:`launch` starts it, :meth:`wait_live` waits for it, :meth:`stop` ends it."""

    command: list[str]
    config_path: Path
    workdir: Path
    master_key: str
    env: dict[str, str] = field(repr=False, default_factory=dict)
    startup_timeout: float = STARTUP_TIMEOUT
    pick_port: Callable[[], int] = free_port
    """Where the next launch listens (a DB-backed proxy needs one below the ephemeral range: litellm-db's README)."""
    base_url: str = ""
    log_path: Path = Path()
    process: subprocess.Popen[bytes] | None = None
    _live: bool = False

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def launch(self) -> Proxy:
        """Start the process on a fresh port (does not wait for it)."""
        port = self.pick_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = self.workdir / f"proxy-{port}.log"
        command = [*self.command, "--port", str(port)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches every worker
            )
        self._live = False
        return self

    def wait_live(self) -> Proxy:
        """Block until ``/health/liveliness`` answers; on failure stop it and raise with the log's tail.

        A port taken between :func:`free_port` and the bind gets one relaunch on another port.
        """
        if self._live:
            return self
        assert self.process is not None, "launch() first"
        for attempt in range(2):
            problem = _wait_live(self.base_url, self.process, self.startup_timeout)
            if problem is None:
                self._live = True
                return self
            message = f"litellm proxy at {self.base_url} {problem}; log {self.log_path}; last lines:\n{self.log_tail(60)}"
            self.stop()
            if attempt == 0 and "address already in use" in self.log_text().lower():
                self.launch()
                continue
            print(message, file=sys.stderr)
            raise RuntimeError(message)
        raise AssertionError("unreachable")

    def terminate(self) -> None:
        """Send SIGTERM to the proxy without waiting (then :meth:`stop` to reap it and any straggler)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        """Terminate the proxy and every worker it forked, then reap it. Idempotent."""
        if self.process is not None:
            stop_process_group(self.process)
        self._live = False

    def log_text(self) -> str:
        """Everything the proxy wrote so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def client(self, **kwargs: Any) -> Any:
        """An ``openai.OpenAI`` client for this proxy with the master key (no SDK retries)."""
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 60.0)
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.master_key, **kwargs)

    def http(self, **kwargs: Any) -> httpx.Client:
        """A raw httpx client with the master key, for status codes, headers and bodies as sent."""
        kwargs.setdefault("timeout", 60.0)
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.master_key}"}, trust_env=False, **kwargs)


def _proxy_env(master_key: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # Never let a developer's real provider keys or proxy settings leak into the test proxy.
    for name in list(env):
        if name.upper() in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"} or name.upper().endswith("_API_KEY"):
            env.pop(name)
        elif name.startswith(("LITELLM_", "DATABASE_URL", "REDIS_")):
            env.pop(name)
    env.update(
        {
            "LITELLM_MASTER_KEY": master_key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOG": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def _wait_live(base_url: str, process: subprocess.Popen[bytes], timeout: float) -> str | None:
    """None once the proxy answers liveliness; otherwise why it did not."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"exited with code {process.returncode}"
            try:
                if http.get(base_url + "/health/liveliness").status_code == 200:
                    return None
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    return f"not live after {timeout:.0f}s"


def launch_proxy(
    config: Mapping[str, Any],
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    master_key: str | None = None,
    pick_port: Callable[[], int] = free_port,
) -> Proxy:
    """Write ``config`` (a dict) as YAML, plus ``files`` next to it, and start ``litellm --config`` on it.

    Returns at once; call :meth:`Proxy.wait_live` before use and :meth:`Proxy.stop` after (or use
    :func:`start_proxy`). Starting several proxies before waiting for any overlaps their slow startups.

    Args:
        config: the proxy config.
        workers: ``--num_workers``.
        env: extra environment variables for the proxy.
        files: extra files (name -> text) written next to the config, e.g. a callback module.
        workdir: where the config, files and log go (a fresh temp dir by default).
        master_key: the proxy's master key (a fresh random one by default; a fleet shares one).
        pick_port: chooses the port of each launch.
    """
    directory = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="litellm-e2e-"))
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (directory / name).write_text(text, encoding="utf-8")
    config_path = directory / "config.yaml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    master_key = master_key or f"sk-test-{secrets.token_hex(16)}"
    command = [str(LITELLM_BIN), "--config", str(config_path), "--host", "127.0.0.1"]
    if workers != 1:
        # uvicorn pings each worker and restarts any that does not answer within 5 s by default; a
        # worker still importing LiteLLM misses that on a small machine and is restarted forever.
        command += ["--num_workers", str(workers), "--timeout_worker_healthcheck", str(int(startup_timeout))]
    proxy = Proxy(
        command=command,
        config_path=config_path,
        workdir=directory,
        master_key=master_key,
        env=_proxy_env(master_key, env),
        startup_timeout=startup_timeout,
        pick_port=pick_port,
    )
    return proxy.launch()


@contextlib.contextmanager
def start_proxy(config: Mapping[str, Any], **kwargs: Any) -> Iterator[Proxy]:
    """:func:`launch_proxy`, wait until it is live, yield it, and stop it (always)."""
    proxy = launch_proxy(config, **kwargs)
    try:
        yield proxy.wait_live()
    finally:
        proxy.stop()


# ----- scripted answers ------------------------------------------------------------------------------


def responder(panel_text: str, synth_text: str):  # noqa: ANN201 - a Script.text callable
    """Script text for a model that may be asked as a panel member, the judge (or its repair) or the synthesizer."""

    def text(body: dict[str, Any]) -> str:
        stage = stage_of(body)
        if stage in ("judge", "repair"):
            return scripted_analysis(answer_blocks(body))
        return synth_text if stage == "synthesizer" else panel_text

    return text


SPEND_PROBE_SOURCE = '''\
"""Written by the e2e tests: logs every success and failure LiteLLM reports, as JSON lines."""
import json
import os
import threading

from litellm.integrations.custom_logger import CustomLogger

_LOCK = threading.Lock()


def _metadata(kwargs):
    params = kwargs.get("litellm_params") or {}
    meta = dict(params.get("metadata") or {})
    meta.update(params.get("litellm_metadata") or {})
    return meta


class SpendProbe(CustomLogger):
    def _write(self, kind, kwargs):
        meta = _metadata(kwargs)
        slp = kwargs.get("standard_logging_object") or {}
        row = {
            "kind": kind,
            "pid": os.getpid(),
            "model": kwargs.get("model"),
            "provider": kwargs.get("custom_llm_provider"),
            "response_cost": kwargs.get("response_cost"),
            "slo_cost": slp.get("response_cost") if isinstance(slp, dict) else None,
            "stream": bool(kwargs.get("stream")),
            "user_api_key_hash": meta.get("user_api_key_hash"),
            "user_api_key": meta.get("user_api_key"),
            "model_group": meta.get("model_group"),
        }
        with _LOCK, open(os.environ["SPEND_PROBE_FILE"], "a", encoding="utf-8") as out:
            out.write(json.dumps(row, default=str) + "\\n")

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._write("success", kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._write("failure", kwargs)


probe = SpendProbe()


def _count_handler_calls():
    """Wrap the fusion handler's entry points (on the instance, not the package) to log each invocation."""
    import litellm_fusion

    handler = litellm_fusion.fusion_llm
    acompletion, astreaming = handler.acompletion, handler.astreaming

    def row(kwargs, stream):
        with _LOCK, open(os.environ["SPEND_PROBE_FILE"], "a", encoding="utf-8") as out:
            out.write(json.dumps({"kind": "handler", "pid": os.getpid(), "model": kwargs.get("model"), "stream": stream}) + "\\n")

    async def counted_acompletion(*args, **kwargs):
        row(kwargs, False)
        return await acompletion(*args, **kwargs)

    async def counted_astreaming(*args, **kwargs):
        row(kwargs, True)
        async for chunk in astreaming(*args, **kwargs):
            yield chunk

    handler.acompletion = counted_acompletion
    handler.astreaming = counted_astreaming


_count_handler_calls()
'''
"""A callback module for the proxy config (``callbacks: ["spend_probe.probe"]``).

It appends one JSON line per LiteLLM success/failure event (``kind``, ``model``, ``provider``,
``response_cost``, the key metadata) and one ``kind: "handler"`` line per invocation of the fusion
handler, to the file named by ``$SPEND_PROBE_FILE``.
"""


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (none if it does not exist yet)."""
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
