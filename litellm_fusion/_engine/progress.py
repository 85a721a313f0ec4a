"""Progress events of one fusion call, as they happen: typed records, the emitter and how they are delivered.

The engine (panel, web tools, judge, pipeline) emits frozen events through a :class:`Progress` it is
given; what becomes of them is the caller's business: the host adapter turns them into
``delta.reasoning_content`` chunks of a stream (their text is :mod:`~litellm_fusion._engine.progress_text`),
the CLI into a live board, and an SDK caller can watch them with :func:`listening`. Every event carries
``at_ms``, its offset from the start of the fusion call; events about a finished nested call also carry
``started_ms`` and ``latency_ms``, so a timeline of every call can be drawn from the events alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ProgressEvent",
    "FusionStarted",
    "MemberStarted",
    "MemberAnswered",
    "MemberFailed",
    "MemberDropped",
    "WebToolCalled",
    "PanelAgreed",
    "JudgeStarted",
    "JudgeFinished",
    "SynthesizerStarted",
    "SynthesizerFinished",
    "CallFinished",
    "ProgressFn",
    "Progress",
    "listening",
    "current_listener",
    "interleaved",
    "drained",
]


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """Something that happened in a fusion call."""

    at_ms: float
    """Milliseconds since the fusion call started."""


@dataclass(frozen=True, kw_only=True)
class FusionStarted(ProgressEvent):
    """The request was validated; the panel is about to be asked."""

    name: str
    """The preset or deployment, as in ``fusion/<name>``."""
    panel: tuple[str, ...]
    judge: str
    synthesizer: str
    quorum: int
    invocation: str = "always"
    """``always`` (the panel runs), ``auto`` / ``required`` (the writer decides first, or writes the panel's
    question), or ``single`` (inside another fusion: the writer answers alone)."""


@dataclass(frozen=True, kw_only=True)
class MemberStarted(ProgressEvent):
    """A panel member was asked (its call starts at ``at_ms``)."""

    index: int
    """Position in the spec's panel."""
    model: str


@dataclass(frozen=True, kw_only=True)
class MemberAnswered(ProgressEvent):
    """A panel member gave a usable answer."""

    index: int
    model: str
    started_ms: float
    latency_ms: float
    tokens: int
    """Prompt plus completion tokens over the member's calls."""
    web_calls: int
    """Client-side web searches and fetches it made."""
    sources: int
    """Web sources its answer used."""


@dataclass(frozen=True, kw_only=True)
class MemberFailed(ProgressEvent):
    """A panel member failed: an error, its deadline, or an empty answer."""

    index: int
    model: str
    started_ms: float
    latency_ms: float
    status: str
    """``error`` or ``timeout``."""
    error_type: str
    """The exception class name, e.g. ``RateLimitError``."""
    error: str
    """The error message, secrets already redacted (untrusted text)."""


@dataclass(frozen=True, kw_only=True)
class MemberDropped(ProgressEvent):
    """A straggling member was cancelled (after the quorum's grace, or once the quorum was out of reach)."""

    index: int
    model: str
    started_ms: float
    reason: str


@dataclass(frozen=True, kw_only=True)
class WebToolCalled(ProgressEvent):
    """A member's client-side web search or fetch finished (or was refused)."""

    index: int
    model: str
    tool: str
    """``web_search`` or ``web_fetch``."""
    argument: str
    """The query or the URL (untrusted text)."""
    status: str
    """``ok``, ``error`` or ``refused``."""
    error: str | None
    started_ms: float
    latency_ms: float


@dataclass(frozen=True, kw_only=True)
class PanelAgreed(ProgressEvent):
    """The panel's answers agreed, so the later stages are skipped (``short_circuit``)."""

    how: str
    """``exact`` (identical answers) or ``vote`` (one final claim): no judge, no synthesizer; ``judge`` (full consensus): no synthesizer."""


@dataclass(frozen=True, kw_only=True)
class JudgeStarted(ProgressEvent):
    """The judge was asked to compare the answers."""

    model: str
    answers: int


