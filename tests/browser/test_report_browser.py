"""The reports in a real browser: headless Chromium (Debian's ``chromium``) loads them from disk.

Checks the DOM Chromium built (the sections, the panel cards, the timeline), that the injected scripts and
handlers did not run and nothing was fetched (a control page without escaping proves both detectors fire),
and saves screenshots under ``test-artifacts/``. Skips, naming what is missing, only without Chromium.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from report_fixtures import SCRIPT_PAYLOAD, SECTIONS, Dom, eval_data, hostile_trace, sample_trace

from litellm_fusion.report import eval_page, trace_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Root in CI needs --no-sandbox; the rest keeps Chromium off the network (this machine has none to offer).
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--disable-dev-shm-usage",
]  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("LITELLM_FUSION_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip(
            "the browser tier needs Chromium: `apt-get install -y chromium` (Debian; .ci/run does it) or set LITELLM_FUSION_CHROMIUM"
        )
    return path


class Browser:
    def __init__(self, path: str, profile: Path) -> None:
        self.path, self.profile = path, profile

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.path, *FLAGS, f"--user-data-dir={self.profile}", *args],
            capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    def dom(self, page: Path) -> str:
        """The DOM after load (scripts, if any were allowed to, have run), serialised."""
        return self.run("--dump-dom", page.as_uri()).stdout

    def screenshot(self, page: Path, out: Path, size: tuple[int, int] = (1360, 2000)) -> bytes:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        self.run(f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page.as_uri())
        return out.read_bytes()


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Browser:
    return Browser(chromium, tmp_path / "profile")  # a fresh profile per test


class Beacon:
    """A 127.0.0.1 HTTP server that counts the requests it gets: a page that fetched anything shows up here."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Beacon:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_report_in_chromium_has_its_sections_and_a_screenshot(browser: Browser, tmp_path: Path):
    page = tmp_path / "report.html"
    page.write_text(trace_page(sample_trace(), question="What is the capital of France?", answer="Paris."), encoding="utf-8")
    dom = Dom(browser.dom(page))
    assert dom.ids()[: len(SECTIONS)] == SECTIONS
    assert [a.get("data-model") for tag, a in dom.tags if tag == "article"] == [
        "openai/gpt-4o-mini", "openai/gpt-4.1-mini", "anthropic/claude-haiku-4-5",
    ]  # fmt: skip
    spans = [a["class"] for tag, a in dom.tags if tag == "rect" and "span" in (a.get("class") or "")]
    assert {"span member", "span model", "span web_search", "span web_fetch", "span judge", "span judge_repair", "span synthesizer"} <= set(
        spans
    )
    assert "What is the capital of France?" in " ".join(dom.text)
    shot = browser.screenshot(page, ARTIFACTS / "report.png")
    assert png_size(shot) == (1360, 2000) and len(shot) > 30_000  # a rendered page, not a blank one


def test_injected_scripts_do_not_run_and_nothing_is_fetched(browser: Browser, tmp_path: Path):
    with Beacon() as beacon:
        trace = hostile_trace(beacon.url)
        page = tmp_path / "hostile.html"
        page.write_text(trace_page(trace, question=SCRIPT_PAYLOAD, answer=SCRIPT_PAYLOAD), encoding="utf-8")
        dom_text = browser.dom(page)
        browser.screenshot(page, ARTIFACTS / "report-hostile.png")
        assert beacon.hits == []
        # The control: the same payloads pasted raw into a page do run and do fetch in this browser.
        control = tmp_path / "control.html"
        a_answer = trace["panel"][0]["content"]
        control.write_text(f"<!DOCTYPE html><html><body><p>{a_answer}</p></body></html>", encoding="utf-8")
        control_dom = browser.dom(control)
        assert 'data-pwned="script"' in control_dom
        assert beacon.hits, "the control page should have fetched its image"
    dom = Dom(dom_text)
    html_attrs = next(a for tag, a in dom.tags if tag == "html")
    assert "data-pwned" not in html_attrs
    assert 'data-pwned="' not in dom_text
    assert "script" not in {tag for tag, _ in dom.tags} and "img" not in {tag for tag, _ in dom.tags}
    assert [a for _, a in dom.tags if any(name.startswith("on") for name in a)] == []
    assert all(a["href"].startswith("https://") for tag, a in dom.tags if tag == "a" and "href" in a)
    assert SCRIPT_PAYLOAD in "".join(dom.text)  # shown as text


def tiny_png(width: int = 240, height: int = 120) -> bytes:
    """A valid RGB PNG (a gradient), made without matplotlib so this test needs only Chromium."""
    rows = b"".join(b"\0" + bytes(v for x in range(width) for v in (x % 256, y * 2 % 256, 180)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_the_eval_page_in_chromium(browser: Browser, tmp_path: Path):
    page = tmp_path / "eval.html"
    page.write_text(eval_page(eval_data(), plot_png=tiny_png()), encoding="utf-8")
    dom = Dom(browser.dom(page))
    assert dom.ids()[:4] == ["summary", "table", "plot", "questions"]
    assert any(tag == "img" and (a.get("src") or "").startswith("data:image/png;base64,") for tag, a in dom.tags)
    shot = browser.screenshot(page, ARTIFACTS / "eval.png", size=(1360, 900))
    assert png_size(shot) == (1360, 900)
