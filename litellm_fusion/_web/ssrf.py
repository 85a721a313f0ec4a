"""SSRF guard for fetching model-chosen URLs: address policy, URL checks and a guarded httpx client.

The address check runs at CONNECT time, on the IP actually connected to: the guarded network backend
resolves the host once, validates every resolved address, and connects to a validated IP (never to the
name again), so DNS rebinding and exotic IPv4 spellings (``2130706433``, ``0x7f.1``, ``127.1``) are
judged by what they resolve to. Redirects are not followed by the client; the fetcher re-checks every hop.

Why an in-house backend and not ``httpx-secure`` 2.0.0 (0BSD): for a host *name* its resolver opens a
TCP probe connection (happy eyeballs) and only then validates the address that answered, so
``http://localhost:<port>/`` reaches the internal listener before being refused (measured: one accepted
connection), and only the winning address is checked, not every resolved one. It also pins
``httpx<0.29`` / ``httpcore<1.1`` and patches many private internals; this module touches one private
attribute (``AsyncHTTPTransport._pool``) and fails closed if that layout changes.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpcore
import httpx

__all__ = ["FetchBlocked", "GuardedBackend", "GuardedTransport", "blocked_reason", "make_guarded_client", "parse_target", "resolve"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Allow = Callable[[IPAddress, int], bool]

DEFAULT_PORTS = frozenset({80, 443})

_N = ipaddress.ip_network
# Cloud metadata endpoints: AWS/GCP/Azure/OpenStack IMDS, ECS task metadata, EKS pod identity, Azure
# WireServer (public!), Alibaba, Oracle, Scaleway, AWS IMDS over IPv6 and the Nitro/GCP v6 forms.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254", "169.254.170.2", "169.254.170.23", "168.63.129.16", "100.100.100.200", "192.0.0.192",
        "169.254.42.42", "fd00:ec2::254", "fd00:ec2::23", "fd20:ce::254", "fd00:42::42",
    )
)  # fmt: skip
# Named ranges first (for a useful reason); anything else not globally routable is caught by ``is_global``.
_V4_RANGES = [
    (_N("0.0.0.0/8"), "unspecified address"),
    (_N("10.0.0.0/8"), "private address"),
    (_N("100.64.0.0/10"), "carrier-grade NAT address"),
    (_N("127.0.0.0/8"), "loopback address"),
    (_N("169.254.0.0/16"), "link-local address"),
    (_N("172.16.0.0/12"), "private address"),
    (_N("192.0.0.0/24"), "IETF protocol address"),
    (_N("192.168.0.0/16"), "private address"),
    (_N("198.18.0.0/15"), "benchmarking address"),
    (_N("224.0.0.0/4"), "multicast address"),
    (_N("240.0.0.0/4"), "reserved address"),
]
_V6_RANGES = [
    (_N("::/128"), "unspecified address"),
    (_N("::1/128"), "loopback address"),
    (_N("fc00::/7"), "unique-local address"),
    (_N("fe80::/10"), "link-local address"),
    (_N("fec0::/10"), "site-local address"),
    (_N("ff00::/8"), "multicast address"),
    (_N("2001:db8::/32"), "documentation address"),
    (_N("3fff::/20"), "documentation address"),
    (_N("100::/64"), "discard address"),
]
_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")  # after IDNA encoding; no '%', spaces or empty labels
_MAPPED, _COMPAT = _N("::ffff:0:0/96"), _N("::/96")
_6TO4, _TEREDO = _N("2002::/16"), _N("2001::/32")
_NAT64, _NAT64_LOCAL = _N("64:ff9b::/96"), _N("64:ff9b:1::/48")


class FetchBlocked(httpx.TransportError):
    """A URL or address refused by the SSRF policy; ``str(exc)`` is the short reason."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 transition form carries, with the form's name."""
    n = int(ip)
    if ip in _MAPPED:
        return "IPv4-mapped", ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip in _COMPAT and n > 1:
        return "IPv4-compatible", ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip in _6TO4:
        return "6to4", ipaddress.IPv4Address((n >> 80) & 0xFFFFFFFF)
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return "NAT64", ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip in _TEREDO:
        return "Teredo", ipaddress.IPv4Address(~n & 0xFFFFFFFF)  # the client address, bit-inverted
    if (n >> 32) & 0xFDFFFFFF == 0x00005EFE:  # ISATAP interface id ::0:5efe:a.b.c.d / ::200:5efe:a.b.c.d
        return "ISATAP", ipaddress.IPv4Address(n & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """None if ``ip`` is globally routable and allowed; else a short reason ("loopback address", ...)."""
    if ip in _METADATA:
        return "cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "scoped IPv6 address"
        for net, reason in _V6_RANGES:
            if ip in net:
                return reason
        embedded = _embedded_v4(ip)
        if embedded is not None:
            form, v4 = embedded
            inner = blocked_reason(v4)
            if inner is not None:
                return f"{inner} ({form})"
            if ip in _MAPPED:  # the dual-stack spelling of a public IPv4 address
                return None
            if ip in _COMPAT or ip in _TEREDO or ip in _NAT64_LOCAL:  # deprecated or never public
                return f"{form} IPv6 address"
    else:
        for net, reason in _V4_RANGES:
            if ip in net:
                return reason
    if not ip.is_global:
        return "non-global address"
    return None


def parse_target(url: str | httpx.URL, allowed_ports: Iterable[int] = DEFAULT_PORTS) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL that may be fetched, or raise :class:`FetchBlocked`.

    The host is IDNA-encoded ASCII without a trailing dot. This is only the URL-level check: addresses are
    judged at connect time (every spelling of 127.0.0.1 is caught there, by what it resolves to).
    """
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError, TypeError) as exc:
        raise FetchBlocked(f"invalid URL ({exc})") from None
    scheme = parsed.scheme
    if scheme not in ("http", "https"):
        raise FetchBlocked(f"scheme {scheme or '(none)'!r} not allowed")
    if parsed.userinfo:
        raise FetchBlocked("credentials in URL not allowed")
    host = host.rstrip(".")
    if not host:
        raise FetchBlocked("missing host")
    if ":" not in host and not _HOSTNAME.fullmatch(host):  # IPv6 literals were validated by httpx
        raise FetchBlocked(f"invalid host {host!r}")
    port = parsed.port or (443 if scheme == "https" else 80)
    if port not in allowed_ports:
        raise FetchBlocked(f"port {port} not allowed")
    return scheme, host, port


async def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to (``loop.getaddrinfo``), in resolver order, deduplicated."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in out:
            out.append(ip)
    return out


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve once, validate every address, connect to a validated IP (TLS SNI/Host stay on the name).

    ``allow(ip, port) -> True`` admits one destination that the policy would refuse. It is a TEST-ONLY
    seam (e.g. one ``(127.0.0.1, fixture_port)`` pair); it is never set by default.
    """

    def __init__(self, *, allow: Allow | None = None, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._allow = allow
        self._inner = inner or httpcore.AnyIOBackend()

    async def _admitted(self, host: str, port: int) -> list[IPAddress]:
        try:
            ips = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                ips = await resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        if not ips:
            raise httpcore.ConnectError(f"no address for {host!r}")
        for ip in ips:  # one bad address refuses the name: rebinding services mix answers
            if self._allow is not None and self._allow(ip, port):
                continue
            reason = blocked_reason(ip)
            if reason is not None:
                raise FetchBlocked(reason)
        return ips

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host`` once, refuse it if any address is blocked, then connect to the admitted addresses only."""
        try:
            async with asyncio.timeout(timeout):
                ips = await self._admitted(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        error: Exception | None = None
        for ip in ips:
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, OSError) as exc:
                error = exc
        raise error if isinstance(error, httpcore.ConnectError) else httpcore.ConnectError(str(error))

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        """Always refused: a fetch reaches the network, never a local socket."""
        raise FetchBlocked("unix sockets not allowed")

    async def sleep(self, seconds: float) -> None:
        """The inner backend's sleep (httpcore's interface)."""
        await self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying context (certifi bundle, as httpx's default) shared by all guarded clients: loading
    the CA bundle costs tens of milliseconds, and a fetcher is built per request."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request/response and error mapping) over a pool that uses :class:`GuardedBackend`."""

    def __init__(
        self, *, allow: Allow | None = None, inner: httpcore.AsyncNetworkBackend | None = None, limits: httpx.Limits | None = None
    ) -> None:
        limits = limits or httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=5.0)
        ssl_context = _ssl_context()
        super().__init__(verify=ssl_context, trust_env=False, http1=True, http2=False, retries=0, limits=limits)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("unsupported httpx transport layout: refusing to build an unguarded client")
        self._guarded_pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(allow=allow, inner=inner),
        )
        self._pool = self._guarded_pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the guarded pool, refusing if that pool was replaced."""
        if self._pool is not self._guarded_pool:  # fail closed if anything swapped the pool
            raise FetchBlocked("transport is not guarded")
        return await super().handle_async_request(request)


def make_guarded_client(
    *, timeout: float | httpx.Timeout, allow: Allow | None = None, inner: httpcore.AsyncNetworkBackend | None = None
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection goes through the SSRF guard.

    No proxies or environment settings (``trust_env=False``), no cookie persistence, no automatic
    redirects (the fetcher follows them itself, re-checking each hop), ``Accept-Encoding: identity, gzip``
    (brotli/zstd can inflate a few bytes into megabytes in one decoder step). ``allow`` is the TEST-ONLY
    allowance of :class:`GuardedBackend` and is never set by default; ``inner`` is the real connector
    beneath the guard (tests wrap it to record connection attempts).
    """
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        transport=GuardedTransport(allow=allow, inner=inner),
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
        cookies=no_cookies,
        headers={"Accept-Encoding": "identity, gzip"},
    )
