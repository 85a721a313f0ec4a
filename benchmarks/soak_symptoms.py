"""Leak symptoms the soak captures: ResourceWarnings, "Unclosed ..." logs, destroyed tasks, unraisable exceptions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks.soak_memory import allocated_at, short_path

__all__ = ["Symptoms", "capture_symptoms", "loop_exception_handler"]

LEAK_PATTERN = re.compile(r"unclosed|task was destroyed|resourcewarning|exception ignored", re.IGNORECASE)
NEVER_AWAITED = re.compile(r"was never awaited")


@dataclass
class Symptoms:
    """Leak symptoms seen through each channel (one event is counted in one channel only)."""

    warnings: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    loop: list[str] = field(default_factory=list)
    unraisable: list[str] = field(default_factory=list)
    never_awaited: collections.Counter = field(default_factory=collections.Counter)
    """"coroutine ... was never awaited", by coroutine: lost work, not a held resource; reported, not a criterion."""
    other_warnings: list[str] = field(default_factory=list)
    other_logs: collections.Counter = field(default_factory=collections.Counter)

    def leak_events(self) -> list[str]:
        return self.warnings + self.logs + self.loop + self.unraisable

    def take(self, msg: warnings.WarningMessage) -> None:
        """Sort one warning as it is emitted, while the object it is about (an unclosed transport, a
        coroutine never awaited) still exists: if tracemalloc traced its allocation, say where that was."""
        text = f"{msg.category.__name__}: {msg.message} ({short_path(msg.filename)}:{msg.lineno})"
        allocated = allocated_at(msg.source)
        if NEVER_AWAITED.search(str(msg.message)):
            self.never_awaited[str(msg.message).split("\n")[0] + (f" (created at {allocated})" if allocated else "")] += 1
        elif issubclass(msg.category, ResourceWarning) or LEAK_PATTERN.search(str(msg.message)):
            self.warnings.append((text + (f"; allocated at {allocated}" if allocated else ""))[:700])
        else:
            self.other_warnings.append(text[:300])


class _CaptureHandler(logging.Handler):
    def __init__(self, symptoms: Symptoms) -> None:
        super().__init__(level=logging.WARNING)
        self.symptoms = symptoms

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a badly formatted record is still a record
            message = str(record.msg)
        text = f"{record.name} {record.levelname}: {message}"
        if LEAK_PATTERN.search(message):
            self.symptoms.logs.append(text[:500])
        else:
            self.symptoms.other_logs[text[:160]] += 1


_CAPTURED_LOGGERS = ("", "asyncio", "aiohttp", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "openai")


@contextlib.contextmanager
def capture_symptoms(symptoms: Symptoms) -> Iterator[None]:
    """Route warnings, log records (WARNING+) and unraisable exceptions into ``symptoms``."""
    handler = _CaptureHandler(symptoms)
    loggers = [logging.getLogger(name) for name in _CAPTURED_LOGGERS]
    saved_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        text = f"{info.err_msg or 'Exception ignored in'}: {info.object!r}: {info.exc_type.__name__}: {info.exc_value}"
        symptoms.unraisable.append(text[:500])

    # Garbage left by whatever ran before (earlier tests in the same process) is collected now, so that its
    # warnings are not counted as the soak's.
    gc.collect()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", ResourceWarning)
        warnings.simplefilter("always", RuntimeWarning)
        # record=True routes every WarningMessage (with its ``source`` object) through this hook, which
        # catch_warnings restores on exit; taking it here lets take() look the object up while it exists.
        warnings._showwarnmsg_impl = symptoms.take  # type: ignore[attr-defined]
        for logger in loggers:
            # A logger that does not propagate (LiteLLM's own) would hide its records from the root's handler.
            if logger.name == "root" or not logger.propagate:
                logger.addHandler(handler)
        sys.unraisablehook = unraisable
        try:
            yield
        finally:
            sys.unraisablehook = saved_hook
            for logger in loggers:
                logger.removeHandler(handler)


def loop_exception_handler(symptoms: Symptoms):
    """An event-loop exception handler that records what reaches it in ``symptoms.loop``."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        exc = context.get("exception")
        where = context.get("task") or context.get("future") or context.get("client_session") or ""
        symptoms.loop.append(f"{message} {type(exc).__name__ + ': ' + str(exc) if exc else ''} {where}"[:500])

    return handle
