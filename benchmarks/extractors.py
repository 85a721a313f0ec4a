"""Compare HTML-to-text extractors for the web fetch tool: quality, speed, install footprint.

    python benchmarks/extractors.py [--reps N]

Candidates (each skipped with a note when not importable):

1. ``stdlib``: ``litellm_fusion._web.extract.stdlib_html_to_text`` (``html.parser``, no dependency);
2. ``trafilatura``: ``litellm_fusion._web.extract.trafilatura_html_to_text`` (markdown, links, tables, no comments);
3. ``readability+markdownify``: ``readability.Document(html).summary()`` converted by ``markdownify``.

The fixture pages are built here: a semantic HTML5 article, a div-soup page whose boilerplate has other
class names, a page whose boilerplate is not marked up at all, a data-table page, and a 1.5 MB page (a
long article under a huge comment thread). Each page has known article sentences, table cells and
boilerplate sentences; an extractor scores a point per article sentence / table cell found in its output
and per boilerplate sentence absent from it (markdown links and emphasis are stripped before matching).

The install footprint is measured from the installed distributions: the candidate's requirement closure
minus what the core package (``litellm-fusion``) already pulls in, summing the files each dist records.
To benchmark the optional candidates without touching the project venv, install them to a scratch dir
(``pip install --target /tmp/x trafilatura``) and run with ``PYTHONPATH=/tmp/x``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from litellm_fusion._web.extract import stdlib_html_to_text, trafilatura_html_to_text  # noqa: E402

Extractor = Callable[[str, str | None], tuple[str | None, str]]


# -- fixture pages ---------------------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    html: str
    title: str
    sentences: list[str]
    boilerplate: list[str]
    cells: list[str] = field(default_factory=list)


ARTICLE = [
    "The river authority measured a record spring flood at the northern weir on Tuesday morning.",
    "Engineers had raised the temporary barrier by forty centimetres two days before the crest arrived.",
    "According to the hydrology team, the peak discharge reached 1,240 cubic metres per second.",
    "Residents of the low-lying Millbrook district were asked to move their cars to higher ground.",
    "The authority said that the new pumping station prevented flooding in three streets.",
    "Critics argued that the warning system still relies too heavily on text messages.",
    "A public meeting about the long-term flood plan will take place at the town hall next month.",
    "The final report on the flood is expected to be published before the end of the year.",
]
TABLE = [
    ("Station", "Peak level (m)", "Time"),
    ("Northern weir", "4.82", "06:40"),
    ("Millbrook bridge", "3.95", "08:15"),
    ("Harbour gauge", "2.31", "11:05"),
]
BOILERPLATE = {
    "nav": "Home News Sport Weather Business Culture Contact us",
    "cookie": "We use cookies to improve your experience. Accept all cookies or manage your preferences.",
    "sidebar": "Most read this week: ten gardening tips for a dry summer",
    "comments": "Great article, but what about the southern district? Posted by floodwatcher42",
    "ad": "Advertisement: Get 50% off premium rain boots at BootBarn today",
    "footer": "Copyright 2025 Riverside Gazette Ltd. All rights reserved. Privacy policy",
    "related": "Related stories: Council approves budget for new cycle lanes",
    "share": "Share this story on Facebook, Twitter or by email",
    "newsletter": "Sign up for our morning briefing newsletter and never miss a story",
}
TITLE = "Record spring flood tested the new barriers"


def _paras(sentences: list[str]) -> str:
    return "\n".join(f"<p>{s}</p>" for s in sentences)


def _table() -> str:
    head = "".join(f"<th>{c}</th>" for c in TABLE[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in TABLE[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bulk() -> tuple[str, str, str]:
    """What makes a real news page ~60 KB: a mega-menu, inline scripts/styles, a comment thread."""
    menu = "".join(
        f'<li><a href="/section/{i}">Section {i}</a><ul><li><a href="/section/{i}/a">Topic {i}a</a></li></ul></li>' for i in range(120)
    )
    script = (
        "<script>window.__STATE__ = "
        + ",".join(f'{{"id":{i},"slot":"s{i}","sizes":[[300,250],[728,90]]}}' for i in range(250))
        + ";</script>"
    )
    script += "<style>" + "".join(f".c{i}{{margin:{i}px;padding:{i % 7}px}}" for i in range(400)) + "</style>"
    thread = "".join(f'<div class="comment"><p>reader{i}: the river was high on our street too, number {i}.</p></div>' for i in range(40))
    return menu, script, thread


def semantic_page() -> Page:
    b = BOILERPLATE
    menu, script, thread = _bulk()
    nav = "".join(f'<li><a href="/{w.lower()}">{w}</a></li>' for w in b["nav"].split(" "))
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{TITLE} | Riverside Gazette</title>
<meta property="og:title" content="{TITLE}"><style>body {{ font-family: serif }}</style><script>var tracking = "x";</script>{script}</head>
<body><header class="site-header"><a href="/">Riverside Gazette</a><nav><ul>{nav}{menu}</ul></nav></header>
<div class="cookie-banner" role="dialog"><p>{b["cookie"]}</p><button>Accept</button></div>
<main><article><header><h1>{TITLE}</h1><p class="byline">By Ana Ruiz, 3 April 2025</p></header>
{_paras(ARTICLE[:4])}
<div class="ad-slot"><p>{b["ad"]}</p></div>
{_paras(ARTICLE[4:6])}
<h2>Levels at the gauges</h2>{_table()}
{_paras(ARTICLE[6:])}
<footer class="article-footer"><p>{b["share"]}</p></footer>
</article>
<section id="comments" class="comments"><h2>Comments</h2><div class="comment"><p>{b["comments"]}</p></div>{thread}</section>
</main>
<aside class="sidebar"><h3>Most read</h3><p>{b["sidebar"]}</p><p>{b["related"]}</p></aside>
<div class="newsletter-signup"><p>{b["newsletter"]}</p><form><input name="email"></form></div>
<footer class="site-footer"><p>{b["footer"]}</p></footer></body></html>"""
    return Page("semantic HTML5", html, TITLE, ARTICLE, list(b.values()), [c for row in TABLE for c in row])


