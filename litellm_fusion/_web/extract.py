"""HTML to clean text (markdown-ish) for the web fetch tool.

Two extractors, chosen on measured quality, speed and dependency weight (``benchmarks/extractors.py``):

- :func:`stdlib_html_to_text`, the default: ``html.parser`` only. Keeps headings, paragraphs, list items,
  table rows and link text (as ``[text](absolute-url)`` so the model can fetch what a page links to); drops
  script/style/nav/header/footer/aside/form, ARIA landmarks of the same kind, hidden elements and elements
  whose class/id names cookie banners, sidebars, comments, ads, footers or navigation. When the page has
  ``<main>``/``<article>`` content, only that is kept.
- trafilatura (optional extra ``web``: ``trafilatura>=2.3,<3``), used when importable: its readability and
  boilerplate heuristics also catch boilerplate that is not marked up.

Measured on this repo's fixtures (``benchmarks/extractors.py``, 2-core machine under load): boilerplate
removed stdlib 21/37, trafilatura 33/37, readability-lxml+markdownify 29/37; every extractor kept all
34 article sentences and 103 table cells. Speed per ~20 KB page: stdlib ~6-18 ms, trafilatura ~55 ms,
readability ~80 ms; on a 1.5 MB page 0.35-1 s, ~2-4.5 s and ~3.5-6 s. Footprint beyond the core install:
0, 55 MB and 16 MB. trafilatura wins on quality, so it is preferred when installed; the stdlib one is the
zero-dependency default and is exact on semantic HTML5 (``<main>``/``<article>``, ``<nav>``, ``<aside>``,
``<footer>``, named cookie/ad/comment blocks) but keeps boilerplate that has no tell-tale markup.

Both take at most :data:`MAX_INPUT_CHARS` characters of HTML; callers run them in a worker thread.
"""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

__all__ = ["MAX_INPUT_CHARS", "html_to_text", "stdlib_html_to_text", "trafilatura_html_to_text", "extractor_name"]

MAX_INPUT_CHARS = 1_000_000
"""HTML beyond this many characters is not parsed: bounds the worker-thread time (see the benchmark's 1.5 MB column)."""

_SKIP_TAGS = frozenset(
    "script style noscript template svg math canvas iframe object embed nav aside form button select textarea dialog".split()
)
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_BLOCK = frozenset(
    "p div section article main header footer h1 h2 h3 h4 h5 h6 li dt dd tr table ul ol dl pre blockquote figure figcaption "
    "address details summary hr br caption".split()
)
_SKIP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "dialog", "alertdialog", "menu", "menubar"})
# Matched as substrings of class/id values ...
_MARKERS_SUB = ("cookie", "consent", "banner", "sidebar", "comment", "footer", "advert", "sponsor", "newsletter", "popup", "breadcrumb")
# ... and as whole tokens (split on space, '-', '_'): short words that occur inside innocent names.
_MARKERS_TOKEN = frozenset("ad ads adsense nav navbar navigation menu share social related promo modal subscribe widget".split())
# html.parser does not apply HTML's end-tag omission rules: a new <li> closes an open <li> (and <p>), etc.
_IMPLIED_CLOSE = {
    "p": ("p",), "li": ("li", "p"), "dt": ("dt", "dd", "p"), "dd": ("dt", "dd", "p"),
    "tr": ("tr", "td", "th", "p"), "td": ("td", "th", "p"), "th": ("td", "th", "p"),
}  # fmt: skip
_TOKEN_SPLIT = re.compile(r"[\s\-_]+")
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def _is_boilerplate(tag: str, attrs: dict[str, str], in_content: bool) -> bool:
    if tag in _SKIP_TAGS or "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if tag in ("header", "footer") and not (tag == "header" and in_content):
        return True  # a <header> inside <article>/<main> holds the headline: keep it
    if attrs.get("role", "").lower() in _SKIP_ROLES:
        return True
    style = attrs.get("style", "").replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    names = f"{attrs.get('class', '')} {attrs.get('id', '')}".lower()
    if not names.strip():
        return False
    return any(m in names for m in _MARKERS_SUB) or any(t in _MARKERS_TOKEN for t in _TOKEN_SPLIT.split(names))


