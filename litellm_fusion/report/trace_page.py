"""One fusion as a self-contained HTML page: question, answer, timeline, the panel side by side, the analysis."""

from __future__ import annotations

from typing import Any

from litellm_fusion._engine.prompts import answer_letter
from litellm_fusion.report.html import dicts, esc, link, num, page, secs, tokens, usd
from litellm_fusion.report.timeline import Timeline, display_order, legend, panel_names, timeline_of, timeline_svg

__all__ = ["trace_page"]


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _status(status: Any) -> str:
    text = str(status or "?")
    css = text if text in ("ok", "error", "timeout", "dropped", "failed", "refused") else "dropped"
    return f'<span class="status {css}">{esc(text)}</span>'


def _letter(letter: Any) -> str:
    return f'<span class="letter">{esc(letter)}</span>' if letter else '<span class="letter none" title="not shown to the judge">–</span>'


class _Members:
    """The panel in display order (by letter, unlettered members last) and how analysis names map to them."""

    def __init__(self, trace: dict[str, Any]) -> None:
        panel = dicts(trace.get("panel"))
        names = panel_names(panel)
        self.members = [(panel[i], names[i]) for i in display_order(panel)]
        self.by_ref: dict[str, int] = {}
        for column, (member, name) in enumerate(self.members):
            self.by_ref.setdefault(name, column)
            self.by_ref.setdefault(str(member.get("model")), column)
            if member.get("letter"):
                self.by_ref[str(member["letter"])] = column
        letters = trace.get("letters")
        if isinstance(letters, dict):  # letter → name, as the judge's analysis was mapped back
            for letter, name in letters.items():
                if str(name) in self.by_ref:
                    self.by_ref[str(letter)] = self.by_ref[str(name)]

    def column(self, ref: Any) -> int | None:
        text = str(ref).strip()
        return self.by_ref.get(text, self.by_ref.get(answer_letter(text)))

    def chip(self, ref: Any) -> str:
        column = self.column(ref)
        if column is None:
            return f"<b>{esc(ref)}</b>"
        member, name = self.members[column]
        return f"{_letter(member.get('letter'))} <b>{esc(name)}</b>"

    def grid_style(self) -> str:
        return f"grid-template-columns: repeat({max(len(self.members), 1)}, minmax(0, 1fr))"


def _header(trace: dict[str, Any]) -> str:
    usage = trace.get("usage") if isinstance(trace.get("usage"), dict) else {}
    panel = dicts(trace.get("panel"))
    answered = sum(1 for m in panel if m.get("status") == "ok")
    facts = [
        f"preset <b>fusion/{esc(trace.get('preset') or '?')}</b>",
        f"panel <b>{answered} of {len(panel)} answered</b>",
        f"wall <b>{esc(secs(trace.get('latency_ms')))}</b>",
        f"tokens <b>{esc(tokens(usage))}</b>",
        f"cost <b>{esc(usd(trace.get('cost')))}</b>",
    ]
    stages = _stage_times(trace)
    if stages:
        facts.append(" · ".join(f"{name} <b>{esc(secs(ms))}</b>" for name, ms in stages))
    unpriced = _strings(trace.get("unpriced_models"))
    if unpriced:
        facts.append(f"unpriced <b>{esc(', '.join(unpriced))}</b>")
    if trace.get("short_circuit"):
        facts.append(f"short-circuit <b>{esc(trace['short_circuit'])}</b>")
    if trace.get("degraded"):
        failed = ", ".join(_strings(trace.get("failed_models"))) or "-"
        facts.append(f'<span class="status error">degraded</span> failed: <b>{esc(failed)}</b>')
    return f'<header id="summary"><h1>litellm-fusion report</h1><div class="facts">{"".join(f"<span>{f}</span>" for f in facts)}</div></header>'


def _stage_times(trace: dict[str, Any]) -> list[tuple[str, float]]:
    """Wall time per stage: the panel (its slowest member), the judge, the synthesizer."""
    out = []
    latencies = [num(m.get("latency_ms")) for m in dicts(trace.get("panel"))]
    if any(v is not None for v in latencies):
        out.append(("panel", max(v for v in latencies if v is not None)))
    for stage in ("judge", "synthesizer"):
        entry = trace.get(stage)
        if isinstance(entry, dict) and num(entry.get("latency_ms")) is not None:
            out.append((stage, num(entry["latency_ms"]) or 0.0))
    return out


def _question(question: str | None) -> str:
    body = (
        f'<p class="text">{esc(question)}</p>'
        if question
        else '<p class="note">The question is not in this file (a bare trace); pass it with <code>--question</code>.</p>'
    )
    return f'<section id="question" class="question"><h2>Question</h2>{body}</section>'