def divsoup_page() -> Page:
    b = BOILERPLATE
    _, script, thread = _bulk()
    replies = thread.replace('class="comment"', 'class="post-reply"')
    nav = "".join(f'<span class="item"><a href="/{w.lower()}">{w}</a></span> ' for w in b["nav"].split(" "))
    html = f"""<html><head><title>{TITLE} - Riverside Gazette</title>{script}</head><body>
<div id="top"><div class="masthead-links">{nav}</div></div>
<div class="gdpr-notice"><p>{b["cookie"]}</p></div>
<div id="wrapper"><div class="col-main"><div class="post"><div class="post-title"><h1>{TITLE}</h1></div>
<div class="post-body">{_paras(ARTICLE[:3])}<div class="dfp-unit"><p>{b["ad"]}</p></div>{_paras(ARTICLE[3:])}
<div class="post-tools"><p>{b["share"]}</p></div></div></div>
<div id="disqus_thread"><div class="post-reply"><p>{b["comments"]}</p></div>{replies}</div></div>
<div class="col-right"><div class="box"><p>{b["sidebar"]}</p></div><div class="box"><p>{b["related"]}</p></div>
<div class="box"><p>{b["newsletter"]}</p></div></div></div>
<div id="bottom"><p>{b["footer"]}</p></div></body></html>"""
    return Page("div soup, other class names", html, TITLE, ARTICLE, list(b.values()))


def unmarked_page() -> Page:
    b = BOILERPLATE
    nav = " | ".join(f'<a href="/{w.lower()}">{w}</a>' for w in b["nav"].split(" "))
    html = f"""<html><head><title>{TITLE}</title></head><body>
<div>{nav}</div><div><p>{b["cookie"]}</p></div>
<div><h1>{TITLE}</h1>{_paras(ARTICLE)}</div>
<div><p><a href="https://facebook.example/share">{b["share"]}</a></p></div>
<div><h4>Related</h4><ul><li><a href="/related/1">{b["related"]}</a></li><li><a href="/related/2">{b["sidebar"]}</a></li></ul></div>
<div><p><a href="/newsletter">{b["newsletter"]}</a></p></div>
<div><p>{b["footer"]}</p></div></body></html>"""
    boiler = [b[k] for k in ("nav", "cookie", "share", "related", "sidebar", "newsletter", "footer")]
    return Page("boilerplate not marked up", html, TITLE, ARTICLE, boiler)


def table_page() -> Page:
    rows = [("Year", "Floods", "Damage (EUR m)", "Warnings sent")] + [
        (str(2000 + i), str(i % 5 + 1), f"{(i * 7.3) % 90:.1f}", str(1000 + i * 37)) for i in range(25)
    ]
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
    b = BOILERPLATE
    intro = ARTICLE[:2]
    html = f"""<html><head><title>Flood statistics 2000-2024</title></head><body>
<nav class="menu"><a href="/">{b["nav"]}</a></nav><div id="cookie-consent"><p>{b["cookie"]}</p></div>
<main><h1>Flood statistics 2000-2024</h1>{_paras(intro)}<table class="data">{head}{body}</table></main>
<footer><p>{b["footer"]}</p></footer></body></html>"""
    cells = [c for r in rows for c in r if not c.isdigit() or len(c) == 4]
    return Page("data table", html, "Flood statistics 2000-2024", intro, [b["nav"], b["cookie"], b["footer"]], cells)


def big_page(target: int = 1_500_000) -> Page:
    p = semantic_page()
    comment = (
        '<div class="comment"><p class="meta">reader{i} wrote:</p><p>I have lived by the river for {i} years '
        "and the water has never been this high, thanks for the coverage.</p></div>\n"
    )
    comments = []
    size, i = len(p.html), 0
    while size < target:
        c = comment.format(i=i)
        comments.append(c)
        size += len(c)
        i += 1
    html = p.html.replace("</section>", "".join(comments) + "</section>")
    return Page(f"{len(html) / 1e6:.1f} MB page", html, p.title, p.sentences, p.boilerplate, p.cells)


