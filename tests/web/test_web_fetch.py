"""Fetcher against a local fixture server on 127.0.0.1, admitted only through the test allowance.

Covers extraction (article kept, boilerplate dropped, title), the decoded-byte cap (plain and gzip), the
content-type allowlist, the whole-fetch timeout, the redirect cap, robots.txt, charsets, truncation and
the cookie-less client. Each check has a counterpart that passes, so the assertion can fail.
"""

from __future__ import annotations

import gzip
import ipaddress
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from litellm_fusion._web import extract
from litellm_fusion._web.fetch import Fetcher, FetchLimits, decode_body

ARTICLE_SENTENCES = [
    "The river authority measured a record spring flood at the northern weir on Tuesday morning.",
    "Engineers had raised the temporary barrier by forty centimetres two days before the crest arrived.",
    "According to the hydrology team, the peak discharge reached 1,240 cubic metres per second.",
    "Residents of the low-lying Millbrook district were asked to move their cars to higher ground.",
]
BOILERPLATE = {
    "nav": "Home News Sport Weather",
    "cookie": "We use cookies to improve your experience",
    "sidebar": "Most read this week: gardening tips",
    "comments": "Great article, posted by floodwatcher42",
    "ad": "Get 50% off premium rain boots",
    "footer": "Copyright 2025 Riverside Gazette Ltd",
}
TITLE = "Record spring flood tested the new barriers"

ARTICLE_HTML = f"""<!doctype html><html><head><meta charset="utf-8"><title>{TITLE} | Riverside Gazette</title>
<script>var tracking = "SCRIPT-TEXT-MUST-GO";</script><style>.x {{ color: red }}</style></head><body>
<header><nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a> <a href="/weather">Weather</a></nav></header>
<div class="cookie-banner"><p>{BOILERPLATE["cookie"]}</p></div>
<main><article><h1>{TITLE}</h1>
<p>{ARTICLE_SENTENCES[0]}</p><p>{ARTICLE_SENTENCES[1]}</p>
<div class="ad-slot"><p>{BOILERPLATE["ad"]}</p></div>
<p>{ARTICLE_SENTENCES[2]} See <a href="/report.html">the full report</a>.</p>
<table><tr><th>Station</th><th>Peak level (m)</th></tr><tr><td>Northern weir</td><td>4.82</td></tr></table>
<p>{ARTICLE_SENTENCES[3]}</p></article>
<section id="comments"><p>{BOILERPLATE["comments"]}</p></section></main>
<aside class="sidebar"><p>{BOILERPLATE["sidebar"]}</p></aside>
<footer><p>{BOILERPLATE["footer"]}</p></footer></body></html>"""

LATIN_TEXT = "Café crème, naïve façade – 5 € «très» bien"  # "–" and "€" exist in windows-1252, not ISO-8859-1
CYRILLIC_TEXT = "Наводнение проверило новые барьеры"


class Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.user_agents: list[str] = []
        self.cookies_seen: list[str | None] = []
        self.accept_encodings: list[str] = []
        self.robots: tuple[int, str] = (200, "User-agent: *\nDisallow: /private/\n")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str | None = "text/html; charset=utf-8", **headers: str) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if "Content_Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: C901 - a route table
        path = self.path
        self.server.hits[path] += 1
        self.server.user_agents.append(self.headers.get("User-Agent", ""))
        if path == "/robots.txt":
            status, text = self.server.robots
            self._send(status, text.encode(), "text/plain")
        elif path in ("/article", "/private/page"):
            self._send(200, ARTICLE_HTML.encode())
        elif path == "/big":  # 3 MB, streamed, no Content-Length: only the streaming cap can stop it
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            chunk = b"<p>" + b"x" * 65_530 + b"</p>"
            try:
                for _ in range(3_000_000 // len(chunk) + 1):
                    self.wfile.write(chunk)
            except OSError:
                pass
        elif path == "/bomb":  # ~3 KB on the wire, 3 MB decoded
            self._send(200, gzip.compress(b"a" * 3_000_000), "text/plain", Content_Encoding="gzip")
        elif path == "/small-gzip":
            self._send(200, gzip.compress(b"gzip body ok " * 100), "text/plain", Content_Encoding="gzip")
        elif path == "/brotli":
            self._send(200, b"\x0b\x02\x80hello\x03", "text/plain", Content_Encoding="br")
        elif path == "/binary":
            self._send(200, b"\x00\x01binary" * 10, "application/octet-stream")
        elif path == "/no-type":
            self._send(200, b"untyped", None)
        elif path == "/json":
            self._send(200, b'{"answer": 42}', "application/json")
        elif path == "/feed":
            self._send(200, b"<rss><channel><title>feed</title></channel></rss>", "application/rss+xml")
        elif path == "/slow":  # a byte every 0.1 s: no single read times out, the whole fetch must
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            if n == 0:
                self._send(200, ARTICLE_HTML.encode())
            else:
                self._send(302, b"", Location=f"/hop/{n - 1}")
        elif path == "/to-private":
            self._send(302, b"", Location="/private/page")
        elif path == "/latin1":
            body = f"<html><head><title>Accents</title></head><body><p>{LATIN_TEXT}</p></body></html>".encode("cp1252")
            self._send(200, body, "text/html; charset=iso-8859-1")
        elif path == "/cp1251":
            body = f"<html><head><title>Accents</title></head><body><p>{CYRILLIC_TEXT}</p></body></html>".encode("cp1251")
            self._send(200, body, "text/html; charset=windows-1251")
        elif path == "/meta-charset":
            meta = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
            body = f"<html><head>{meta}<title>Accents</title></head><body><p>{CYRILLIC_TEXT}</p></body></html>"
            self._send(200, body.encode("koi8-r"), "text/html")
        elif path == "/long":
            self._send(200, ("word " * 10_000).encode(), "text/plain; charset=utf-8")
        elif path == "/set-cookie":
            self._send(200, b"<p>cookie set</p>", Set_Cookie="session=s3cr3t; Path=/")
        elif path == "/echo-cookie":
            self.server.cookies_seen.append(self.headers.get("Cookie"))
            self.server.accept_encodings.append(self.headers.get("Accept-Encoding", ""))
            self._send(200, b"<p>echo</p>")
        else:
            self._send(404, b"<p>not found</p>")


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.shutdown()
    server.server_close()


def limits_for(site: Site, **overrides: Any) -> FetchLimits:
    return FetchLimits(allowed_ports=frozenset({80, 443, site.port}), **overrides)


def allowance(site: Site):
    """The test-only allowance: exactly (127.0.0.1, the fixture port)."""
    only = (ipaddress.ip_address("127.0.0.1"), site.port)
    return lambda ip, port: (ip, port) == only


@pytest.fixture
async def fetcher(site: Site) -> AsyncIterator[Fetcher]:
    site.robots = (200, "User-agent: *\nDisallow: /private/\n")
    async with Fetcher(limits_for(site), allow=allowance(site)) as f:
        yield f


# -- extraction --------------------------------------------------------------------------------------------


async def test_article_is_extracted_and_boilerplate_dropped(fetcher: Fetcher, site: Site) -> None:
    result = await fetcher.fetch(site.url("/article"))
    assert result.error is None, result.error
    assert result.status == 200 and result.content_type == "text/html; charset=utf-8"
    assert result.title == TITLE
    for sentence in ARTICLE_SENTENCES:
        assert sentence in result.content
    for name, marker in BOILERPLATE.items():
        assert marker not in result.content, name
    assert "SCRIPT-TEXT-MUST-GO" not in result.content and "color: red" not in result.content
    assert "Northern weir" in result.content and "4.82" in result.content
    assert result.truncated is False and result.final_url == site.url("/article")


EXTRACTORS = [("stdlib", extract.stdlib_html_to_text), ("trafilatura", extract.trafilatura_html_to_text)]


@pytest.mark.parametrize(("name", "fn"), EXTRACTORS, ids=[n for n, _ in EXTRACTORS])
def test_each_extractor_keeps_the_article(name: str, fn: Any) -> None:
    if name == "trafilatura":
        pytest.importorskip("trafilatura")
    title, text = fn(ARTICLE_HTML, "https://gazette.example/2025/flood")
    assert title == TITLE
    for sentence in ARTICLE_SENTENCES:
        assert sentence in text
    assert "https://gazette.example/report.html" in text  # links kept, made absolute
    for name_, marker in BOILERPLATE.items():
        assert marker not in text, name_


def test_stdlib_extractor_markdown_shape() -> None:
    title, text = extract.stdlib_html_to_text(ARTICLE_HTML, "https://gazette.example/2025/flood")
    assert f"# {TITLE}" in text
    assert "| Station | Peak level (m) |\n| --- | --- |\n| Northern weir | 4.82 |" in text
    assert "[the full report](https://gazette.example/report.html)" in text
    # Without <main>/<article> everything not marked as boilerplate is kept.
    _, plain = extract.stdlib_html_to_text("<body><div class='x'><p>one</p><ul><li>a<li>b</ul></div><nav>menu</nav></body>")
    assert plain == "one\n\n- a\n- b"


def test_stdlib_extractor_keeps_only_main_content_when_present() -> None:
    body = "".join(f"<p>{s}</p>" for s in ARTICLE_SENTENCES)
    html = (
        "<body><div><p>Unmarked promo outside the article</p></div>"
        f"<main><h1>Title</h1>{body}<script>inline_script_in_main()</script><style>.a{{}}</style>"
        "<div hidden>hidden text</div><div style='display: none'>invisible text</div></main></body>"
    )
    _, text = extract.stdlib_html_to_text(html)
    assert ARTICLE_SENTENCES[0] in text and "# Title" in text
    for gone in ("Unmarked promo", "inline_script_in_main", ".a{", "hidden text", "invisible text"):
        assert gone not in text
    # A stray tiny <main> is not taken for the content.
    _, text = extract.stdlib_html_to_text(f"<body><main>menu</main><div>{body}</div></body>")
    assert ARTICLE_SENTENCES[0] in text and "menu" in text


async def test_extractor_runs_off_the_event_loop(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []

    def spy(html: str, url: str | None = None) -> tuple[str | None, str]:
        threads.append(threading.current_thread().name)
        return extract.stdlib_html_to_text(html, url)

    monkeypatch.setattr("litellm_fusion._web.fetch.html_to_text", spy)
    async with Fetcher(limits_for(site), allow=allowance(site)) as f:
        assert (await f.fetch(site.url("/article"))).error is None
    assert threads and threads[0] != threading.main_thread().name


# -- size, type, time --------------------------------------------------------------------------------------


async def test_byte_cap_refuses_a_3mb_body(fetcher: Fetcher, site: Site) -> None:
    result = await fetcher.fetch(site.url("/big"))
    assert result.error == "too large" and result.content == ""
    async with Fetcher(limits_for(site, max_bytes=4_000_000, max_chars=10), allow=allowance(site)) as roomy:
        ok = await roomy.fetch(site.url("/big"))
    assert ok.error is None and ok.truncated is True  # the same body fits under a larger cap


async def test_byte_cap_counts_decoded_bytes(fetcher: Fetcher, site: Site) -> None:
    assert (await fetcher.fetch(site.url("/bomb"))).error == "too large"
    small = await fetcher.fetch(site.url("/small-gzip"))
    assert small.error is None and small.content.startswith("gzip body ok")


async def test_unrequested_content_encoding_is_refused(fetcher: Fetcher, site: Site) -> None:
    assert (await fetcher.fetch(site.url("/brotli"))).error == "unsupported content-encoding br"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/binary", "unsupported content-type application/octet-stream"),
        ("/no-type", "unsupported content-type (none)"),
        ("/json", None),
        ("/feed", None),
    ],
)
async def test_content_type_allowlist(fetcher: Fetcher, site: Site, path: str, error: str | None) -> None:
    result = await fetcher.fetch(site.url(path))
    assert result.error == error
    if error is None:
        assert result.content  # text types pass through unchanged
    else:
        assert result.content == "" and result.status == 200


