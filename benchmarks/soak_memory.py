"""What the soak reads from the driver process: tracemalloc growth and its owners, and cheap process counters."""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import sys
import tracemalloc
from typing import Any

__all__ = ["MB", "open_fds", "growth_sites", "snapshot_filters", "counters", "allocated_at", "short_path"]

MB = 1024 * 1024


def open_fds() -> int:
    """Open file descriptors of this process."""
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


def short_path(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def snapshot_filters(mode: str) -> list[tracemalloc.Filter]:
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
                "site": f"{short_path(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?",
                "traceback": [f"{short_path(f.filename)}:{f.lineno}" for f in reversed(frames)],  # most recent first
            }
        )
    return sites, dict(by_owner.most_common())


def _client_cache_size() -> int | None:
    import litellm

    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    return len(getattr(cache, "cache_dict", {})) if cache is not None else None


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def counters() -> dict[str, Any]:
    """The cheap process-wide counters read after every batch (after ``gc.collect()``)."""
    return {
        "tasks": len(asyncio.all_tasks()),
        "fds": open_fds(),
        "gc_objects": len(gc.get_objects()),
        "blocks": sys.getallocatedblocks(),
        "rss": _rss_bytes(),
        "client_cache": _client_cache_size(),
    }


def allocated_at(obj: object) -> str | None:
    """Where tracemalloc saw ``obj`` allocated (most recent frame first), if it was tracing then and now."""
    if obj is None or not tracemalloc.is_tracing():
        return None
    traceback = tracemalloc.get_object_traceback(obj)
    if traceback is None:
        return None
    return " <- ".join(f"{short_path(frame.filename)}:{frame.lineno}" for frame in reversed(list(traceback)[-4:]))
