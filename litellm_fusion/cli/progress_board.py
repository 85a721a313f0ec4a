"""The CLI's live progress board: each panel member's state, then the judge and the writer, on stderr.

Fed by the same progress events as the stream's reasoning lines (:mod:`litellm_fusion._engine.progress`). Shown only
when stderr is a terminal; otherwise (a pipe, a file, ``--json``) nothing is drawn, so output stays clean.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from litellm_fusion._engine import progress as p
from litellm_fusion._engine.progress_text import one_line

__all__ = ["Board", "live_progress"]


@dataclass
class _Row:
    role: str
    model: str
    state: str = "waiting"
    detail: str = ""


@dataclass
class Board:
    """What the fusion has done so far, one row per member plus the judge and the writer."""

    rows: dict[str, _Row] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, event: p.ProgressEvent) -> None:
        """Update the rows for one event (called on the fusion's event loop thread)."""
        with self.lock:
            self._apply(event)

    def _apply(self, event: p.ProgressEvent) -> None:
        secs = lambda ms: f"{ms / 1000:.1f} s"  # noqa: E731
        match event:
            case p.FusionStarted():
                for i, model in enumerate(event.panel):
                    self.rows[f"panel{i}"] = _Row("panel", model)
                self.rows["judge"] = _Row("judge", event.judge)
                # With invocation auto/required the writer first decides (or writes the panel's question).
                deciding = event.invocation in ("auto", "required")
                self.rows["writer"] = _Row("writer", event.synthesizer, "deciding" if deciding else "waiting")
            case p.CallFinished(role="outer"):
                self._set("writer", "decided", f"{secs(event.latency_ms)}, {event.tokens} tokens")
            case p.MemberStarted():
                self._set(f"panel{event.index}", "running", "")
            case p.MemberAnswered():
                web = f", {event.web_calls} web calls" if event.web_calls else ""
                self._set(f"panel{event.index}", "answered", f"{secs(event.latency_ms)}, {event.tokens} tokens{web}")
            case p.MemberFailed():
                state = "timeout" if event.status == "timeout" else "failed"
                self._set(f"panel{event.index}", state, f"{secs(event.latency_ms)}: {one_line(event.error_type, 40)}")
            case p.MemberDropped():
                self._set(f"panel{event.index}", "dropped", one_line(event.reason, 60))
            case p.WebToolCalled():
                row = self.rows.get(f"panel{event.index}")
                if row is not None and row.state == "running":
                    verb = "searching" if event.tool == "web_search" else "reading"
                    row.detail = f"{verb} {one_line(event.argument, 50)}"
            case p.PanelAgreed():
                for key in ("judge", "writer") if event.how in ("exact", "vote") else ("writer",):
                    self._set(key, "skipped", "the panel agreed")
            case p.JudgeStarted():
                self._set("judge", "running", f"comparing {event.answers} answers")
            case p.JudgeFinished():
                if event.failed_reason:
                    self._set("judge", "failed", f"{secs(event.latency_ms)}: {one_line(event.failed_reason, 40)}")
                else:
                    found = f"{len(event.consensus)} agreed, {len(event.contradictions)} contested"
                    self._set("judge", "done", f"{secs(event.latency_ms)}, {event.tokens} tokens, {found}")
            case p.SynthesizerStarted():
                row = self.rows.setdefault("writer", _Row("writer", event.model))
                row.model, row.state, row.detail = event.model, "writing", ""
            case p.SynthesizerFinished():
                if event.status == "ok":
                    self._set("writer", "done", f"{secs(event.latency_ms)}, {event.tokens} tokens")
                else:
                    self._set("writer", "failed", one_line(event.error, 60))

    def _set(self, key: str, state: str, detail: str) -> None:
        row = self.rows.get(key)
        if row is not None:
            row.state, row.detail = state, detail

    def render(self) -> Any:
        """The board as a rich table."""
        from rich.table import Table
        from rich.text import Text

        styles = {"running": "yellow", "writing": "yellow", "answered": "green", "done": "green", "failed": "red",
                  "timeout": "red", "dropped": "magenta", "skipped": "dim", "waiting": "dim", "deciding": "yellow",
                  "decided": "green"}  # fmt: skip
        table = Table(box=None, show_header=False, padding=(0, 1), title="fusion progress", title_justify="left")
        with self.lock:
            for row in self.rows.values():
                # Text, not markup: model names and details are untrusted and must not style the terminal.
                table.add_row(row.role, Text(row.model), Text(row.state, style=styles.get(row.state, "")), Text(row.detail))
        return table


@contextlib.contextmanager
def live_progress(enabled: bool) -> Iterator[Any]:
    """While the block runs, draw the board of the fusion calls made in it on stderr (when ``enabled``).

    Yields a function that stops the board early (before answer text is streamed to the same terminal).
    """
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.live import Live

    board = Board()
    live = Live(board.render(), console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False, auto_refresh=False)

    stopped = threading.Event()

    def on_event(event: p.ProgressEvent) -> None:
        board.apply(event)
        if not stopped.is_set():
            live.update(board.render(), refresh=True)

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            live.stop()

    live.start()
    try:
        with p.listening(on_event):
            yield stop
    finally:
        stop()
