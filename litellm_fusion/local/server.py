"""llama-cpp-python's OpenAI-compatible server as a subprocess serving the local models.

One server process holds one model in memory at a time: a request for another alias unloads the current
model and loads the other (mmap'd, well under a second from the page cache), and requests are served one
after another. So a fusion's panel runs in series on it, which is why the ``local`` preset waits for
every member (``straggler_grace: null``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..processes import free_port, stop_process_group
from .models import INSTALL_HINT, MODELS, SETUP_HINT, LocalModelError, is_verified, model_path

__all__ = [
    "BASE_ENV",
    "THREADS_ENV",
    "default_threads",
    "server_env",
    "DEFAULT_BASE",
    "DEFAULT_PORT",
    "DEFAULT_N_CTX",
    "LocalServer",
    "local_base_url",
    "llama_cpp_available",
    "require_llama_cpp",
    "resolve_models",
    "serve",
    "server_config",
    "free_port",
]

BASE_ENV = "LITELLM_FUSION_LOCAL_BASE"
THREADS_ENV = "LITELLM_FUSION_LOCAL_THREADS"
DEFAULT_PORT = 8765
DEFAULT_BASE = f"http://127.0.0.1:{DEFAULT_PORT}/v1"
DEFAULT_N_CTX = 8192
STARTUP_TIMEOUT = 180.0
# What `python -m llama_cpp.server` imports besides llama_cpp (its `server` extra).
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


def local_base_url() -> str:
    """The local server's OpenAI base URL: ``$LITELLM_FUSION_LOCAL_BASE``, else ``http://127.0.0.1:8765/v1``."""
    return (os.environ.get(BASE_ENV) or DEFAULT_BASE).rstrip("/")


def llama_cpp_available() -> bool:
    """True when llama-cpp-python and its server extra are importable in this Python (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in _SERVER_MODULES)


def require_llama_cpp() -> None:
    """Raise :class:`LocalModelError` naming the fix when llama-cpp-python[server] is missing."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalModelError(
            f"llama-cpp-python with its server extra is not installed in {sys.executable} (missing: {', '.join(missing)}): "
            f"run `{INSTALL_HINT}` (it builds llama.cpp from source, a few minutes on 2 cores), then `{SETUP_HINT}`"
        )


def resolve_models(models: Mapping[str, str | os.PathLike[str]] | Sequence[str] | None = None, cache_dir: Any = None) -> dict[str, Path]:
    """``{alias: gguf path}`` from known model names, GGUF paths (alias: the file's stem) or an explicit mapping.

    Known names must be set up and verified in the cache; any path must exist.
    """
    if models is None:
        models = list(MODELS)
    pairs: list[tuple[str, Path | None, str]] = []  # (alias, path, name-or-path as given)
    items = models.items() if isinstance(models, Mapping) else ((None, m) for m in models)
    for alias, given in items:
        text = str(given)
        if text in MODELS:
            pairs.append((alias or text, None, text))
        else:
            path = Path(text).expanduser()
            pairs.append((alias or path.stem, path, text))
    resolved: dict[str, Path] = {}
    missing: list[str] = []
    for alias, path, given in pairs:
        if path is None:
            if not is_verified(given, cache_dir):
                missing.append(given)
            path = model_path(given, cache_dir)
        elif not path.is_file():
            raise LocalModelError(f"GGUF file not found: {path} (known model names: {', '.join(MODELS)})")
        if alias in resolved:
            raise LocalModelError(f"two models under the alias '{alias}'; give them distinct aliases (alias=path)")
        resolved[alias] = path.resolve()
    if missing:
        raise LocalModelError(
            f"local model(s) {', '.join(missing)} not set up in {model_path(missing[0], cache_dir).parent}: run `{SETUP_HINT}`"
        )
    return resolved


def default_threads() -> int:
    """``$LITELLM_FUSION_LOCAL_THREADS``, else every core (the server runs one generation at a time)."""
    value = os.environ.get(THREADS_ENV)
    return max(1, int(value)) if value else max(1, os.cpu_count() or 1)


