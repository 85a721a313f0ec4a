"""Helpers for server subprocesses on 127.0.0.1: a free port, and stopping a process group for good.

Used by the local llama.cpp server (``litellm_fusion.local``) and by the tests' proxy processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

__all__ = ["free_port", "stop_process_group"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the leader of a process started with ``start_new_session=True``; SIGKILL its group if it
    does not exit within ``grace`` seconds; then SIGKILL whatever of the group is left (orphaned workers).

    SIGTERM goes to the leader only: a parent with workers (uvicorn's ``--num_workers``) stops them itself,
    much faster than when every worker is signalled at once.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
