"""Sync callers of async code: one long-lived event loop on a daemon thread, shared by every sync entry point.

LiteLLM caches its async HTTP clients per event loop, so a fresh ``asyncio.run`` per call would strand them
(and their connections); the provider's ``completion``/``streaming`` and ``run_eval`` all run on this loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["run_sync", "iterate_sync"]

T = TypeVar("T")


class _LoopThread:
    """The loop and its thread, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="litellm-fusion-sync", daemon=True).start()
            return self._loop


_LOOP = _LoopThread()


async def _in_context(coro: Coroutine[Any, Any, T], context: contextvars.Context) -> T:
    return await asyncio.get_running_loop().create_task(coro, context=context)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the shared loop and block until it returns (or raises)."""
    # Under the caller's context, so a `progress.listening` block around a sync call reaches the handler.
    return asyncio.run_coroutine_threadsafe(_in_context(coro, contextvars.copy_context()), _LOOP.loop()).result()


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from sync code, one item per round trip to the shared loop.

    The iterator is closed on the loop however iteration ends (exhausted, an error, or the consumer stopping).
    """
    try:
        while True:
            try:
                yield run_sync(agen.__anext__())  # type: ignore[arg-type]
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            run_sync(aclose())