def _answer(answer: str | None, trace: dict[str, Any], error: str | None) -> str:
    synth = trace.get("synthesizer") if isinstance(trace.get("synthesizer"), dict) else {}
    by = f" · synthesizer {esc(synth.get('model'))}" if synth.get("model") else ""
    if trace.get("short_circuit"):
        by = f" · the panel agreed ({esc(trace['short_circuit'])}), no synthesis"
    if error is not None:
        body = f'<p class="error-text">The run failed, so there is no final answer: {esc(error)}</p>'
    elif answer is None:
        body = (
            '<p class="note">The final answer is not in this file (a bare trace): save the whole response, '
            "or the <code>--json</code> output of <code>litellm-fusion ask</code>.</p>"
        )
    else:
        body = f'<p class="text">{esc(answer)}</p>'
    return f'<section id="answer" class="answer"><h2>Final answer{by}</h2>{body}</section>'


def _timeline(timeline: Timeline) -> str:
    if not timeline.spans:
        return '<section id="timeline"><h2>Timeline</h2><p class="note">No calls recorded.</p></section>'
    note = (
        ""
        if timeline.exact
        else '<p class="note">Approximate: this trace has no start offsets (an older version made it), so members are drawn '
        "from 0 and the stages back to back.</p>"
    )
    kinds = {s.kind for s in timeline.spans}
    return (
        f'<section id="timeline"><h2>Timeline · every nested call on one axis ({esc(secs(timeline.total_ms))})</h2>{note}'
        f"{timeline_svg(timeline)}{legend(kinds)}</section>"
    )


def _sources(member: dict[str, Any]) -> str:
    sources = dicts(member.get("sources"))
    if not sources:
        return ""
    items = "".join(f"<li>{link(s.get('url'), s.get('title') or s.get('url'))}</li>" for s in sources)
    return f'<div class="meta">sources</div><ul class="sources">{items}</ul>'


def _card(member: dict[str, Any], name: str) -> str:
    status = member.get("status")
    if isinstance(member.get("usage"), dict):
        meta = [secs(member.get("latency_ms")), f"{tokens(member.get('usage'))} tokens", usd(member.get("cost"))]
    else:  # a member that failed before any response: nothing was counted
        meta = [secs(member.get("latency_ms")), "no usage reported"]
    if member.get("finish_reason") not in (None, "stop"):
        meta.append(f"finish: {member['finish_reason']}")  # e.g. length: the answer was cut at max_tokens
    if member.get("web") and member.get("web") != "off":
        meta.append(f"web: {member['web']}")
    tool_calls = dicts(member.get("tool_calls"))
    if tool_calls:
        meta.append(f"{len(tool_calls)} tool call{'s' if len(tool_calls) != 1 else ''}")
    if status == "ok":
        body = (
            f'<p class="text">{esc(member.get("content"))}</p>'
            if member.get("content") is not None
            else '<p class="note">(answer not exposed)</p>'
        )
    else:
        error = member.get("error") if isinstance(member.get("error"), dict) else {}
        body = f'<p class="error-text">{esc(error.get("type") or "error")}: {esc(error.get("message") or "")}</p>'
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in _strings(member.get("notes")))
    return (
        f'<article class="card member{"" if status == "ok" else " failed"}" data-model="{esc(name)}">'
        f'<div class="head">{_letter(member.get("letter"))}<span class="model">{esc(name)}</span>{_status(status)}</div>'
        f'<div class="meta">{esc(" · ".join(meta))}</div>{body}{notes}{_sources(member)}</article>'
    )


def _panel(members: _Members) -> str:
    cards = "".join(_card(member, name) for member, name in members.members)
    return (
        '<section id="panel"><h2>Panel · answers side by side, lettered as the judge saw them</h2>'
        f'<div class="grid" style="{members.grid_style()}">{cards}</div></section>'
    )


def _list(items: list[str]) -> str:
    return '<ul class="items">' + "".join(f"<li>{item}</li>" for item in items) + "</ul>" if items else '<p class="note">(none)</p>'


