"""A real ``litellm`` proxy process for the proxy-throughput measurement, and the CPU accounting of processes.

The proxy runs in its own process group and is stopped with ``litellm_fusion._core.processes``, so that
teardown reaches every process it forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import yaml

from benchmarks.scenario import JUDGE, KEY, PANEL
from litellm_fusion._core.processes import free_port, stop_process_group

__all__ = ["ProxyProcess", "proc_cpu_seconds", "group_pids"]


def _proxy_env(master_key: str) -> dict[str, str]:
    """The driver's environment without provider keys, proxies or LiteLLM settings, plus the proxy's own."""
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


class ProxyProcess:
    """A real ``litellm --config ... --host 127.0.0.1 --port N`` process (one worker), in its own process group.

    Its model_list has solo models on the scripted upstream and a fusion deployment whose members are those
    model names (so nested calls go through the proxy's Router). It starts on construction; :meth:`wait_live`
    waits for it.
    """

    def __init__(self, base_url: str, startup_timeout: float) -> None:
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
        self.startup_timeout = startup_timeout
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

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by every process of the proxy's group."""
        return proc_cpu_seconds(group_pids(self.process.pid))

    def stop(self) -> None:
        stop_process_group(self.process)

    def log_error_lines(self) -> int:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return sum(1 for line in text.splitlines() if "ERROR" in line or "Traceback" in line)


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
