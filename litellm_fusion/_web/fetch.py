"""Fetch a model-chosen URL safely and return clean text: the ``web_fetch`` tool's engine.

Every hop (redirects included) is URL-checked here (:func:`~.ssrf.parse_target`), robots.txt-checked,
and address-checked at connect time by the guarded client (:func:`~.ssrf.make_guarded_client`). The body
is streamed under a decoded-byte cap, only text-like content types are read, and the whole fetch runs
under one wall-clock timeout. :meth:`Fetcher.fetch` never raises for network or policy errors: the
reason is in ``FetchResult.error``.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from litellm_fusion._web.extract import MAX_INPUT_CHARS, html_to_text
from litellm_fusion._web.ssrf import Allow, FetchBlocked, make_guarded_client, parse_target

__all__ = ["FetchLimits", "FetchResult", "Fetcher"]

log = logging.getLogger(__name__)

_TEXT_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain", "text/markdown", "application/json", "application/xml"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ROBOTS_MAX_BYTES = 500_000  # what Google reads of a robots.txt
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# WHATWG: these labels mean windows-1252 in HTML.
_AS_CP1252 = frozenset({"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "iso8859-1", "l1", "cp819"})


@dataclass(frozen=True, kw_only=True)
class FetchLimits:
    """How much one fetch may read and how long it may take; ``web.fetch`` in the spec sets them."""

    max_bytes: int = 2_000_000
    max_chars: int = 20_000
    timeout: float = 15.0
    connect_timeout: float = 5.0
    max_redirects: int = 5
    allowed_ports: frozenset[int] = frozenset({80, 443})
    respect_robots: bool = True
    user_agent: str = "litellm-fusion/0.1"


@dataclass(frozen=True, kw_only=True)
class FetchResult:
    """One fetch's outcome: the page's text (cut at ``max_chars``), or the reason in ``error``."""

    url: str
    final_url: str
    title: str | None = None
    content: str = ""
    truncated: bool = False
    error: str | None = None
    status: int | None = None
    content_type: str | None = None


class _Failed(Exception):
    """An error outcome with its message, raised inside a fetch and turned into ``FetchResult.error``."""


@dataclass
class _Hop:
    url: str
    status: int | None = None
    content_type: str | None = None


def allowed_content_type(media_type: str) -> bool:
    """Whether a response of this media type is read: text, HTML, JSON and XML only."""
    return media_type in _TEXT_TYPES or media_type.endswith("+xml") or media_type.endswith("+json")


def decode_body(body: bytes, charset: str | None, *, html: bool) -> str:
    """Bytes to text: BOM, then the header charset, then ``<meta charset>`` (HTML), then UTF-8, then cp1252."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(codec, errors="replace")
    if not charset and html and (m := _META_CHARSET.search(body[:4096])):
        charset = m.group(1).decode("ascii")
    if charset:
        label = charset.strip().lower()
        label = "cp1252" if label in _AS_CP1252 else label
        try:
            return body.decode(codecs.lookup(label).name, errors="replace")
        except LookupError:
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def _robots_checker(text: str, user_agent: str) -> Callable[[str], bool]:
    try:
        from protego import Protego
    except ImportError:  # stdlib fallback: no wildcard rules, first match wins
        from urllib.robotparser import RobotFileParser

        rp = RobotFileParser()
        rp.parse(text.splitlines())
        return lambda url: rp.can_fetch(user_agent, url)
    parsed = Protego.parse(text)
    return lambda url: parsed.can_fetch(url, user_agent)