def server_env() -> dict[str, str]:
    """The server's environment: ours, with OpenMP's worker threads sleeping instead of spinning at barriers.

    llama.cpp's CPU backend is built with OpenMP, whose workers spin-wait by default: on a machine with any
    other load a descheduled worker stalls the rest at every barrier. Measured here on 2 cores with another
    process busy: generation with 2 threads at 1.0-1.2 tok/s spinning, 6.4 tok/s with
    ``OMP_WAIT_POLICY=PASSIVE`` (1 thread: 5.3). A value set by the caller is kept.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for name in ("CONFIG_FILE", "HOST", "PORT"):  # llama_cpp.server prefers these over its --config_file
        env.pop(name, None)
    return env


def server_config(
    models: Mapping[str, Path], *, host: str, port: int, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None
) -> dict[str, Any]:
    """The ``--config_file`` JSON of ``python -m llama_cpp.server`` (llama-cpp-python 0.3.x ``ConfigFileSettings``)."""
    threads = n_threads or default_threads()
    return {
        "host": host,
        "port": port,
        # By default a new request cuts short a stream in progress (a fusion overlaps calls): never.
        "interrupt_requests": False,
        "models": [
            {
                "model": str(path),
                "model_alias": alias,
                "n_ctx": n_ctx,
                "n_threads": threads,
                "n_threads_batch": threads,
                # The server's default (True) computes and keeps logits for every prompt token: ~5 GB for
                # Qwen's 152k vocabulary at n_ctx 8192, and a slower prompt. Only prompt logprobs need it.
                "logits_all": False,
                "verbose": False,
            }
            for alias, path in models.items()
        ],
    }


@dataclass
class LocalServer:
    """A running llama.cpp OpenAI-compatible server. ``base_url`` ends in ``/v1``; :meth:`stop` ends it.

    ``process`` is None when this handle points at a server someone else started (it is left running).
    """

    base_url: str
    models: dict[str, Path]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    config_path: Path | None = None
    started_in: float = 0.0
    """Seconds from launch until ``/v1/models`` answered."""
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def stop(self, grace: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL to its process group) and remove its files. Idempotent."""
        process, self.process = self.process, None
        if process is not None:
            stop_process_group(process, grace)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _get_models(base_url: str, timeout: float = 2.0) -> list[str] | None:
    """The model ids a server at ``base_url`` lists, or None when nothing answers there."""
    import httpx

    try:
        response = httpx.get(base_url + "/models", timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return [str(m.get("id")) for m in response.json().get("data", [])]
    except (ValueError, AttributeError):
        return None


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def serve(
    models: Mapping[str, str | os.PathLike[str]] | Sequence[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = DEFAULT_PORT,
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int | None = None,
    cache_dir: Any = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    log_path: str | os.PathLike[str] | None = None,
) -> LocalServer:
    """Start ``python -m llama_cpp.server`` for ``models`` and wait until ``/v1/models`` answers.

    ``models``: known names (default: all), GGUF paths, or ``{alias: name-or-path}``. ``port=None`` or 0
    picks a free port. Raises :class:`LocalModelError` naming the fix when llama-cpp-python or a model is
    missing, the port is taken, or the server does not come up (with the tail of its log).
    """
    require_llama_cpp()
    resolved = resolve_models(models, cache_dir)
    port = port or free_port()
    if _port_in_use(host, port):
        raise LocalModelError(f"port {port} on {host} is already in use; pick another (--port, or ${BASE_ENV} for the preset)")
    workdir = tempfile.TemporaryDirectory(prefix="litellm-fusion-llama-")
    config_path = Path(workdir.name) / "llama-server.json"
    config_path.write_text(json.dumps(server_config(resolved, host=host, port=port, n_ctx=n_ctx, n_threads=n_threads), indent=1))
    log = Path(log_path) if log_path else Path(workdir.name) / "llama-server.log"
    env = server_env()
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    # The temp dir (config, default log) goes with stop(); a caller-chosen log_path outlives the server.
    server = LocalServer(
        base_url=f"http://{host}:{port}/v1", models=resolved, process=process, log_path=log, config_path=config_path, _workdir=workdir
    )
    deadline = time.monotonic() + startup_timeout
    while True:
        listed = _get_models(server.base_url)
        if listed is not None and set(resolved) <= set(listed):
            server.started_in = time.perf_counter() - started
            return server
        if process.poll() is not None or time.monotonic() > deadline:
            why = (
                f"exited with code {process.returncode}" if process.poll() is not None else f"did not answer within {startup_timeout:.0f} s"
            )
            tail = server.log_tail()
            server.stop()
            raise LocalModelError(f"the llama.cpp server on {host}:{port} {why}; its log ends:\n{tail}")
        time.sleep(0.25)


def serving(base_url: str, names: Sequence[str]) -> bool:
    """True when a server at ``base_url`` already lists every alias in ``names``."""
    listed = _get_models(base_url.rstrip("/"))
    return listed is not None and set(names) <= set(listed)


@contextlib.contextmanager
def running_local_server(base_url: str | None = None, *, cache_dir: Any = None, n_ctx: int = DEFAULT_N_CTX) -> Iterator[LocalServer]:
    """The local models' server at ``base_url`` (default :func:`local_base_url`) for the duration of a block.

    A server already answering there with both models is reused and left running; otherwise one is started
    on that host and port and stopped on exit.
    """
    base = (base_url or local_base_url()).rstrip("/")
    names = list(MODELS)
    if serving(base, names):
        yield LocalServer(base_url=base, models={n: model_path(n, cache_dir) for n in names})
        return
    parts = urlsplit(base)
    server = serve(names, host=parts.hostname or "127.0.0.1", port=parts.port or DEFAULT_PORT, n_ctx=n_ctx, cache_dir=cache_dir)
    try:
        yield server
    finally:
        server.stop()
