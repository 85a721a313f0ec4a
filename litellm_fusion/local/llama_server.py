"""How ``llama-server`` (llama.cpp's C++ server) is run for the local models: router mode, parallel slots.

One router process on the public port serves every model under its alias (the preset's model names): it
starts one child ``llama-server`` per model (both loaded at start-up) and forwards each request by its
``model`` field. Each child has :data:`DEFAULT_SLOTS` slots sharing one KV pool (``--kv-unified``) with
continuous batching, so concurrent requests for the same model are decoded together in one batch, and the
two models run side by side: a fusion's panel runs in parallel instead of queueing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["DEFAULT_SLOTS", "CACHE_RAM_MIB", "models_preset", "router_command"]

DEFAULT_SLOTS = 4
"""Parallel slots per model: a 3- to 4-member panel on one model (a self-ensemble) decodes in one batch."""
CACHE_RAM_MIB = 512
"""Per model, the RAM for prompts cached between requests (llama-server's default, 8 GiB, is a lot on a shared machine)."""


def models_preset(models: Mapping[str, Path], *, n_ctx: int, n_threads: int, slots: int = DEFAULT_SLOTS) -> str:
    """The ``--models-preset`` INI: one section per alias, shared settings under ``[*]``.

    ``kv-unified-per-slot`` gives every slot up to ``n_ctx`` tokens of one pool of ``slots * n_ctx`` (the
    same per-request context as llama-cpp-python's ``n_ctx``); ``load-on-startup`` loads both models now,
    not on the first request.
    """
    lines = [
        "version = 1",
        "",
        "[*]",
        f"parallel = {slots}",
        "kv-unified = true",
        f"kv-unified-per-slot = {n_ctx}",
        f"threads = {n_threads}",
        f"threads-batch = {n_threads}",
        f"cache-ram = {CACHE_RAM_MIB}",
        "cont-batching = true",
        "",
    ]
    for alias, path in models.items():
        # INI syntax: a section name or value with ']' or a newline would change the file's meaning.
        if any(c in alias for c in "[]\n\r=;#") or "\n" in str(path):
            raise ValueError(f"model alias {alias!r} or path {str(path)!r} cannot be written to llama-server's INI preset")
        lines += [f"[{alias}]", f"model = {path}", "load-on-startup = true", ""]
    return "\n".join(lines)


def router_command(binary: Path, preset_path: Path, *, host: str, port: int, models: int) -> list[str]:
    """The router's command line: ``llama-server --models-preset <ini>`` on ``host:port``, every model kept loaded."""
    return [
        str(binary),
        "--models-preset",
        str(preset_path),
        "--models-max",
        str(models),
        "--host",
        host,
        "--port",
        str(port),
        "--no-webui",  # not built (-DLLAMA_USE_PREBUILT_UI=OFF); nothing to serve at /
        "--log-colors",
        "off",
    ]
