"""The local models' OpenAI-compatible server as a subprocess: llama.cpp's ``llama-server``, else llama-cpp-python's.

Two backends serve the same aliases at the same base URL:

- ``llama-server`` (built by ``litellm-fusion local build-server``, :mod:`.build`; run as in
  :mod:`.llama_server`): a router process with one child per model, each with parallel slots and continuous
  batching, so a fusion's panel runs in parallel.
- ``llama-cpp-python`` (``python -m llama_cpp.server``), the fallback where llama-server cannot be built: one
  process holds one model in memory at a time (a request for another alias swaps it in, well under a second
  from the page cache) and serves one request after another, so a panel queues on it.

``backend="auto"`` (the default, or ``$LITELLM_FUSION_LOCAL_BACKEND``) picks llama-server when it is built.
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

from litellm_fusion._core.processes import free_port, stop_process_group
from litellm_fusion._spec.local_presets import BASE_ENV, DEFAULT_BASE, DEFAULT_PORT, local_base_url
from litellm_fusion.local import llama_server
from litellm_fusion.local.build import BUILD_HINT, find_llama_server
from litellm_fusion.local.models import INSTALL_HINT, MODELS, SETUP_HINT, LocalModelError, is_verified, model_path

__all__ = [
    "BACKEND_ENV",
    "BACKENDS",
    "LLAMA_CPP_PYTHON",
    "LLAMA_SERVER",
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
    "choose_backend",
    "serving_backend",
]

BACKEND_ENV = "LITELLM_FUSION_LOCAL_BACKEND"
LLAMA_SERVER = "llama-server"
LLAMA_CPP_PYTHON = "llama-cpp-python"
BACKENDS = ("auto", LLAMA_SERVER, LLAMA_CPP_PYTHON)
THREADS_ENV = "LITELLM_FUSION_LOCAL_THREADS"
DEFAULT_N_CTX = 8192
STARTUP_TIMEOUT = 180.0
# What `python -m llama_cpp.server` imports besides llama_cpp (its `server` extra).
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


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


def choose_backend(backend: str | None = None) -> tuple[str, Path | None]:
    """``(backend, llama-server binary or None)`` for ``backend`` (default ``$LITELLM_FUSION_LOCAL_BACKEND``, else ``auto``).

    ``auto`` is llama-server when it is built, else llama-cpp-python's server when installed. Raises
    :class:`LocalModelError` naming the fix when the chosen one (or, for ``auto``, either) is missing.
    """
    chosen = backend or os.environ.get(BACKEND_ENV) or "auto"
    if chosen not in BACKENDS:
        raise LocalModelError(f"unknown local server backend {chosen!r} (--backend or ${BACKEND_ENV}); one of: {', '.join(BACKENDS)}")
    binary = find_llama_server() if chosen != LLAMA_CPP_PYTHON else None
    if chosen == LLAMA_SERVER and binary is None:
        raise LocalModelError(f"llama-server is not built: run `{BUILD_HINT}` (cmake and a C++ compiler, ~10 min on 2 cores)")
    if binary is not None:
        return LLAMA_SERVER, binary
    if chosen == "auto" and not llama_cpp_available():
        raise LocalModelError(
            f"no local server: build llama.cpp's with `{BUILD_HINT}` (or install llama-cpp-python's: `{INSTALL_HINT}`), then `{SETUP_HINT}`"
        )
    if not llama_cpp_available():
        require_llama_cpp()  # raises, naming what is missing
    return LLAMA_CPP_PYTHON, None


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
    """``$LITELLM_FUSION_LOCAL_THREADS``, else every core (per model: with llama-server both models may decode at once)."""
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
    backend: str | None = None
    """``llama-server`` or ``llama-cpp-python`` (None: a server someone else started that answers neither way)."""
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
        """The last ``lines`` lines of the server's log ("" when there is none), for error messages."""
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


