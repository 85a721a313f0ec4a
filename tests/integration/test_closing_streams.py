"""A stream the caller stops reading closes the synthesizer's upstream connection itself, not through the GC.

Each test runs as if dropped async generators were finalized only by a garbage collector that is off (PyPy
with ``gc.disable()``): the cyclic GC is off, and the event loop's finalizer hook, through which CPython's
reference counting closes a dropped generator, parks the generator instead of closing it. A generator that
was dropped rather than closed then keeps its upstream request open, and the scripted server still sees the
synthesizer's request in flight. With every stream closed explicitly, the server sees the client hang up.
The close tests failed before the streams were closed explicitly; the cancellation one passed already (a
cancelled read unwinds through every generator's own ``finally``) and guards that path.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import litellm
import pytest
from conftest import SYNTH_MODEL, upstream

from litellm_fusion.testing import Script, ScriptedServer

SYNTH = upstream(SYNTH_MODEL)
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
SLOW_SYNTH = Script(text="Paris is the capital of France. " * 40, chunk_chars=8, chunk_delay=0.05)
"""About 160 chunks at 50 ms each: still streaming for seconds after the caller's first chunk."""


@pytest.fixture(autouse=True)
def _registered(fusion_registered):
    yield fusion_registered


@contextlib.asynccontextmanager
async def only_explicit_closes() -> AsyncIterator[list[Any]]:
    """The GC off, and every async generator dropped unclosed parked (yielded as a list) instead of closed.

    Entered inside the test's coroutine: the loop installs its own hooks when it starts running, and they
    must be back before the test returns control to it. The parked generators are closed on exit.
    """
    parked: list[Any] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    # A generator takes its finalizer when first iterated: only those started inside the block are parked.
    hooks = await _park_dropped_generators(parked)
    try:
        yield parked
    finally:
        if gc_was_enabled:
            gc.enable()
        await _restore_and_close(hooks, parked)


async def poll(predicate: Callable[[], bool], timeout: float) -> bool:
    """True as soon as ``predicate()`` holds; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def synthesizer_hung_up(server: ScriptedServer) -> bool:
    """The synthesizer's one request ended with the client gone, and nothing is in flight."""
    records = server.requests_for(SYNTH)
    return len(records) == 1 and records[0].ended_at is not None and records[0].disconnected and server.stats()["in_flight"] == 0


async def open_stream(spec: dict[str, Any]) -> Any:
    return await litellm.acompletion(
        model="fusion/closing", messages=MESSAGES, fusion=spec, stream=True, stream_options={"include_usage": True}
    )


async def first_content(stream: Any) -> str:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            return chunk.choices[0].delta.content
    raise AssertionError("the stream ended before any content")


async def _park_dropped_generators(parked: list[Any]) -> Any:
    """On the running loop's thread: park dropped generators in ``parked``; returns the hooks to restore."""
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=parked.append)
    return hooks


async def _restore_and_close(hooks: Any, parked: list[Any]) -> None:
    sys.set_asyncgen_hooks(*hooks)
    for agen in parked:
        await agen.aclose()


async def test_closing_the_stream_after_one_chunk_closes_the_synthesizers_connection(upstream_server, spec):
    upstream_server.set_script(SYNTH, SLOW_SYNTH)
    async with only_explicit_closes() as parked:
        stream = await open_stream(spec)
        assert await first_content(stream)
        await stream.aclose()

        closed = await poll(lambda: synthesizer_hung_up(upstream_server), 2.0)
        assert closed, (upstream_server.requests_for(SYNTH), upstream_server.stats(), parked)


async def test_cancelling_the_reader_closes_the_synthesizers_connection(upstream_server, spec):
    upstream_server.set_script(SYNTH, SLOW_SYNTH)
    first = asyncio.Event()

    async def read_all() -> None:
        stream = await open_stream(spec)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first.set()

    async with only_explicit_closes() as parked:
        reader = asyncio.create_task(read_all())
        await asyncio.wait_for(first.wait(), 10.0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader

        closed = await poll(lambda: synthesizer_hung_up(upstream_server), 2.0)
        assert closed, (upstream_server.requests_for(SYNTH), upstream_server.stats(), parked)


def test_closing_a_sync_stream_after_one_chunk_closes_the_synthesizers_connection(upstream_server, spec):
    from litellm_fusion._host.sync import run_sync  # on the sync entry points' loop thread, where the stream runs

    upstream_server.set_script(SYNTH, SLOW_SYNTH)
    parked: list[Any] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    hooks = run_sync(_park_dropped_generators(parked))  # asyncgen hooks are per thread: set them on the loop's
    try:
        stream = litellm.completion(model="fusion/closing", messages=MESSAGES, fusion=spec, stream=True)
        assert next(c for c in stream if c.choices and c.choices[0].delta.content)
        stream.close()

        deadline = time.monotonic() + 2.0
        while not synthesizer_hung_up(upstream_server) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert synthesizer_hung_up(upstream_server), (upstream_server.requests_for(SYNTH), upstream_server.stats(), parked)
    finally:
        if gc_was_enabled:
            gc.enable()
        run_sync(_restore_and_close(hooks, parked))
