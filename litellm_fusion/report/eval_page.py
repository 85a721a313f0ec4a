"""An eval run (``results.json``'s data) as one self-contained HTML page: the table, the plot, every question."""

from __future__ import annotations

import base64
from typing import Any

from litellm_fusion.report.html import dicts, esc, num, page, secs, usd

__all__ = ["eval_page"]


def _cost_text(summary: dict[str, Any]) -> str:
    text = usd(summary.get("total_cost"))
    if summary.get("unpriced"):
        return f"≥{text} (unpriced calls)" if num(summary.get("total_cost")) else "unpriced"
    return text


def _interval(summary: dict[str, Any]) -> str:
    low, high = num(summary.get("ci_low")), num(summary.get("ci_high"))
    return "-" if low is None or high is None else f"{low:.0%}–{high:.0%}"


def _of_n(summary: dict[str, Any], key: str) -> str:
    count = (summary.get("fusion_stats") or {}).get(key)
    return "-" if count is None else f"{count}/{summary.get('n')}"


def _paired(summary: dict[str, Any]) -> str:
    p = summary.get("vs_best_solo") or {}
    return "-" if not p else f"{p.get('won')}/{p.get('lost')}/{p.get('tied')} (p={num(p.get('p_value')) or 0:.2g})"


def _table(summaries: list[dict[str, Any]]) -> str:
    rows = []
    for s in summaries:
        accuracy = num(s.get("accuracy"))
        mean_tokens = num(s.get("mean_tokens"))
        rows.append(
            f"<tr><td><b>{esc(s.get('name'))}</b></td><td>{esc(s.get('kind'))}</td><td class='arg'>{esc(s.get('model'))}</td>"
            f"<td class='n'>{'-' if accuracy is None else f'{accuracy:.1%}'}</td><td class='n'>{esc(_interval(s))}</td>"
            f"<td class='n'>{esc(s.get('correct'))}/{esc(s.get('n'))}</td>"
            f"<td class='n'>{esc(_of_n(s, 'panel_any_correct'))}</td><td class='n'>{esc(_of_n(s, 'vote_correct'))}</td>"
            f"<td class='n'>{esc(_paired(s))}</td>"
            f"<td class='n'>{'-' if mean_tokens is None else f'{mean_tokens:,.0f}'}</td><td class='n'>{esc(_cost_text(s))}</td>"
            f"<td class='n'>{esc(secs(s.get('p50_latency_ms')))}</td><td class='n'>{esc(s.get('errors'))}</td></tr>"
        )
    return (
        "<table><thead><tr><th>configuration</th><th>kind</th><th>model</th><th class='n'>accuracy</th><th class='n'>95% CI</th>"
        "<th class='n'>right</th><th class='n'>oracle (any member right)</th><th class='n'>panel vote</th>"
        "<th class='n'>vs best solo W/L/T (McNemar p)</th>"
        "<th class='n'>mean tokens</th><th class='n'>total cost</th><th class='n'>p50 latency</th><th class='n'>errors</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _questions(data: dict[str, Any], names: list[str]) -> str:
    results = dicts(data.get("results"))
    ids: list[str] = []
    cell: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        qid = str(r.get("id"))
        if qid not in ids:
            ids.append(qid)
        cell[(qid, str(r.get("config")))] = r
    if not ids:
        return ""

    def mark(r: dict[str, Any] | None) -> str:
        if r is None:
            return "<td>-</td>"
        if r.get("error"):
            error = r["error"] if isinstance(r["error"], dict) else {}
            return f'<td><span class="status error" title="{esc(error.get("message"))}">{esc(error.get("type") or "error")}</span></td>'
        if r.get("correct"):
            return '<td><span class="status ok">right</span></td>'
        return f'<td><span class="status timeout">wrong</span> <span class="note">read {esc(r.get("extracted"))}</span></td>'

    expected = {str(r.get("id")): r.get("expected") for r in results}
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td>{esc(qid)}</td><td class='n'>{esc(expected.get(qid))}</td>{''.join(mark(cell.get((qid, n))) for n in names)}</tr>"
        for qid in ids
    )
    return f'<section id="questions"><h2>Every question</h2><table><thead><tr><th>question</th><th class="n">expected</th>{head}</tr></thead><tbody>{body}</tbody></table></section>'


def eval_page(data: dict[str, Any], *, plot_png: bytes | None = None, plot_note: str | None = None) -> str:
    """The page of one eval run: ``data`` is ``EvalReport.to_dict()`` (the ``results.json`` file); ``plot_png``
    the plot's PNG bytes, inlined as a data: image, or ``plot_note`` saying why there is none."""
    summaries = dicts(data.get("summaries"))
    names = [str(s.get("name")) for s in summaries]
    duration = num(data.get("duration_s"))
    facts = [
        f"questions <b>{esc(data.get('questions_path'))}</b> ({esc(data.get('n_questions'))})",
        f"configurations <b>{len(summaries)}</b>",
        f"concurrency <b>{esc(data.get('concurrency'))}</b>" if data.get("concurrency") is not None else "",
        f"took <b>{esc(secs(duration * 1000))}</b>" if duration is not None else "",
        f"started <b>{esc(data.get('started_at'))}</b>" if data.get("started_at") else "",
    ]
    facts = [fact for fact in facts if fact]
    if plot_png:
        plot = f'<img class="plot" alt="accuracy against cost and latency" src="data:image/png;base64,{base64.b64encode(plot_png).decode("ascii")}">'
    else:
        plot = f'<p class="note">{esc(plot_note or "no plot")}</p>'
    body = "\n".join(
        [
            f'<header id="summary"><h1>litellm-fusion eval</h1><div class="facts">{"".join(f"<span>{f}</span>" for f in facts)}</div></header>',
            f'<section id="table"><h2>Results</h2>{_table(summaries)}</section>',
            f'<section id="plot"><h2>Plot</h2>{plot}</section>',
            _questions(data, names),
            "<footer>Written by litellm-fusion eval: one self-contained file, no scripts, no network.</footer>",
        ]
    )
    return page("litellm-fusion eval", body)
