"""The fleet tier's infrastructure: Postgres through the litellm-db kit, a private Redis, ports, SQL.

The kit (``../shared/tools/litellm-db`` beside the checkout, or ``$LITELLM_DB_KIT``) sets up Postgres and a
stand-in for Prisma's query engine, which these machines cannot download; where the real engines can be
downloaded the kit's README says how to use them instead. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from litellm_fusion._core.processes import stop_process_group

__all__ = ["find_kit", "Database", "database", "redis_server", "low_port"]

REPO = Path(__file__).resolve().parent.parent


def find_kit() -> Path:
    """The litellm-db kit: ``$LITELLM_DB_KIT``, else ``shared/tools/litellm-db`` beside the checkout or an ancestor."""
    if os.environ.get("LITELLM_DB_KIT"):
        return Path(os.environ["LITELLM_DB_KIT"])
    for parent in REPO.parents:
        candidate = parent / "shared" / "tools" / "litellm-db"
        if (candidate / "pg.sh").exists():
            return candidate
    pytest.skip("fleet tier: the litellm-db kit is missing (../shared/tools/litellm-db beside the checkout, or set LITELLM_DB_KIT)")


def low_port() -> int:
    """A free port below the ephemeral range.

    prisma-client-py picks its query engine's port with bind(0) while the proxy starts, so a proxy port taken
    from the ephemeral range (what bind(0) hands out) can be stolen before uvicorn binds it.
    """
    for _ in range(200):
        port = random.randrange(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def _run(command: list[str], what: str, timeout: float = 900) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


@dataclass
class Database:
    """The running Postgres: its URL, the environment a proxy needs, and a psql helper."""

    url: str
    env: dict[str, str]

    def query(self, sql: str) -> list[list[str]]:
        """Rows of ``sql`` (psql, unaligned, tab-separated)."""
        out = _run(["psql", self.url, "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql], f"psql {sql[:60]}", timeout=60)
        return [line.split("\t") for line in out.splitlines() if line]


def _postgres_installed() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/postgres"))


def _state_dir(venv: Path) -> Path:
    """The kit's state for ``venv``, under the system temp dir: Postgres runs as its own user, which cannot
    reach a checkout inside a private directory (``mktemp -d`` makes one 0700, ``/root`` is one)."""
    state = Path(tempfile.gettempdir()) / f"litellm-fusion-db-{hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:12]}"
    state.mkdir(exist_ok=True)
    state.chmod(0o755)
    return state


@contextlib.contextmanager
def database(venv: Path) -> Iterator[Database]:
    """Set up the kit for ``venv`` (idempotent), start its Postgres, yield it, and stop it if this started it."""
    kit = find_kit()
    if not _postgres_installed() and os.geteuid() != 0:
        pytest.skip("fleet tier: Postgres is not installed (apt-get install postgresql) and this user cannot install it")
    state = _state_dir(venv)
    _run(["bash", str(kit / "setup.sh"), str(venv), str(state)], "litellm-db setup.sh")
    was_running = subprocess.run(["bash", str(kit / "pg.sh"), "status", str(state)], capture_output=True).returncode == 0
    try:
        _run(["bash", str(kit / "pg.sh"), "start", str(state)], "litellm-db pg.sh start")
    except RuntimeError as exc:
        if not _postgres_installed():
            pytest.skip(f"fleet tier: Postgres could not be installed: {exc}")
        raise
    url = _run(["bash", str(kit / "pg.sh"), "url", str(state)], "pg.sh url").strip()
    env = {}
    for line in (state / "env.sh").read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            env[name] = value.strip("'\"")
    env["DATABASE_URL"] = url
    try:
        yield Database(url=url, env=env)
    finally:
        if not was_running:
            subprocess.run(["bash", str(kit / "pg.sh"), "stop", str(state)], capture_output=True, timeout=120)


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A private, memory-only ``redis-server`` on 127.0.0.1; yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("fleet tier: redis-server is not installed (apt-get install redis-server; .ci/run does)")
    port = low_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not come up on port {port} (exit {process.poll()})")
            time.sleep(0.1)
        yield port
    finally:
        stop_process_group(process)