class Fetcher:
    """SSRF-guarded page fetcher. ``allow`` is the TEST-ONLY allowance of the guarded client (never set by
    default); a caller-supplied ``client`` must come from :func:`~.ssrf.make_guarded_client` (``allow`` is
    then ignored) and is not closed by :meth:`aclose`."""

    def __init__(self, limits: FetchLimits = FetchLimits(), *, allow: Allow | None = None, client: httpx.AsyncClient | None = None) -> None:
        self.limits = limits
        self._owns_client = client is None
        self._client = client or make_guarded_client(timeout=httpx.Timeout(limits.timeout, connect=limits.connect_timeout), allow=allow)
        self._headers = {"User-Agent": limits.user_agent, "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5"}
        self._robots: dict[str, Callable[[str], bool]] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, unless the caller supplied it."""
        if self._owns_client:
            await self._client.aclose()

    async def fetch(self, url: str) -> FetchResult:
        """Fetch ``url`` and return its text; errors are in ``error`` (this never raises for them)."""
        hop = _Hop(url)
        try:
            async with asyncio.timeout(self.limits.timeout):
                title, content, truncated = await self._fetch(url, hop)
        except FetchBlocked as exc:
            return self._error(url, hop, f"blocked: {exc}")
        except (TimeoutError, httpx.TimeoutException):
            return self._error(url, hop, "timeout")
        except _Failed as exc:
            return self._error(url, hop, str(exc))
        except httpx.HTTPError as exc:
            return self._error(url, hop, f"request failed: {type(exc).__name__}: {exc}".rstrip(": "))
        except Exception as exc:  # never raise into the tool loop
            log.warning("web fetch of %s failed", url, exc_info=True)
            return self._error(url, hop, f"fetch failed: {type(exc).__name__}")
        return FetchResult(
            url=url, final_url=hop.url, title=title, content=content, truncated=truncated, status=hop.status, content_type=hop.content_type
        )

    @staticmethod
    def _error(url: str, hop: _Hop, error: str) -> FetchResult:
        return FetchResult(url=url, final_url=hop.url, error=error, status=hop.status, content_type=hop.content_type)

    async def _fetch(self, url: str, hop: _Hop) -> tuple[str | None, str, bool]:
        response = await self._open(url, hop, check_robots=self.limits.respect_robots)
        try:
            if not 200 <= response.status_code < 300:
                raise _Failed(f"HTTP {response.status_code}")
            media_type = (hop.content_type or "").split(";")[0].strip().lower()
            if not allowed_content_type(media_type):
                raise _Failed(f"unsupported content-type {media_type or '(none)'}")
            body = await self._read(response, self.limits.max_bytes)
        finally:
            await response.aclose()
        is_html = media_type in _HTML_TYPES
        text = decode_body(body, response.charset_encoding, html=is_html)
        title: str | None = None
        cut = False
        if is_html:
            cut = len(text) > MAX_INPUT_CHARS
            title, text = await asyncio.to_thread(html_to_text, text[:MAX_INPUT_CHARS], hop.url)
        if len(text) > self.limits.max_chars:
            text, cut = text[: self.limits.max_chars], True
        return title, text, cut

    async def _open(self, url: str, hop: _Hop, *, check_robots: bool) -> httpx.Response:
        """GET ``url``, following up to ``max_redirects`` redirects, each hop URL-, robots- and (at connect)
        address-checked. Returns the final response, body not read."""
        current = url
        for _ in range(self.limits.max_redirects + 1):
            hop.url, hop.status, hop.content_type = current, None, None
            scheme, host, port = parse_target(current, self.limits.allowed_ports)
            target = httpx.URL(current)
            if target.host.endswith("."):
                target = target.copy_with(host=host)
            if check_robots and not await self._robots_allow(scheme, host, port, str(target)):
                raise _Failed("robots.txt disallows")
            response = await self._client.send(self._client.build_request("GET", target, headers=self._headers), stream=True)
            hop.status, hop.content_type = response.status_code, response.headers.get("content-type")
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                return response
            await response.aclose()
            try:
                current = str(target.join(location).copy_with(fragment=None))
            except (httpx.InvalidURL, ValueError, TypeError):
                raise _Failed("invalid redirect location") from None
        hop.url = current
        raise _Failed("too many redirects")

    async def _read(self, response: httpx.Response, cap: int, *, truncate: bool = False) -> bytes:
        """The decoded body (gzip inflated), refusing (or, for robots.txt, cutting) past ``cap`` bytes."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):  # we asked for identity/gzip only
            raise _Failed(f"unsupported content-encoding {encoding}")
        declared = response.headers.get("content-length", "")
        if not truncate and declared.isdigit() and "content-encoding" not in response.headers and int(declared) > cap:
            raise _Failed("too large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                if truncate:
                    break
                raise _Failed("too large")
        return b"".join(chunks)[:cap]

    async def _robots_allow(self, scheme: str, host: str, port: int, url: str) -> bool:
        origin = f"{scheme}://{host}:{port}" if ":" not in host else f"{scheme}://[{host}]:{port}"
        lock = self._robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._robots:
                self._robots[origin] = await self._load_robots(origin)
        return self._robots[origin](url)

    async def _load_robots(self, origin: str) -> Callable[[str], bool]:
        """Rules of ``origin``'s robots.txt, fetched through the same guarded client. A failure to fetch it
        allows everything, except 401/403, which disallow everything."""
        hop = _Hop(origin)
        try:
            response = await self._open(f"{origin}/robots.txt", hop, check_robots=False)
            try:
                if response.status_code in (401, 403):
                    return lambda _url: False
                if not 200 <= response.status_code < 300:
                    return lambda _url: True
                body = await self._read(response, _ROBOTS_MAX_BYTES, truncate=True)
            finally:
                await response.aclose()
            return _robots_checker(decode_body(body, response.charset_encoding, html=False), self.limits.user_agent)
        except (FetchBlocked, _Failed, httpx.HTTPError, OSError, ValueError):
            return lambda _url: True
