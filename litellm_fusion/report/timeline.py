"""Every nested call of a fusion on one time axis: the spans (pure data) and their inline SVG.

Traces carry ``start_ms`` (ms since the request started) on each member, model call, web tool call, the
judge and the synthesizer. Traces made before those offsets existed are laid out from latencies alone:
members from 0, their tool calls back to back, the judge after the slowest member, the synthesizer after
the judge; the timeline then says it is approximate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from litellm_fusion.report.html import dicts, esc, num, secs

__all__ = ["Span", "Timeline", "timeline_of", "timeline_svg", "legend", "panel_names", "display_order", "KIND_COLORS"]

KIND_COLORS = {
    "model": "#2563eb",
    "web_search": "#7c3aed",
    "web_fetch": "#0d9488",
    "judge": "#ea580c",
    "judge_repair": "#f59e0b",
    "synthesizer": "#16a34a",
}
"""Bar colour per kind of call (the member rows behind them are tinted by the member's status)."""
KIND_LABELS = {
    "model": "panel model call",
    "web_search": "web search",
    "web_fetch": "web fetch",
    "judge": "judge",
    "judge_repair": "judge repair",
    "synthesizer": "synthesizer",
}
_MEMBER_TINT = {"ok": "#dbeafe", "error": "#fee2e2", "timeout": "#fef3c7", "dropped": "#e5e7eb"}


@dataclass(frozen=True, kw_only=True)
class Span:
    """One bar: a call (or a whole member, ``kind="member"``) from ``start_ms`` to ``end_ms``."""

    row: int
    kind: str
    """``member``, ``model``, ``web_search``, ``web_fetch``, ``judge``, ``judge_repair`` or ``synthesizer``."""
    stage: str
    """Who made it: the member's letter and model, ``judge`` or ``synthesizer``."""
    model: str
    detail: str
    """The query or URL of a web call, else empty."""
    start_ms: float
    end_ms: float
    status: str
    tokens: int | None = None
    cost: float | None = None


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """Row labels, spans, the axis length and whether the starts were measured (``exact``)."""

    rows: tuple[str, ...]
    spans: tuple[Span, ...]
    total_ms: float
    exact: bool

    @property
    def calls(self) -> list[Span]:
        """Every nested call (not the member rows behind them), in start order."""
        return sorted((s for s in self.spans if s.kind != "member"), key=lambda s: (s.start_ms, s.row))


def panel_names(panel: list[dict[str, Any]]) -> list[str]:
    """Each member's name as the analysis uses it: its model, or ``model#position`` when listed twice."""
    models = [str(m.get("model")) for m in panel]
    return [m if models.count(m) == 1 else f"{m}#{i + 1}" for i, m in enumerate(models)]


def display_order(panel: list[dict[str, Any]]) -> list[int]:
    """Panel positions in the order pages show them: by letter (A, B, ...), members the judge never saw last."""
    return sorted(range(len(panel)), key=lambda i: (not panel[i].get("letter"), str(panel[i].get("letter") or ""), i))


def _tokens(usage: Any) -> int | None:
    total = num(usage.get("total_tokens")) if isinstance(usage, dict) else None
    return None if total is None else int(total)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def timeline_of(trace: dict[str, Any]) -> Timeline:
    """The spans of ``trace`` (a fusion trace dict); see the module docstring for traces without offsets."""
    panel = dicts(trace.get("panel"))
    judge = trace.get("judge") if isinstance(trace.get("judge"), dict) else None
    synth = trace.get("synthesizer") if isinstance(trace.get("synthesizer"), dict) else None
    exact = any(num(m.get("start_ms")) is not None for m in panel)
    rows: list[str] = []
    spans: list[Span] = []
    names = panel_names(panel)

    def row(label: str) -> int:
        rows.append(label)
        return len(rows) - 1

    panel_end = 0.0
    for member, name in ((panel[i], names[i]) for i in display_order(panel)):
        letter = member.get("letter")
        who = f"{letter} · {name}" if letter else name
        start = num(member.get("start_ms")) or 0.0
        latency = num(member.get("latency_ms")) or 0.0
        status = str(member.get("status") or "?")
        member_row = row(who)
        spans.append(
            Span(row=member_row, kind="member", stage=who, model=name, detail="", start_ms=start, end_ms=start + latency, status=status)
        )
        panel_end = max(panel_end, start + latency)
        for call in dicts(member.get("nested_calls")):
            call_start = num(call.get("start_ms"))
            if call_start is None:
                continue
            call_end = call_start + (num(call.get("latency_ms")) or 0.0)
            spans.append(
                Span(row=member_row, kind="model", stage=who, model=str(call.get("model") or name), detail="", start_ms=call_start,
                     end_ms=call_end, status="ok", tokens=_tokens(call.get("usage")), cost=num(call.get("cost")))
            )  # fmt: skip
        cursor = start
        for tool in dicts(member.get("tool_calls")):
            kind = "web_fetch" if tool.get("name") == "web_fetch" else "web_search"
            tool_start = num(tool.get("start_ms"))
            tool_start = cursor if tool_start is None else tool_start
            tool_end = tool_start + (num(tool.get("latency_ms")) or 0.0)
            cursor = tool_end
            argument = str(tool.get("argument") or "")
            verb = "fetch" if kind == "web_fetch" else "search"
            spans.append(
                Span(row=row(f"  ↳ {verb} {_short(argument, 34)}"), kind=kind, stage=who, model=name, detail=argument,
                     start_ms=tool_start, end_ms=tool_end, status=str(tool.get("status") or "?"))
            )  # fmt: skip
    judge_end = panel_end
    if judge:
        judge_model = str(judge.get("model") or "judge")
        judge_row = row(f"judge · {judge_model}")
        judge_start = num(judge.get("start_ms"))
        calls = [c for c in dicts(judge.get("nested_calls")) if num(c.get("start_ms")) is not None]
        for call in calls:
            call_start = num(call.get("start_ms")) or 0.0
            call_end = call_start + (num(call.get("latency_ms")) or 0.0)
            kind = "judge_repair" if call.get("role") == "judge_repair" else "judge"
            spans.append(
                Span(row=judge_row, kind=kind, stage="judge", model=str(call.get("model") or judge_model), detail="", start_ms=call_start,
                     end_ms=call_end, status="ok", tokens=_tokens(call.get("usage")), cost=num(call.get("cost")))
            )  # fmt: skip
            judge_end = max(judge_end, call_end)
        if not calls:
            start = panel_end if judge_start is None else judge_start
            latency = num(judge.get("latency_ms")) or 0.0
            synth_start = num(synth.get("start_ms")) if synth else None
            if judge.get("status") != "ok" and synth_start is not None and synth_start > start:
                latency = max(latency, synth_start - start)  # the failed attempt lasted until the synthesizer took over
            status = "ok" if judge.get("status") == "ok" else "failed"
            spans.append(
                Span(row=judge_row, kind="judge", stage="judge", model=judge_model, detail="", start_ms=start, end_ms=start + latency,
                     status=status, tokens=_tokens(judge.get("usage")), cost=num(judge.get("cost")))
            )  # fmt: skip
            judge_end = start + latency
        elif judge.get("status") != "ok":
            spans[-1] = replace(spans[-1], status="failed")
    if synth and num(synth.get("latency_ms")) is not None:
        start = num(synth.get("start_ms"))
        start = judge_end if start is None else start
        spans.append(
            Span(row=row(f"synthesizer · {synth.get('model')}"), kind="synthesizer", stage="synthesizer", model=str(synth.get("model")),
                 detail="", start_ms=start, end_ms=start + (num(synth.get("latency_ms")) or 0.0), status=str(synth.get("status") or "ok"),
                 tokens=_tokens(synth.get("usage")), cost=num(synth.get("cost")))
        )  # fmt: skip
    total = max([num(trace.get("latency_ms")) or 0.0, *(s.end_ms for s in spans)])
    return Timeline(rows=tuple(rows), spans=tuple(spans), total_ms=total, exact=exact)


def _tick_step(total_ms: float) -> float:
    """A 1-2-5 step giving at most ~10 ticks."""
    step = 1.0
    while total_ms / step > 10:
        for factor in (2, 2.5, 2):
            step *= factor
            if total_ms / step <= 10:
                break
    return step


_LABEL_W, _PLOT_W, _ROW_H, _TOP, _PAD_R = 300, 860, 22, 28, 16


def timeline_svg(timeline: Timeline) -> str:
    """The timeline as an inline ``<svg>`` (hover a bar for its details; no script)."""
    total = timeline.total_ms or 1.0
    height = _TOP + _ROW_H * max(len(timeline.rows), 1) + 8
    width = _LABEL_W + _PLOT_W + _PAD_R

    def x(ms: float) -> float:
        return round(_LABEL_W + _PLOT_W * max(0.0, ms) / total, 1)

    out = [
        f'<svg class="timeline" role="img" aria-label="timeline of every nested call" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, DejaVu Sans, sans-serif" font-size="12">'
    ]
    step = _tick_step(total)
    tick = 0.0
    while tick <= total + 1e-6:
        out.append(f'<line x1="{x(tick)}" y1="{_TOP - 6}" x2="{x(tick)}" y2="{height - 4}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{x(tick)}" y="{_TOP - 10}" text-anchor="middle" fill="#6b7280">{esc(_tick_label(tick, step))}</text>')
        tick += step
    for i, label in enumerate(timeline.rows):
        y = _TOP + i * _ROW_H
        if i % 2:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{_ROW_H}" fill="#f8fafc"/>')
        weight = ' font-weight="600"' if not label.startswith("  ") else ' fill="#4b5563"'
        out.append(f'<text x="6" y="{y + 15}"{weight} xml:space="preserve">{esc(_short(label, 46))}</text>')
    bars_by_row: dict[int, list[tuple[float, float]]] = {}
    for span in timeline.spans:
        if span.kind != "member":
            bars_by_row.setdefault(span.row, []).append((x(span.start_ms), x(span.end_ms)))
    for span in timeline.spans:
        y = _TOP + span.row * _ROW_H
        x0, x1 = x(span.start_ms), x(span.end_ms)
        w = max(round(x1 - x0, 1), 2.0)
        if span.kind == "member":
            fill = _MEMBER_TINT.get(span.status, "#e5e7eb")
            out.append(f'<rect class="span member" x="{x0}" y="{y + 3}" width="{w}" height="{_ROW_H - 6}" rx="3" fill="{fill}">')
        else:
            fill = KIND_COLORS.get(span.kind, "#6b7280")
            failed = span.status not in ("ok",)
            stroke = ' stroke="#b91c1c" stroke-width="2" stroke-dasharray="4 2"' if failed else ""
            opacity = ' fill-opacity="0.45"' if failed else ""
            out.append(
                f'<rect class="span {esc(span.kind)}" x="{x0}" y="{y + 6}" width="{w}" height="{_ROW_H - 12}" rx="2" fill="{fill}"{opacity}{stroke}>'
            )
        out.append(f"<title>{esc(_tooltip(span))}</title></rect>")
        if span.kind == "member" and span.status != "ok":
            out.append(f'<text x="{x1 + 4}" y="{y + 15}" fill="#b91c1c">{esc(span.status)}</text>')
        elif span.kind in ("synthesizer", "judge", "judge_repair") or (span.kind == "member" and span.end_ms - span.start_ms > 0):
            others = [bar for bar in bars_by_row.get(span.row, []) if bar != (x0, x1)]
            out.append(_duration_label(span, x0, x1, y, width, others))
    out.append("</svg>")
    return "".join(out)


def _duration_label(span: Span, x0: float, x1: float, y: float, width: float, others: list[tuple[float, float]]) -> str:
    """The span's duration beside it, right if there is room before the next bar of its row, else left, else none
    (its tooltip still says it)."""
    text = esc(secs(span.end_ms - span.start_ms))
    room = 56
    if x1 + room < width and not any(x1 <= start < x1 + room for start, _ in others):
        return f'<text x="{x1 + 4}" y="{y + 15}" fill="#374151">{text}</text>'
    if x0 - room > _LABEL_W and not any(x0 - room < end <= x0 for _, end in others):
        return f'<text x="{x0 - 4}" y="{y + 15}" text-anchor="end" fill="#374151">{text}</text>'
    return ""


def _tick_label(ms: float, step: float) -> str:
    return f"{ms / 1000:.0f} s" if step >= 1000 else f"{ms / 1000:.1f} s" if step >= 100 else f"{ms:.0f} ms"


def _tooltip(span: Span) -> str:
    parts = [KIND_LABELS.get(span.kind, "member") + ":", span.stage]
    if span.detail:
        parts.append(span.detail)
    parts.append(f"{secs(span.start_ms)} → {secs(span.end_ms)} ({secs(span.end_ms - span.start_ms)}), {span.status}")
    if span.tokens is not None:
        parts.append(f"{span.tokens} tokens")
    return " ".join(parts)


def legend(kinds: Iterable[str]) -> str:
    """The colour key for the kinds present."""
    present = set(kinds)
    items = [
        f'<span><i style="background:{color}"></i>{esc(KIND_LABELS[kind])}</span>' for kind, color in KIND_COLORS.items() if kind in present
    ]
    items.append('<span><i style="background:#dbeafe"></i>panel member (request to answer)</span>')
    items.append('<span><i style="background:#fff;border:2px dashed #b91c1c"></i>failed or refused</span>')
    return '<div class="legend">' + "".join(items) + "</div>"