async def test_whole_fetch_timeout_on_a_slow_body(site: Site) -> None:
    async with Fetcher(limits_for(site, timeout=1.0), allow=allowance(site)) as f:
        started = time.monotonic()
        result = await f.fetch(site.url("/slow"))
        elapsed = time.monotonic() - started
    assert result.error == "timeout"
    assert 0.9 < elapsed < 3.0  # the wall clock, not a per-read timeout (a byte arrives every 0.1 s)


async def test_http_errors_are_reported(fetcher: Fetcher, site: Site) -> None:
    result = await fetcher.fetch(site.url("/missing"))
    assert result.error == "HTTP 404" and result.status == 404 and result.content == ""


# -- redirects and robots ----------------------------------------------------------------------------------


async def test_redirect_cap(fetcher: Fetcher, site: Site) -> None:
    ok = await fetcher.fetch(site.url("/hop/5"))  # exactly max_redirects hops: followed
    assert ok.error is None and ok.final_url == site.url("/hop/0") and ok.title == TITLE
    too_many = await fetcher.fetch(site.url("/hop/6"))
    assert too_many.error == "too many redirects"
    assert site.hits["/hop/0"] == 1  # the 6-hop chain stopped before its last hop


async def test_robots_disallow_is_honoured(site: Site) -> None:
    site.robots = (200, "User-agent: *\nDisallow: /private/\n")
    site.hits.clear()
    async with Fetcher(limits_for(site), allow=allowance(site)) as f:
        blocked = await f.fetch(site.url("/private/page"))
        allowed = await f.fetch(site.url("/article"))
    assert blocked.error == "robots.txt disallows" and blocked.content == ""
    assert site.hits["/private/page"] == 0
    assert allowed.error is None
    assert site.hits["/robots.txt"] == 1  # cached per host for the fetcher's life
    assert any(ua.startswith("litellm-fusion/") for ua in site.user_agents)
    async with Fetcher(limits_for(site, respect_robots=False), allow=allowance(site)) as ignoring:
        assert (await ignoring.fetch(site.url("/private/page"))).error is None