@dataclass(frozen=True, kw_only=True)
class JudgeFinished(ProgressEvent):
    """The judge's analysis is in (or it failed, and the answer is written from the raw answers)."""

    model: str
    started_ms: float
    latency_ms: float
    tokens: int
    calls: int
    """1, or 2 with the repair call."""
    failed_reason: str | None
    consensus: tuple[str, ...] = ()
    contradictions: tuple[str, ...] = ()
    """The contested topics."""


@dataclass(frozen=True, kw_only=True)
class SynthesizerStarted(ProgressEvent):
    """A writer (the synthesizer, or the judge's model as its fallback) started the final answer."""

    model: str


@dataclass(frozen=True, kw_only=True)
class SynthesizerFinished(ProgressEvent):
    """The writer finished (``ok``) or failed before its answer (``error``, and the fallback writes)."""

    model: str
    started_ms: float
    latency_ms: float
    tokens: int
    status: str
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallFinished(ProgressEvent):
    """One nested call returned: a member's model call (several with web tools), a web search, the judge,
    its repair call, or the writer. For timelines; not shown in the stream."""

    role: str
    """``panel``, ``web_search``, ``judge``, ``judge_repair`` or ``synthesizer``."""
    model: str
    started_ms: float
    latency_ms: float
    tokens: int
    cost: float | None


ProgressFn = Callable[[ProgressEvent], None]
"""Receives each event as it happens, on the fusion's event loop: it must return quickly and not block."""


class Progress:
    """Stamps events with their offset from the fusion's start and hands each to every sink."""

    def __init__(self, *sinks: ProgressFn | None, started: float | None = None) -> None:
        self._sinks = tuple(sink for sink in sinks if sink is not None)
        self.started = time.perf_counter() if started is None else started

    def now_ms(self) -> float:
        """Milliseconds since the fusion started."""
        return (time.perf_counter() - self.started) * 1000

    def emit(self, kind: type[ProgressEvent], **fields: Any) -> None:
        """Build one event of ``kind`` (``at_ms`` is now) and deliver it; nothing is built without sinks."""
        if not self._sinks:
            return
        event = kind(at_ms=round(self.now_ms(), 1), **fields)
        for sink in self._sinks:
            sink(event)


_LISTENER: contextvars.ContextVar[ProgressFn | None] = contextvars.ContextVar("litellm_fusion_progress", default=None)


@contextlib.contextmanager
def listening(listener: ProgressFn) -> Iterator[None]:
    """Call ``listener`` with the progress events of every fusion call started inside this block.

    For SDK callers (``litellm.completion`` / ``acompletion``, streaming or not): a callable cannot travel
    through LiteLLM's call arguments, so it travels in a context variable. It is called on the fusion's
    event loop (a private thread for the sync entry points): keep it quick and thread-safe.
    """
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def current_listener() -> ProgressFn | None:
    """The listener set by the innermost :func:`listening` block of this context, if any."""
    return _LISTENER.get()


async def interleaved(work: Awaitable[None], queue: asyncio.Queue[ProgressEvent]) -> AsyncIterator[ProgressEvent]:
    """Run ``work`` as a task and yield the events put on ``queue`` while it runs, then any left.

    ``work``'s exception is raised after the last event; closing the iterator early cancels ``work``
    and waits for it (so its connections are closed on return).
    """
    task = asyncio.ensure_future(work)
    getter: asyncio.Future[ProgressEvent] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
                continue
            getter.cancel()  # nothing is lost: an item leaves the queue only when get() returns
            break
        for event in drained(queue):
            yield event
        task.result()
    finally:
        if getter is not None and not getter.done():
            getter.cancel()  # a consumer cancelled while waiting must not leave the queue's get() pending
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def drained(queue: asyncio.Queue[ProgressEvent]) -> list[ProgressEvent]:
    """Every event waiting on ``queue``, oldest first (the queue is left empty)."""
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events
