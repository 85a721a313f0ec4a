"""Saved fusion results in the shapes people have: a bare trace, ``--json`` output, or a whole proxy response."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ReportInput", "TraceFormatError", "report_input", "read_report_input"]


class TraceFormatError(ValueError):
    """The file is not a fusion trace in any accepted shape; the message says what was expected."""


@dataclass(frozen=True, kw_only=True)
class ReportInput:
    """What a report page shows: the trace, plus the question and answer when the file has them."""

    trace: dict[str, Any]
    question: str | None = None
    answer: str | None = None


_EXPECTED = (
    "expected a fusion trace: the `fusion` field of a proxy response (or the whole response), "
    "or the output of `litellm-fusion ask --json` / `demo --json`"
)


def _last_user_text(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content) if content is not None else None
    return None


def report_input(data: Any, *, question: str | None = None) -> ReportInput:
    """Find the trace, question and answer in ``data``; raises :class:`TraceFormatError` naming the problem.

    Accepted: a trace (``{"panel": [...], ...}``); ``--json`` output (a trace plus ``answer`` and ``question``);
    a chat completion with a top-level ``fusion`` field (the answer is ``choices[0].message.content``);
    ``{"fusion": trace}``. ``question`` overrides whatever the file says (a bare trace has none).
    """
    if not isinstance(data, dict):
        raise TraceFormatError(f"the top level is a JSON {type(data).__name__}, not an object; {_EXPECTED}")
    trace, answer = data, data.get("answer")
    if "panel" not in data and isinstance(data.get("fusion"), dict):
        trace = data["fusion"]
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or {}
            answer = message.get("content") if isinstance(message, dict) else None
        elif isinstance(data.get("output_text"), str):  # a Responses API object
            answer = data["output_text"]
    panel = trace.get("panel")
    if not isinstance(panel, list):
        where = "`fusion.panel`" if trace is not data else "`panel`"
        raise TraceFormatError(f"no {where} list in the file; {_EXPECTED}")
    if not all(isinstance(m, dict) for m in panel):
        raise TraceFormatError("`panel` must be a list of objects (one per member, with model, status, content, latency_ms)")
    asked = question if question is not None else data.get("question")
    if asked is None:
        asked = _last_user_text(data.get("messages"))
    return ReportInput(
        trace=trace,
        question=str(asked) if asked is not None else None,
        answer=str(answer) if answer is not None else None,
    )


def read_report_input(path: str | Path, *, question: str | None = None) -> ReportInput:
    """:func:`report_input` of the JSON file at ``path`` (``-`` reads stdin)."""
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(f"{path} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {_EXPECTED}") from None
    return report_input(data, question=question)