async def test_robots_is_checked_on_every_redirect_hop(fetcher: Fetcher, site: Site) -> None:
    site.hits.clear()
    result = await fetcher.fetch(site.url("/to-private"))
    assert result.error == "robots.txt disallows" and result.final_url == site.url("/private/page")
    assert site.hits["/to-private"] == 1 and site.hits["/private/page"] == 0


async def test_robots_for_our_user_agent(site: Site) -> None:
    site.robots = (200, "User-agent: litellm-fusion\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    async with Fetcher(limits_for(site), allow=allowance(site)) as f:
        assert (await f.fetch(site.url("/article"))).error == "robots.txt disallows"
    site.robots = (200, "User-agent: otherbot\nDisallow: /\n")
    async with Fetcher(limits_for(site), allow=allowance(site)) as f:
        assert (await f.fetch(site.url("/article"))).error is None


@pytest.mark.parametrize(("status", "error"), [(401, "robots.txt disallows"), (403, "robots.txt disallows"), (404, None), (500, None)])
async def test_robots_fetch_failures(site: Site, status: int, error: str | None) -> None:
    site.robots = (status, "User-agent: *\nDisallow: /\n")
    async with Fetcher(limits_for(site), allow=allowance(site)) as f:
        assert (await f.fetch(site.url("/article"))).error == error


# -- text --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "text"), [("/latin1", LATIN_TEXT), ("/cp1251", CYRILLIC_TEXT), ("/meta-charset", CYRILLIC_TEXT)])
async def test_non_utf8_pages_decode(fetcher: Fetcher, site: Site, path: str, text: str) -> None:
    result = await fetcher.fetch(site.url(path))
    assert result.error is None
    assert text in result.content and result.title == "Accents"


def test_decode_body_fallbacks() -> None:
    assert decode_body("é".encode("cp1252"), None, html=False) == "é"  # not UTF-8: cp1252
    assert decode_body("é".encode(), None, html=False) == "é"
    assert decode_body(b"\xef\xbb\xbfhi", "iso-8859-1", html=False) == "hi"  # the BOM wins
    assert decode_body("€".encode("cp1252"), "no-such-codec", html=False) == "€"


async def test_truncation_is_marked(site: Site) -> None:
    async with Fetcher(limits_for(site, max_chars=1000), allow=allowance(site)) as f:
        long = await f.fetch(site.url("/long"))
        short = await f.fetch(site.url("/json"))
    assert long.error is None and long.truncated is True and len(long.content) == 1000
    assert short.truncated is False and short.content == '{"answer": 42}'


async def test_no_cookies_are_kept(fetcher: Fetcher, site: Site) -> None:
    site.cookies_seen.clear()
    assert (await fetcher.fetch(site.url("/set-cookie"))).error is None
    assert (await fetcher.fetch(site.url("/echo-cookie"))).error is None
    assert site.cookies_seen == [None]
    assert site.accept_encodings == ["identity, gzip"]  # never br/zstd: no one-step decompression bombs


async def test_fetch_never_raises(fetcher: Fetcher) -> None:
    for url in ("", "not a url", "http://", "http://[::1", "https://exa mple.com/"):
        result = await fetcher.fetch(url)
        assert result.error is not None and result.error.startswith("blocked: ")
