"""SSRF guard: the address table, URL checks, connect-time refusal with proof of no connection, redirect
hops, DNS rebinding.

Offline: everything listens on 127.0.0.1 (and ::1 when available). The real connector under the guard is
wrapped in ``LoopbackOnly``, so even a broken guard could not send traffic off this machine: a non-loopback
attempt is recorded and refused, and the tests assert there were none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import pytest

from litellm_fusion._web.fetch import Fetcher, FetchLimits
from litellm_fusion._web.ssrf import FetchBlocked, GuardedBackend, blocked_reason, make_guarded_client, parse_target, resolve


class Listener:
    """A TCP listener on 127.0.0.1 (and ::1, same port, when the host has IPv6) counting accepted connections."""

    def __init__(self) -> None:
        self.accepted = 0
        self._stop = threading.Event()
        self.sockets = [socket.create_server(("127.0.0.1", 0))]
        self.port = self.sockets[0].getsockname()[1]
        try:
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6, dualstack_ipv6=False))
        except OSError:
            pass
        self.has_v6 = len(self.sockets) == 2
        for s in self.sockets:
            s.settimeout(0.05)
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = s.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for s in self.sockets:
            s.close()


class LoopbackOnly(httpcore.AsyncNetworkBackend):
    """The real connector, restricted to this machine; records every attempt it is asked to make."""

    def __init__(self) -> None:
        self.real = httpcore.AnyIOBackend()
        self.attempts: list[tuple[str, int]] = []
        self.refused: list[tuple[str, int]] = []

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None, socket_options: Any = None
    ):
        self.attempts.append((host, port))
        ip = ipaddress.ip_address(host)
        v4 = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip
        if not ((v4 or ip).is_loopback or ip.is_unspecified):
            self.refused.append((host, port))
            raise httpcore.ConnectError(f"test safety net: {host} is not on this machine")
        return await self.real.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.real.sleep(seconds)


class Pages(ThreadingHTTPServer):
    """A fixture web server on 127.0.0.1 with redirects to an internal port and to the metadata IP."""

    daemon_threads = True

    def __init__(self, internal_port: int) -> None:
        self.hits: Counter[str] = Counter()
        self.internal_port = internal_port
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    server: Pages

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        redirects = {
            "/to-internal": f"http://127.0.0.1:{self.server.internal_port}/admin",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-page": "/page",
            "/to-port": f"http://127.0.0.1:{self.server.internal_port + 1 if self.server.internal_port < 65535 else 1}/",
            "/to-ftp": "ftp://127.0.0.1/",
        }
        if self.path in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[self.path])
            self.end_headers()
            return
        body = b"<html><head><title>Fixture</title></head><body><p>fixture page body</p></body></html>"
        self.send_response(200 if self.path == "/page" else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def pages(listener: Listener) -> Iterator[Pages]:
    server = Pages(internal_port=listener.port)
    yield server
    server.shutdown()
    server.server_close()


async def settle() -> None:
    await asyncio.sleep(0.1)  # let the accept threads see any connection that was made


# -- the address table ------------------------------------------------------------------------------------

BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback address (IPv4-mapped)"),
    ("::ffff:7f00:1", "loopback address (IPv4-mapped)"),
    ("::127.0.0.1", "loopback address (IPv4-compatible)"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("169.254.170.23", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),  # Azure WireServer: a *public* address
    ("100.100.100.200", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("169.254.42.42", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fd00:ec2::23", "cloud metadata"),
    ("fd20:ce::254", "cloud metadata"),
    ("fd00:42::42", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("198.18.0.1", "benchmarking"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("192.0.2.1", "non-global"),  # TEST-NET-1, via is_global
    ("2002:7f00:1::", "loopback address (6to4)"),
    ("2002:a00:1::", "private address (6to4)"),
    ("64:ff9b::7f00:1", "loopback address (NAT64)"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata address (NAT64)"),
    ("64:ff9b:1::a00:1", "private address (NAT64)"),
    ("64:ff9b:1::808:808", "NAT64 IPv6 address"),  # local-use NAT64 prefix: never public
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback address (Teredo)"),  # client 127.0.0.1, inverted
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo IPv6 address"),  # client 8.8.8.8
    ("2606:4700::5efe:7f00:1", "loopback address (ISATAP)"),
    ("2606:4700::200:5efe:a9fe:a9fe", "cloud metadata address (ISATAP)"),
    ("::8.8.8.8", "IPv4-compatible IPv6 address"),
]
ALLOWED = [
    "8.8.8.8",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    "2606:4700::5efe:808:808",
]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_blocked_reason_refuses(address: str, reason: str) -> None:
    got = blocked_reason(ipaddress.ip_address(address))
    assert got is not None and reason in got, (address, got)


@pytest.mark.parametrize("address", ALLOWED)
def test_blocked_reason_admits_public_addresses(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


# -- URL checks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.COM./a?b=1", ("https", "example.com", 443)),
        ("http://example.com/", ("http", "example.com", 80)),
        ("http://bücher.de/", ("http", "xn--bcher-kva.de", 80)),
        ("http://[2606:4700:4700::1111]/", ("http", "2606:4700:4700::1111", 80)),
        ("https://example.com:443/", ("https", "example.com", 443)),
    ],
)
def test_parse_target_accepts(url: str, expected: tuple[str, str, int]) -> None:
    assert parse_target(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/file", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http://example.com:8080/", "port 8080"),
        ("https://example.com:80/", "port 80"),  # allowlist is per port, not per scheme: 80 is allowed
        ("http://example.com:22/", "port 22"),
        ("http:///path-only", "missing host"),
        ("http://[::1/", "invalid URL"),
        ("https://exa mple.com/", "invalid host"),
        ("http://a..b/", "invalid host"),
    ],
)
def test_parse_target_refuses(url: str, reason: str) -> None:
    if url == "https://example.com:80/":
        assert parse_target(url) == ("https", "example.com", 80)
        with pytest.raises(FetchBlocked, match="port 80"):
            parse_target(url, allowed_ports={443})
        return
    with pytest.raises(FetchBlocked) as info:
        parse_target(url)
    assert reason in str(info.value)


# -- connect time: every spelling of loopback is refused and never connected --------------------------------

LOOPBACK_SPELLINGS = [
    ("127.0.0.1", "loopback address"),
    ("localhost", "loopback address"),
    ("2130706433", "loopback address"),  # decimal
    ("0x7f.1", "loopback address"),  # hex, short form
    ("0177.0.0.1", "loopback address"),  # octal
    ("127.1", "loopback address"),  # short form
    ("::1", "loopback address"),
    ("[::1]", "loopback address"),
    ("::ffff:127.0.0.1", "loopback address (IPv4-mapped)"),
    ("::ffff:7f00:1", "loopback address (IPv4-mapped)"),
    ("0.0.0.0", "unspecified address"),  # connects to this host on Linux
    ("2002:7f00:1::", "loopback address (6to4)"),
    ("64:ff9b::7f00:1", "loopback address (NAT64)"),
]


async def test_listener_counts_connections(listener: Listener) -> None:
    """Control: the proof below means something only if an admitted connection IS counted."""
    net = LoopbackOnly()
    backend = GuardedBackend(allow=lambda ip, port: ip == ipaddress.ip_address("127.0.0.1") and port == listener.port, inner=net)
    stream = await backend.connect_tcp("127.0.0.1", listener.port, timeout=2)
    await stream.aclose()
    await settle()
    assert listener.accepted == 1
    assert net.attempts == [("127.0.0.1", listener.port)]


@pytest.mark.parametrize(("host", "reason"), LOOPBACK_SPELLINGS)
async def test_backend_refuses_every_loopback_spelling_without_connecting(listener: Listener, host: str, reason: str) -> None:
    net = LoopbackOnly()
    backend = GuardedBackend(inner=net)  # no allowance: the production configuration
    with pytest.raises(FetchBlocked) as info:
        await backend.connect_tcp(host, listener.port, timeout=2)
    assert str(info.value) == reason
    await settle()
    assert listener.accepted == 0
    assert net.attempts == []


FETCH_TABLE = [
    ("http://127.0.0.1:{p}/", "blocked: loopback address"),
    ("http://localhost:{p}/", "blocked: loopback address"),
    ("http://localhost.:{p}/", "blocked: loopback address"),
    ("http://2130706433:{p}/", "blocked: loopback address"),
    ("http://0x7f.1:{p}/", "blocked: loopback address"),
    ("http://0177.0.0.1:{p}/", "blocked: invalid URL"),  # httpx's URL parser already rejects it (backend test above covers connect)
    ("http://127.1:{p}/", "blocked: loopback address"),
    ("http://[::1]:{p}/", "blocked: loopback address"),
    ("http://[::ffff:127.0.0.1]:{p}/", "blocked: loopback address (IPv4-mapped)"),
    ("http://[::ffff:7f00:1]:{p}/", "blocked: loopback address (IPv4-mapped)"),
    ("http://0.0.0.0:{p}/", "blocked: unspecified address"),
    ("http://[2002:7f00:1::]:{p}/", "blocked: loopback address (6to4)"),
    ("http://[64:ff9b::7f00:1]:{p}/", "blocked: loopback address (NAT64)"),
    ("http://10.0.0.1:{p}/", "blocked: private address"),
    ("http://172.16.0.1/", "blocked: private address"),
    ("http://192.168.1.1/", "blocked: private address"),
    ("http://169.254.169.254/latest/meta-data/", "blocked: cloud metadata address"),
    ("http://168.63.129.16/", "blocked: cloud metadata address"),
    ("http://100.64.0.1/", "blocked: carrier-grade NAT address"),
    ("http://[fd00:ec2::254]/", "blocked: cloud metadata address"),
    ("http://224.0.0.1/", "blocked: multicast address"),
    ("ftp://127.0.0.1:{p}/", "blocked: scheme 'ftp' not allowed"),
    ("file:///etc/passwd", "blocked: scheme 'file' not allowed"),
    ("http://user:pw@127.0.0.1:{p}/", "blocked: credentials in URL not allowed"),
    ("http://example.com:8080/", "blocked: port 8080 not allowed"),
]


@pytest.mark.parametrize(("template", "error"), FETCH_TABLE)
async def test_fetcher_refuses_without_connecting(listener: Listener, template: str, error: str) -> None:
    # The listener's port is allowlisted like 80/443 (no test allowance), so only the address check stands
    # between these URLs and the listener.
    net = LoopbackOnly()
    limits = FetchLimits(allowed_ports=frozenset({80, 443, listener.port}), timeout=5)
    async with Fetcher(limits, client=make_guarded_client(timeout=5, inner=net)) as fetcher:
        result = await fetcher.fetch(template.format(p=listener.port))
    assert result.error is not None and result.error.startswith(error), result.error
    assert result.content == "" and result.status is None
    await settle()
    assert listener.accepted == 0
    assert net.attempts == []  # robots.txt fetches included


async def test_default_fetcher_has_no_allowance(listener: Listener) -> None:
    """A Fetcher built with its own client (the production path) refuses loopback on an allowlisted port."""
    async with Fetcher(FetchLimits(allowed_ports=frozenset({80, 443, listener.port}), timeout=5)) as fetcher:
        for host in ("127.0.0.1", "localhost", "127.1"):
            result = await fetcher.fetch(f"http://{host}:{listener.port}/")
            assert result.error == "blocked: loopback address"
    await settle()
    assert listener.accepted == 0


async def test_guarded_client_refuses_without_the_fetcher(listener: Listener) -> None:
    """The client itself is guarded: no URL pre-check is involved."""
    net = LoopbackOnly()
    async with make_guarded_client(timeout=5, inner=net) as client:
        for host in ("localhost", "2130706433", "[::ffff:127.0.0.1]"):
            with pytest.raises(FetchBlocked, match="loopback address"):
                await client.get(f"http://{host}:{listener.port}/")
    await settle()
    assert listener.accepted == 0 and net.attempts == []


async def test_allowance_admits_exactly_one_pair(listener: Listener, pages: Pages) -> None:
    only = (ipaddress.ip_address("127.0.0.1"), pages.port)
    net = LoopbackOnly()
    async with make_guarded_client(timeout=5, allow=lambda ip, port: (ip, port) == only, inner=net) as client:
        response = await client.get(f"http://127.0.0.1:{pages.port}/page")
        assert response.status_code == 200 and b"fixture page body" in response.content
        with pytest.raises(FetchBlocked, match="loopback address"):
            await client.get(f"http://127.0.0.1:{listener.port}/")  # same IP, other port
    await settle()
    assert listener.accepted == 0


async def test_proxy_environment_is_ignored(monkeypatch: pytest.MonkeyPatch, listener: Listener, pages: Pages) -> None:
    """A proxy from the environment (here: the listener) would bypass the address check. httpx already ignores
    env proxies when a transport is given; ``trust_env=False`` is belt and braces. This pins the behaviour."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{listener.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    only = (ipaddress.ip_address("127.0.0.1"), pages.port)
    async with make_guarded_client(timeout=5, allow=lambda ip, port: (ip, port) == only) as client:
        response = await client.get(f"http://127.0.0.1:{pages.port}/page")
    assert response.status_code == 200
    await settle()
    assert listener.accepted == 0


