"""The one-line text of a progress event, as a stream's ``reasoning_content`` shows it.

Model and web text in a line (an error message, a search query, the judge's points) is untrusted: it is
reduced to one short line, with control characters removed and Markdown/HTML punctuation escaped, since
chat UIs render the reasoning channel as Markdown (an injected image link would load on its own).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from litellm_fusion._engine.progress import (
    FusionStarted,
    JudgeFinished,
    JudgeStarted,
    MemberAnswered,
    MemberDropped,
    MemberFailed,
    MemberStarted,
    PanelAgreed,
    ProgressEvent,
    SynthesizerFinished,
    SynthesizerStarted,
    WebToolCalled,
)

__all__ = ["one_line", "progress_text"]

_MARKUP = re.compile(r"([\\`*_\[\]()<>!#|~{}])")
_SPACES = re.compile(r"\s+")


def one_line(text: Any, limit: int = 120) -> str:
    """Untrusted text as one short, inert line: no control or line-break characters, Markdown and HTML
    punctuation backslash-escaped, cut to ``limit`` characters (before escaping) with an ellipsis."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in str(text or ""))
    cleaned = _SPACES.sub(" ", cleaned).strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return _MARKUP.sub(r"\\\1", cleaned)


def _secs(ms: float) -> str:
    return f"{ms / 1000:.1f} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _model(name: str) -> str:
    return one_line(name, 80)


def progress_text(event: ProgressEvent) -> str | None:
    """The reasoning-channel text of ``event`` (lines ending in a newline), or None for events a chat
    reader does not need (the writer's end: its answer is the content that follows)."""
    lines = _lines(event)
    return "".join(f"{line}\n" for line in lines) if lines else None


def _lines(event: ProgressEvent) -> list[str]:
    match event:
        case FusionStarted():
            panel = f"{_count(len(event.panel), 'model')} ({', '.join(map(_model, event.panel))})"
            writer, head = _model(event.synthesizer), f"Fusion {_model(event.name)}:"
            if event.invocation == "auto":
                return [f"{head} writer {writer} decides whether to ask its panel of {panel}; judge {_model(event.judge)}."]
            if event.invocation == "required":
                return [f"{head} writer {writer} writes the question for its panel of {panel}; judge {_model(event.judge)}."]
            if event.invocation == "single":
                return [f"{head} writer {writer} answers alone (this request is already inside a fusion)."]
            return [f"{head} asking {panel}; {_count(event.quorum, 'answer')} needed; judge {_model(event.judge)}, writer {writer}."]
        case MemberStarted():
            return [f"- {_model(event.model)} is answering…"]
        case MemberAnswered():
            extra = f", {event.sources} web sources" if event.sources else ""
            return [f"- {_model(event.model)} answered in {_secs(event.latency_ms)} ({event.tokens} tokens{extra})."]
        case MemberFailed():
            what = "timed out" if event.status == "timeout" else "failed"
            return [f"- {_model(event.model)} {what} after {_secs(event.latency_ms)}: {one_line(event.error)}"]
        case MemberDropped():
            return [f"- {_model(event.model)} dropped: {one_line(event.reason)}."]
        case WebToolCalled():
            verb = "searched" if event.tool == "web_search" else "read"
            outcome = "" if event.status == "ok" else f" ({event.status}: {one_line(event.error, 80)})"
            return [f"  - {_model(event.model)} {verb} “{one_line(event.argument, 90)}” in {_secs(event.latency_ms)}{outcome}"]
        case PanelAgreed():
            skipped = "no judge or synthesizer needed" if event.how in ("exact", "vote") else "no synthesizer needed"
            return [f"The panel agrees ({one_line(event.how, 20)}): {skipped}."]
        case JudgeStarted():
            return [f"Judge {_model(event.model)} is comparing {event.answers} answers…"]
        case JudgeFinished():
            if event.failed_reason:
                return [
                    f"Judge failed after {_secs(event.latency_ms)} ({one_line(event.failed_reason, 40)}); "
                    "the answer is written from the raw answers."
                ]
            lines = [
                f"Judge done in {_secs(event.latency_ms)}: {_count(len(event.consensus), 'point')} of agreement, "
                f"{_count(len(event.contradictions), 'contradiction')}."
            ]
            lines += [f"  - agreed: {one_line(point)}" for point in event.consensus[:3]]
            lines += [f"  - contested: {one_line(topic)}" for topic in event.contradictions[:3]]
            return lines
        case SynthesizerStarted():
            return [f"Writer {_model(event.model)} is writing the answer…"]
        case SynthesizerFinished() if event.status != "ok":
            return [f"Writer {_model(event.model)} failed: {one_line(event.error)}; trying the next writer."]
    return []