# -- candidates ------------------------------------------------------------------------------------------


def readability_markdownify(html: str, url: str | None = None) -> tuple[str | None, str]:
    from markdownify import markdownify
    from readability import Document

    doc = Document(html, url=url)
    return doc.short_title() or None, markdownify(doc.summary(html_partial=True), heading_style="ATX")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


CANDIDATES: list[tuple[str, Extractor, list[str], list[str]]] = [
    # name, function, modules that must import, distributions whose footprint counts
    ("stdlib html.parser", stdlib_html_to_text, [], []),
    ("trafilatura", trafilatura_html_to_text, ["trafilatura"], ["trafilatura"]),
    ("readability-lxml + markdownify", readability_markdownify, ["readability", "markdownify"], ["readability-lxml", "markdownify"]),
]


# -- footprint -------------------------------------------------------------------------------------------


def _closure(names: list[str]) -> set[str]:
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(req.name)
    return seen


def footprint_mb(dists: list[str]) -> tuple[float, int]:
    """MB of files of ``dists`` and their dependencies, minus what the core package already installs."""
    if not dists:
        return 0.0, 0
    added = _closure(dists) - _closure(["litellm-fusion"])
    total = 0
    for name in added:
        for f in metadata.distribution(name).files or []:
            try:
                total += Path(f.locate()).stat().st_size
            except OSError:
                pass
    return total / 1e6, len(added)


# -- scoring ---------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_`|#>]", " ", text)
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass
class Score:
    kept: int = 0
    kept_total: int = 0
    removed: int = 0
    removed_total: int = 0
    cells: int = 0
    cells_total: int = 0
    titles: int = 0
    small_ms: list[float] = field(default_factory=list)
    big_ms: float = 0.0
    misses: list[str] = field(default_factory=list)


def score(fn: Extractor, pages: list[Page], big: Page, reps: int) -> Score:
    s = Score()
    for page in [*pages, big]:
        title, text = fn(page.html, "https://gazette.example/2025/04/flood")
        out = _norm(text)
        for sent in page.sentences:
            s.kept_total += 1
            if _norm(sent) in out:
                s.kept += 1
            else:
                s.misses.append(f"{page.name}: lost article sentence {sent[:40]!r}")
        for b in page.boilerplate:
            s.removed_total += 1
            if _norm(b) not in out:
                s.removed += 1
            else:
                s.misses.append(f"{page.name}: kept boilerplate {b[:40]!r}")
        for c in page.cells:
            s.cells_total += 1
            s.cells += _norm(c) in out
        s.titles += (title or "").strip() == page.title
    for page in pages:
        runs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(page.html, None)
            runs.append((time.perf_counter() - t0) * 1000)
        s.small_ms.append(statistics.median(runs))
    runs = []
    for _ in range(max(1, reps // 10)):
        t0 = time.perf_counter()
        fn(big.html, None)
        runs.append((time.perf_counter() - t0) * 1000)
    s.big_ms = statistics.median(runs)
    return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20, help="timed runs per small page (the big page gets reps/10)")
    parser.add_argument("--verbose", action="store_true", help="list every lost sentence and kept boilerplate line")
    args = parser.parse_args()

    pages = [semantic_page(), divsoup_page(), unmarked_page(), table_page()]
    big = big_page()
    small_kb = statistics.mean(len(p.html) for p in pages) / 1000
    print(f"pages: {', '.join(p.name for p in pages)}, {big.name} ({len(big.html) / 1e6:.2f} MB); small pages average {small_kb:.1f} KB")
    print(f"python {sys.version.split()[0]}, {args.reps} timed runs per small page\n")
    print(
        "| extractor | boilerplate removed | article sentences kept | table cells kept | title "
        "| ms/page (small, median) | ms (1.5 MB page) | install footprint |"
    )
    print("|---|---|---|---|---|---|---|---|")
    notes = []
    for name, fn, modules, dists in CANDIDATES:
        if not all(_importable(m) for m in modules):
            print(f"| {name} | not installed | | | | | | |")
            continue
        s = score(fn, pages, big, args.reps)
        mb, count = footprint_mb(dists)
        foot = "0 (stdlib)" if not dists else f"{mb:.1f} MB ({count} dists)"
        pages_n = len(pages) + 1
        print(
            f"| {name} | {s.removed}/{s.removed_total} | {s.kept}/{s.kept_total} | {s.cells}/{s.cells_total} | {s.titles}/{pages_n} | "
            f"{statistics.mean(s.small_ms):.1f} | {s.big_ms:.0f} | {foot} |"
        )
        notes += [f"- {name}: {m}" for m in s.misses]
    if notes:
        print("\nmisses:" if args.verbose else f"\n{len(notes)} misses (--verbose lists them)")
        if args.verbose:
            print("\n".join(notes))


if __name__ == "__main__":
    main()