# -- redirects: every hop is re-validated ------------------------------------------------------------------


def _fetcher_for(pages: Pages, listener: Listener, net: LoopbackOnly) -> Fetcher:
    only = (ipaddress.ip_address("127.0.0.1"), pages.port)
    limits = FetchLimits(allowed_ports=frozenset({80, 443, pages.port, listener.port}), timeout=5, respect_robots=False)
    return Fetcher(limits, client=make_guarded_client(timeout=5, allow=lambda ip, port: (ip, port) == only, inner=net))


async def test_redirect_within_the_allowed_server_is_followed(listener: Listener, pages: Pages) -> None:
    net = LoopbackOnly()
    async with _fetcher_for(pages, listener, net) as fetcher:
        result = await fetcher.fetch(f"http://127.0.0.1:{pages.port}/to-page")
    assert result.error is None and "fixture page body" in result.content
    assert result.final_url == f"http://127.0.0.1:{pages.port}/page"


async def test_redirect_to_internal_port_is_blocked_at_the_hop(listener: Listener, pages: Pages) -> None:
    net = LoopbackOnly()
    async with _fetcher_for(pages, listener, net) as fetcher:
        result = await fetcher.fetch(f"http://127.0.0.1:{pages.port}/to-internal")
    assert result.error == "blocked: loopback address"
    assert result.final_url == f"http://127.0.0.1:{listener.port}/admin"
    assert pages.hits["/to-internal"] == 1  # the first hop was served...
    await settle()
    assert listener.accepted == 0  # ...the internal service never saw the second
    assert (("127.0.0.1", listener.port)) not in net.attempts


