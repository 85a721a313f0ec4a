"""The pieces every rendered page shares: escaping, safe links, number formats and the page shell.

Everything a model or a web page wrote is untrusted: it reaches the page only through :func:`esc` (text and
attribute values) or :func:`link` (hrefs, http and https only). The shell's Content-Security-Policy forbids
scripts, network and external assets, so a page stays inert and offline even if an escape were missed.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

__all__ = ["esc", "safe_href", "link", "num", "secs", "usd", "tokens", "dicts", "page"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
"""No scripts, no fetches, no frames; inline styles and data: images (the eval plot) only."""


def esc(value: Any) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def safe_href(url: Any) -> str | None:
    """``url`` when it is an absolute http(s) URL with a host, else None (``javascript:``, ``data:``, relative...)."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    # Browsers drop tabs and newlines inside a URL ("java\tscript:"); refuse any control or space character.
    if not text or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return text


def link(url: Any, text: Any = None) -> str:
    """An ``<a>`` to ``url`` when it is http(s), else the escaped text alone (never a live link)."""
    href = safe_href(url)
    label = esc(text or url)
    if href is None:
        return f'<span class="dead-link" title="not an http(s) link">{label}</span>'
    return f'<a href="{esc(href)}" rel="noopener noreferrer nofollow" target="_blank">{label}</a>'


def dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of a trace list; anything else (a hand-edited or older trace) reads as empty."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def num(value: Any) -> float | None:
    """``value`` when it is a real number (bools and strings are not), else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def secs(ms: Any) -> str:
    """Milliseconds as seconds, ``-`` when unknown."""
    value = num(ms)
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value < 100_000 else f"{value / 1000:.0f} s"


def usd(cost: Any) -> str:
    """A USD amount, ``unpriced`` when unknown."""
    value = num(cost)
    if value is None:
        return "unpriced"
    return "$0" if value == 0 else f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def tokens(usage: Any) -> str:
    """The total tokens of an OpenAI-shaped usage dict, ``-`` when absent."""
    total = num(usage.get("total_tokens")) if isinstance(usage, dict) else None
    return "-" if total is None else f"{total:,.0f}"


_STYLE = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --card:#ffffff; --accent:#2563eb;
  --ok:#15803d; --ok-bg:#dcfce7; --bad:#b91c1c; --bad-bg:#fee2e2; --warn:#a16207; --warn-bg:#fef3c7; --off-bg:#e5e7eb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 20px 28px 40px; }
header h1 { font-size: 20px; margin: 0 0 4px; }
header .facts { color: var(--muted); display: flex; flex-wrap: wrap; gap: 6px 18px; }
header .facts b { color: var(--ink); font-weight: 600; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px; margin-top: 16px; }
h2 { font-size: 15px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 10px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; font: inherit; }
.answer .text { font-size: 15px; max-height: 560px; overflow: auto; }
.question .text { font-size: 15px; font-weight: 500; }
.note { color: var(--muted); font-style: italic; }
.grid { display: grid; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; min-width: 0; background: #fff; }
.card.failed { background: #fff7f7; border-color: #fecaca; }
.card .head { display: flex; align-items: center; gap: 8px; margin-bottom: 4px; }
.card .model { font-weight: 600; overflow-wrap: anywhere; }
.card .meta { color: var(--muted); font-size: 12px; margin-bottom: 8px; }
.card .text { max-height: 360px; overflow: auto; font-size: 13px; }
.letter { display: inline-flex; align-items: center; justify-content: center; min-width: 22px; height: 22px; padding: 0 5px;
  border-radius: 11px; background: var(--accent); color: #fff; font-weight: 700; font-size: 12px; }
.letter.none { background: #9ca3af; }
.status { font-size: 11px; font-weight: 600; padding: 1px 7px; border-radius: 9px; text-transform: uppercase; }
.status.ok { color: var(--ok); background: var(--ok-bg); }
.status.error, .status.failed { color: var(--bad); background: var(--bad-bg); }
.status.timeout { color: var(--warn); background: var(--warn-bg); }
.status.dropped, .status.refused { color: #374151; background: var(--off-bg); }
.error-text { color: var(--bad); font-size: 13px; overflow-wrap: anywhere; }
.sources { margin: 8px 0 0; padding-left: 18px; font-size: 12px; }
.sources li { overflow-wrap: anywhere; }
a { color: var(--accent); }
.dead-link { color: var(--muted); text-decoration: line-through; }
ul.items { margin: 0; padding-left: 20px; }
ul.items li { margin: 3px 0; }
.contradiction { margin-top: 10px; }
.contradiction .topic { font-weight: 600; margin-bottom: 6px; }
.stance { border-left: 3px solid var(--accent); background: #f1f5f9; padding: 6px 8px; border-radius: 4px; font-size: 13px; min-width: 0; overflow-wrap: anywhere; }
.stance.empty { border-left-color: var(--line); background: transparent; color: var(--muted); }
.colhead { font-size: 12px; color: var(--muted); display: flex; gap: 6px; align-items: center; min-width: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.arg { overflow-wrap: anywhere; max-width: 420px; }
svg.timeline { width: 100%; height: auto; display: block; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); margin-top: 6px; }
.legend i { display: inline-block; width: 12px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
footer { color: var(--muted); font-size: 12px; margin-top: 16px; }
img.plot { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
"""


def page(title: str, body: str) -> str:
    """A complete self-contained HTML document: inline CSS, no scripts, a CSP that blocks any network."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