class _Extractor(HTMLParser):
    def __init__(self, base_url: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, starts a skipped subtree, is main content)
        self.skip = 0  # open skipped subtrees
        self.content = 0  # open <main>/<article> elements
        self.blocks: list[tuple[str, bool]] = []  # (text, inside main content)
        self.parts: list[str] = []
        self.prefix = ""
        self.pre = 0
        self.link: str | None = None
        self.link_start = 0
        self.row: list[str] | None = None
        self.table_rows = 0
        self.cell_start: int | None = None
        self.title_parts: list[str] | None = None
        self.title: str | None = None
        self.og_title: str | None = None
        self.h1: str | None = None

    # -- blocks --------------------------------------------------------------------------------------
    def _flush(self) -> None:
        if self.row is not None:  # inside a table row: cells are joined when the row ends
            return
        text = "".join(self.parts)
        text = text.strip("\n") if self.pre else _SPACES.sub(" ", text).strip()
        self.parts = []
        if text:
            self.blocks.append((self.prefix + text, self.content > 0))
            if self.prefix.startswith("# ") and self.h1 is None:
                self.h1 = text
            self.prefix = ""

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: (v or "") for k, v in attrs_list}
        if tag == "meta" and attrs.get("property", attrs.get("name", "")).lower() == "og:title" and self.og_title is None:
            self.og_title = _SPACES.sub(" ", attrs.get("content", "")).strip() or None
        if tag == "title" and self.title is None:
            self.title_parts = []
        if tag in _VOID:
            if tag in ("br", "hr") and not self.skip:
                self._flush()
            return
        implied = _IMPLIED_CLOSE.get(tag)
        while implied and self.stack and self.stack[-1][0] in implied:
            self.handle_endtag(self.stack[-1][0])
        is_content = tag in ("main", "article") or attrs.get("role") == "main"
        skipped = not self.skip and _is_boilerplate(tag, attrs, self.content > 0 or is_content)
        self.stack.append((tag, skipped, is_content))
        if skipped:
            self._flush()
            self.skip += 1
        if self.skip:
            return
        if is_content:
            self._flush()
            self.content += 1
        if tag in _BLOCK:
            self._flush()
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.prefix = "#" * int(tag[1]) + " "
        elif tag in ("li", "dt"):
            self.prefix = "- "
        elif tag == "pre":
            self.pre += 1
        elif tag == "tr":
            self.row = []
        elif tag == "table":
            self.table_rows = 0
        elif tag in ("td", "th") and self.row is not None:
            self.cell_start = len(self.parts)
        elif tag == "a":
            href = attrs.get("href", "").strip()
            absolute = urljoin(self.base_url or "", href) if href else ""
            self.link = absolute if urlsplit(absolute).scheme in ("http", "https") else None
            self.link_start = len(self.parts)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.title_parts is not None:
            self.title = _SPACES.sub(" ", "".join(self.title_parts)).strip() or None
            self.title_parts = None
        if not any(t == tag for t, _, _ in self.stack):
            return  # stray end tag
        while self.stack:
            open_tag, skipped, is_content = self.stack.pop()
            self._close(open_tag, skipped, is_content)
            if open_tag == tag:
                break

    def _close(self, tag: str, skipped: bool, is_content: bool) -> None:
        if skipped:
            self.skip -= 1
            return
        if self.skip:
            return
        if tag == "a" and self.link:
            text = _SPACES.sub(" ", "".join(self.parts[self.link_start :])).strip()
            del self.parts[self.link_start :]
            self.parts.append(f"[{text}]({self.link})" if text else "")
            self.link = None
        elif tag in ("td", "th") and self.row is not None and self.cell_start is not None:
            cell = _SPACES.sub(" ", "".join(self.parts[self.cell_start :])).strip().replace("|", "\\|")
            del self.parts[self.cell_start :]
            self.row.append(cell)
            self.cell_start = None
        elif tag == "tr" and self.row is not None:
            row, self.row, self.parts = self.row, None, []
            if any(row):
                self.blocks.append(("| " + " | ".join(row) + " |", self.content > 0))
                if self.table_rows == 0:
                    self.blocks.append(("|" + " --- |" * len(row), self.content > 0))
                self.table_rows += 1
            return
        elif tag == "pre":
            code = "".join(self.parts).strip("\n")
            self.parts = []
            self.pre -= 1
            if code.strip():
                self.blocks.append(("```\n" + code + "\n```", self.content > 0))
        if tag in _BLOCK:
            self._flush()
            if tag in ("h1", "h2", "h3", "h4", "h5", "h6", "li", "dt"):
                self.prefix = ""
        if is_content:
            self._flush()
            self.content -= 1

    def handle_data(self, data: str) -> None:
        if self.title_parts is not None:
            self.title_parts.append(data)
            return
        if not self.skip:
            self.parts.append(data)

    def result(self) -> tuple[str | None, str]:
        self._flush()
        blocks = self.blocks
        main = [b for b in blocks if b[1]]
        if sum(len(t) for t, _ in main) >= 200:  # a real <main>/<article>, not a stray wrapper
            blocks = main
        lines: list[str] = []
        for text, _ in blocks:
            is_row = text.startswith("| ")
            if lines and not (is_row and lines[-1].startswith("| ")) and not (text.startswith("- ") and lines[-1].startswith("- ")):
                lines.append("")
            lines.append(text)
        title = self.og_title or self.title or self.h1
        if self.h1 and self.title and self.h1 in self.title and not self.og_title:
            title = self.h1  # "<h1> | Site name"
        return title, "\n".join(lines).strip()


def stdlib_html_to_text(html: str, url: str | None = None) -> tuple[str | None, str]:
    """``(title, text)`` with the standard library only (see the module docstring)."""
    parser = _Extractor(url)
    parser.feed(html[:MAX_INPUT_CHARS])
    parser.close()
    return parser.result()


def trafilatura_html_to_text(html: str, url: str | None = None) -> tuple[str | None, str]:
    """``(title, text)`` with trafilatura (extra ``web``); raises ImportError when it is not installed."""
    import trafilatura

    html = html[:MAX_INPUT_CHARS]
    text = trafilatura.extract(
        html, url=url, output_format="markdown", include_links=True, include_tables=True, include_comments=False, favor_precision=False
    )
    meta = trafilatura.extract_metadata(html, default_url=url)
    title = meta.title if meta is not None and meta.title else None
    if not text:  # index pages and the like: trafilatura's own whole-page fallback
        text = trafilatura.html2txt(html) or ""
    if title is None:
        title = stdlib_html_to_text(html[:200_000], url)[0]
    return title, text.strip()


@functools.cache
def extractor_name() -> str:
    """``"trafilatura"`` when the ``web`` extra is installed, else ``"stdlib"``."""
    try:
        import trafilatura  # noqa: F401
    except ImportError:
        return "stdlib"
    return "trafilatura"


def html_to_text(html: str, url: str | None = None) -> tuple[str | None, str]:
    """``(title, text)`` of an HTML page: trafilatura when installed, else the stdlib extractor."""
    if extractor_name() == "trafilatura":
        return trafilatura_html_to_text(html, url)
    return stdlib_html_to_text(html, url)