async def test_redirect_to_metadata_ip_is_blocked_at_the_hop(listener: Listener, pages: Pages) -> None:
    net = LoopbackOnly()
    async with _fetcher_for(pages, listener, net) as fetcher:
        result = await fetcher.fetch(f"http://127.0.0.1:{pages.port}/to-metadata")
    assert result.error == "blocked: cloud metadata address"
    assert result.final_url == "http://169.254.169.254/latest/meta-data/"
    assert pages.hits["/to-metadata"] == 1
    assert net.refused == [] and all(host == "127.0.0.1" for host, _ in net.attempts)


@pytest.mark.parametrize(("path", "error"), [("/to-port", "blocked: port "), ("/to-ftp", "blocked: scheme 'ftp' not allowed")])
async def test_redirect_hop_url_is_rechecked(listener: Listener, pages: Pages, path: str, error: str) -> None:
    net = LoopbackOnly()
    async with _fetcher_for(pages, listener, net) as fetcher:
        result = await fetcher.fetch(f"http://127.0.0.1:{pages.port}{path}")
    assert result.error is not None and result.error.startswith(error), result.error
    assert pages.hits[path] == 1 and len(net.attempts) == 1  # only the first hop connected


# -- DNS rebinding -----------------------------------------------------------------------------------------


def _fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]) -> list[str]:
    """Make ``loop.getaddrinfo`` answer ``answers[host][n]`` on the n-th lookup of ``host``."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    calls: list[str] = []

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return await real(host, port, *args, **kwargs)
        n = sum(1 for c in calls if c == name)
        calls.append(name)
        ips = answers[name][min(n, len(answers[name]) - 1)]
        out = []
        for ip in ips:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            out.append((family, socket.SOCK_STREAM, 6, "", (ip, port) if family == socket.AF_INET else (ip, port, 0, 0)))
        return out

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return calls


async def test_dns_rebinding_is_caught_at_connect_time(monkeypatch: pytest.MonkeyPatch, listener: Listener) -> None:
    calls = _fake_resolver(monkeypatch, {"rebind.test": [["93.184.215.14"], ["127.0.0.1"]]})
    # A naive pre-check resolves the name and sees a public address...
    precheck = await resolve("rebind.test", listener.port)
    assert precheck == [ipaddress.ip_address("93.184.215.14")] and blocked_reason(precheck[0]) is None
    # ...but the name rebinds to loopback for the connection itself, and that is what is checked.
    net = LoopbackOnly()
    limits = FetchLimits(allowed_ports=frozenset({80, 443, listener.port}), timeout=5, respect_robots=False)
    async with Fetcher(limits, client=make_guarded_client(timeout=5, inner=net)) as fetcher:
        result = await fetcher.fetch(f"http://rebind.test:{listener.port}/")
    assert result.error == "blocked: loopback address"
    assert calls == ["rebind.test", "rebind.test"]
    await settle()
    assert listener.accepted == 0 and net.attempts == []


async def test_one_bad_address_among_many_refuses_the_name(monkeypatch: pytest.MonkeyPatch, listener: Listener) -> None:
    _fake_resolver(monkeypatch, {"mixed.test": [["93.184.215.14", "127.0.0.1"]]})
    net = LoopbackOnly()
    with pytest.raises(FetchBlocked, match="loopback address"):
        await GuardedBackend(inner=net).connect_tcp("mixed.test", listener.port, timeout=2)
    assert net.attempts == []


async def test_connection_goes_to_the_validated_ip_not_the_name(monkeypatch: pytest.MonkeyPatch, pages: Pages) -> None:
    """Resolve once, connect to that IP: a second lookup (which would rebind) never happens."""
    calls = _fake_resolver(monkeypatch, {"pinned.test": [["127.0.0.1"], ["10.0.0.1"]]})
    net = LoopbackOnly()
    only = (ipaddress.ip_address("127.0.0.1"), pages.port)
    async with make_guarded_client(timeout=5, allow=lambda ip, port: (ip, port) == only, inner=net) as client:
        started = time.monotonic()
        response = await client.get(f"http://pinned.test:{pages.port}/page")
    assert response.status_code == 200 and time.monotonic() - started < 5
    assert calls == ["pinned.test"]
    assert net.attempts == [("127.0.0.1", pages.port)]  # the connector got the IP, never the name