def _contradictions(analysis: dict[str, Any], members: _Members) -> str:
    contradictions = dicts(analysis.get("contradictions"))
    if not contradictions:
        return '<h3>Contradictions</h3><p class="note">(none)</p>'
    heads = "".join(f'<div class="colhead">{members.chip(name)}</div>' for _, name in members.members)
    out = [
        f'<h3>Contradictions · each stance under the answer it came from</h3><div class="grid" style="{members.grid_style()}">{heads}</div>'
    ]
    for item in contradictions:
        cells: list[list[str]] = [[] for _ in members.members]
        strays: list[str] = []
        for stance in dicts(item.get("stances")):
            column = members.column(stance.get("model"))
            if column is None:
                strays.append(f"<li><b>{esc(stance.get('model'))}</b>: {esc(stance.get('stance'))}</li>")
            else:
                cells[column].append(esc(stance.get("stance")))
        grid = "".join(f'<div class="stance">{"<br>".join(c)}</div>' if c else '<div class="stance empty">no stance</div>' for c in cells)
        stray = f'<p class="note">stances of answers not in this panel:</p><ul class="items">{"".join(strays)}</ul>' if strays else ""
        out.append(
            f'<div class="contradiction"><div class="topic">{esc(item.get("topic"))}</div>'
            f'<div class="grid" style="{members.grid_style()}">{grid}</div>{stray}</div>'
        )
    return "".join(out)


def _analysis(trace: dict[str, Any], members: _Members) -> str:
    judge = trace.get("judge") if isinstance(trace.get("judge"), dict) else {}
    analysis = trace.get("analysis")
    title = f"Analysis · judge {esc(judge.get('model'))}" if judge.get("model") else "Analysis"
    if not isinstance(analysis, dict):
        if trace.get("short_circuit") == "exact":
            why = "The panel's answers agreed exactly, so no judge ran."
        else:
            why = f"The judge failed ({esc(trace.get('judge_failed') or (judge or {}).get('failed_reason') or 'no analysis')}); the answer was written from the raw answers."
        return f'<section id="analysis"><h2>{title}</h2><p class="note">{why}</p></section>'
    partial = [
        " ".join(members.chip(ref) for ref in _strings(p.get("models"))) + f" — {esc(p.get('point'))}"
        for p in dicts(analysis.get("partial_coverage"))
    ]
    unique = [f"{members.chip(u.get('model'))} — {esc(u.get('insight'))}" for u in dicts(analysis.get("unique_insights"))]
    return (
        f'<section id="analysis"><h2>{title}</h2>'
        f"<h3>Consensus</h3>{_list([esc(p) for p in _strings(analysis.get('consensus'))])}"
        f"{_contradictions(analysis, members)}"
        f"<h3>Partial coverage</h3>{_list(partial)}"
        f"<h3>Unique insights</h3>{_list(unique)}"
        f"<h3>Blind spots</h3>{_list([esc(b) for b in _strings(analysis.get('blind_spots'))])}</section>"
    )


def _calls(timeline: Timeline) -> str:
    rows = []
    for span in timeline.calls:
        what = {"model": "panel", "web_search": "web search", "web_fetch": "web fetch", "judge_repair": "judge repair"}.get(
            span.kind, span.kind
        )
        rows.append(
            f"<tr><td>{esc(what)}</td><td>{esc(span.stage)}</td><td class='arg'>{esc(span.detail or span.model)}</td>"
            f"<td class='n'>{esc(secs(span.start_ms))}</td><td class='n'>{esc(secs(span.end_ms - span.start_ms))}</td>"
            f"<td class='n'>{'-' if span.tokens is None else f'{span.tokens:,}'}</td><td class='n'>{esc(usd(span.cost) if span.kind not in ('web_fetch', 'web_search') else '-')}</td>"
            f"<td>{_status(span.status)}</td></tr>"
        )
    if not rows:
        return ""
    start = "start" if timeline.exact else "start (approx.)"
    return (
        '<section id="calls"><h2>Every nested call</h2><table><thead><tr><th>kind</th><th>by</th><th>model / query / URL</th>'
        f"<th class='n'>{start}</th><th class='n'>latency</th><th class='n'>tokens</th><th class='n'>cost</th><th>status</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def trace_page(trace: dict[str, Any], *, question: str | None = None, answer: str | None = None, error: str | None = None) -> str:
    """The report page of one fusion ``trace`` (the ``fusion`` field), with its question and final answer when known,
    or the ``error`` the run ended with (a failed run's exception carries its trace).

    Every model and web text is escaped and only http(s) sources become links; the page has no script and a
    Content-Security-Policy that blocks any network access.
    """
    members = _Members(trace)
    timeline = timeline_of(trace)
    body = "\n".join(
        [
            _header(trace),
            _question(question),
            _answer(answer, trace, error),
            _panel(members),
            _analysis(trace, members),
            _timeline(timeline),
            _calls(timeline),
            "<footer>Written by litellm-fusion: one self-contained file, no scripts, no network. "
            "Model and web text is shown as untrusted text.</footer>",
        ]
    )
    return page(f"litellm-fusion report · fusion/{trace.get('preset') or '?'}", body)