def _list_models(base_url: str, timeout: float = 2.0) -> list[dict[str, Any]] | None:
    """The ``/models`` entries of a server at ``base_url``, or None when nothing answers there."""
    import httpx

    try:
        response = httpx.get(base_url + "/models", timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return [m for m in response.json().get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return None


def _get_models(base_url: str, timeout: float = 2.0) -> list[str] | None:
    """The model ids a server at ``base_url`` lists, or None when nothing answers there."""
    listed = _list_models(base_url, timeout)
    return None if listed is None else [str(m.get("id")) for m in listed]


def _backend_of(entries: Sequence[dict[str, Any]]) -> str | None:
    # Each names itself in the OpenAI field: llama-server "llamacpp", llama-cpp-python's server "me".
    owners = {m.get("owned_by") for m in entries}
    return LLAMA_SERVER if owners == {"llamacpp"} else LLAMA_CPP_PYTHON if owners == {"me"} else None


def serving_backend(base_url: str) -> tuple[str | None, list[str]] | None:
    """``(backend, model ids)`` of the server answering at ``base_url``, or None when nothing answers there."""
    listed = _list_models(base_url.rstrip("/"))
    return None if listed is None else (_backend_of(listed), [str(m.get("id")) for m in listed])


def _loaded(entries: Sequence[dict[str, Any]], names: set[str]) -> bool:
    """Every alias in ``names`` listed, and (llama-server's router) loaded, not still loading."""
    by_id = {str(m.get("id")): m for m in entries}
    if not names <= set(by_id):
        return False
    statuses = [by_id[name].get("status") for name in names]
    return all(not isinstance(status, dict) or status.get("value") == "loaded" for status in statuses)


def _failed(entries: Sequence[dict[str, Any]], names: set[str]) -> list[str]:
    return [str(m.get("id")) for m in entries if m.get("id") in names and isinstance(m.get("status"), dict) and m["status"].get("failed")]


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
    backend: str | None = None,
    slots: int = llama_server.DEFAULT_SLOTS,
) -> LocalServer:
    """Start a server for ``models`` and wait until ``/v1/models`` lists them all (loaded).

    ``models``: known names (default: all), GGUF paths, or ``{alias: name-or-path}``. ``port=None`` or 0
    picks a free port. ``backend``: see :func:`choose_backend`; ``slots``: parallel requests per model
    (llama-server only). ``n_ctx`` is the context of one request. Raises :class:`LocalModelError` naming
    the fix when the server or a model is missing, the port is taken, or the server does not come up
    (with the tail of its log).
    """
    kind, binary = choose_backend(backend)
    resolved = resolve_models(models, cache_dir)
    port = port or free_port()
    if _port_in_use(host, port):
        raise LocalModelError(f"port {port} on {host} is already in use; pick another (--port, or ${BASE_ENV} for the preset)")
    workdir = tempfile.TemporaryDirectory(prefix="litellm-fusion-llama-")
    threads = n_threads or default_threads()
    if binary is not None:
        config_path = Path(workdir.name) / "models.ini"
        config_path.write_text(llama_server.models_preset(resolved, n_ctx=n_ctx, n_threads=threads, slots=slots))
        command = llama_server.router_command(binary, config_path, host=host, port=port, models=len(resolved))
    else:
        config_path = Path(workdir.name) / "llama-server.json"
        config_path.write_text(json.dumps(server_config(resolved, host=host, port=port, n_ctx=n_ctx, n_threads=threads), indent=1))
        command = [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_path)]
    log = Path(log_path) if log_path else Path(workdir.name) / "llama-server.log"
    env = server_env()
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    # The temp dir (config, default log) goes with stop(); a caller-chosen log_path outlives the server.
    server = LocalServer(
        base_url=f"http://{host}:{port}/v1",
        models=resolved,
        backend=kind,
        process=process,
        log_path=log,
        config_path=config_path,
        _workdir=workdir,
    )
    deadline = time.monotonic() + startup_timeout
    names = set(resolved)
    while True:
        listed = _list_models(server.base_url)
        if listed is not None and _loaded(listed, names):
            server.started_in = time.perf_counter() - started
            return server
        failed = _failed(listed or [], names)
        if failed or process.poll() is not None or time.monotonic() > deadline:
            why = (
                f"could not load {', '.join(failed)}"
                if failed
                else f"exited with code {process.returncode}"
                if process.poll() is not None
                else f"did not answer within {startup_timeout:.0f} s"
            )
            tail = server.log_tail()
            server.stop()
            raise LocalModelError(f"the {kind} server on {host}:{port} {why}; its log ends:\n{tail}")
        time.sleep(0.25)


def serving(base_url: str, names: Sequence[str]) -> bool:
    """True when a server at ``base_url`` already lists every alias in ``names``."""
    listed = _get_models(base_url.rstrip("/"))
    return listed is not None and set(names) <= set(listed)


@contextlib.contextmanager
def running_local_server(
    base_url: str | None = None, *, cache_dir: Any = None, n_ctx: int = DEFAULT_N_CTX, backend: str | None = None
) -> Iterator[LocalServer]:
    """The local models' server at ``base_url`` (default :func:`local_base_url`) for the duration of a block.

    A server already answering there with both models is reused and left running (its ``backend`` as it
    names itself); otherwise one is started on that host and port (:func:`serve`) and stopped on exit.
    """
    base = (base_url or local_base_url()).rstrip("/")
    names = list(MODELS)
    found = serving_backend(base)
    if found is not None and set(names) <= set(found[1]):
        yield LocalServer(base_url=base, models={n: model_path(n, cache_dir) for n in names}, backend=found[0])
        return
    parts = urlsplit(base)
    server = serve(
        names, host=parts.hostname or "127.0.0.1", port=parts.port or DEFAULT_PORT, n_ctx=n_ctx, cache_dir=cache_dir, backend=backend
    )
    try:
        yield server
    finally:
        server.stop()
