"""The CLI's live progress: drawn on stderr when it is a terminal (a real pty here), absent from pipes and ``--json``."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from litellm_fusion._engine import progress as p
from litellm_fusion.cli import demo
from litellm_fusion.cli.progress_board import Board

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PANEL = [model for model, _, _ in demo.DEMO_PANEL]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", TERM="xterm-256color", COLUMNS="160", LINES="50")
    env.pop("NO_COLOR", None)
    return env


def _run_with_tty_stderr(*args: str) -> tuple[str, str, int]:
    """Run the CLI with stderr on a pseudo-terminal and stdout on a pipe; returns (stdout, stderr, code)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "litellm_fusion", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=_env()
    )
    os.close(slave)
    err = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            err += data
        elif process.poll() is not None:
            break
    os.close(master)
    out, _ = process.communicate(timeout=30)
    return out.decode(), err.decode(errors="replace"), process.returncode


def test_demo_on_a_terminal_shows_each_member_change_live_then_the_report():
    out, err, code = _run_with_tty_stderr("demo", "--scripted")
    assert code == 0, err
    plain = ANSI.sub("", err)
    assert "fusion progress" in plain
    for model in PANEL:
        running = re.search(rf"{re.escape(model)} +running", plain)
        answered = re.search(rf"{re.escape(model)} +answered +\d+\.\d s, \d+ tokens", plain)
        assert running and answered, plain
        assert running.start() < answered.start()  # drawn while it ran, redrawn when it answered
    assert re.search(r"judge +openai/gpt-4o +running +comparing 3 answers", plain)
    assert re.search(r"judge +openai/gpt-4o +done +\d+\.\d s, \d+ tokens, 2 agreed, 1 contested", plain)
    assert re.search(r"writer +openai/gpt-4.1 +writing", plain) and re.search(r"writer +openai/gpt-4.1 +done", plain)
    # stdout (a pipe) has the report and nothing of the board.
    assert out.count(demo.DEMO_FINAL) == 1 and "\nPanel (3 models" in out
    assert "fusion progress" not in out and "\x1b" not in out


def test_stream_on_a_terminal_stops_the_board_before_the_answer():
    out, err, code = _run_with_tty_stderr("demo", "--scripted", "--stream")
    assert code == 0, err
    assert re.search(r"writer +openai/gpt-4.1 +writing", ANSI.sub("", err)), ANSI.sub("", err)
    assert out.index("Final answer (streaming") < out.index(demo.DEMO_FINAL) < out.index("\nPanel ("), out
    assert "\x1b" not in out, out


def test_json_on_a_terminal_and_pipes_stay_clean():
    out, err, code = _run_with_tty_stderr("demo", "--scripted", "--json")
    assert code == 0 and json.loads(out)["answer"] == demo.DEMO_FINAL
    assert "fusion progress" not in err and "running" not in err
    piped = subprocess.run(
        [sys.executable, "-m", "litellm_fusion", "demo", "--scripted"], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert piped.returncode == 0 and piped.stdout.count(demo.DEMO_FINAL) == 1
    assert "fusion progress" not in piped.stderr and "\x1b" not in piped.stderr + piped.stdout


def test_board_shows_failures_drops_web_and_short_circuits():
    board = Board()
    board.apply(p.FusionStarted(at_ms=0, name="x", panel=("a", "b", "c"), judge="j", synthesizer="w", quorum=2))
    board.apply(p.MemberStarted(at_ms=1, index=0, model="a"))
    board.apply(p.WebToolCalled(at_ms=5, index=0, model="a", tool="web_search", argument="capital\nof France", status="ok",
                                error=None, started_ms=2, latency_ms=3))  # fmt: skip
    assert board.rows["panel0"].detail == "searching capital of France"
    board.apply(
        p.MemberFailed(at_ms=9, index=1, model="b", started_ms=1, latency_ms=800, status="timeout", error_type="Timeout", error="slow")
    )
    board.apply(p.MemberDropped(at_ms=9, index=2, model="c", started_ms=1, reason="cancelled after the quorum"))
    board.apply(p.PanelAgreed(at_ms=10, how="exact"))
    states = {key: (row.state, row.detail) for key, row in board.rows.items()}
    assert states["panel0"][0] == "running" and states["panel1"] == ("timeout", "0.8 s: Timeout")
    assert states["panel2"] == ("dropped", "cancelled after the quorum")
    assert states["judge"] == ("skipped", "the panel agreed") == states["writer"]


@pytest.mark.parametrize(("how", "judge"), [("exact", "skipped"), ("vote", "skipped"), ("judge", "waiting")])
def test_board_skips_the_judge_when_the_short_circuit_skips_it(how, judge):
    board = Board()
    board.apply(p.FusionStarted(at_ms=0, name="x", panel=("a", "b"), judge="j", synthesizer="w", quorum=2))
    board.apply(p.PanelAgreed(at_ms=10, how=how))
    assert board.rows["judge"].state == judge and board.rows["writer"].state == "skipped"


def test_board_shows_the_writers_decision_with_invocation_auto():
    board = Board()
    board.apply(p.FusionStarted(at_ms=0, name="x", panel=("a",), judge="j", synthesizer="w", quorum=1, invocation="auto"))
    assert (board.rows["writer"].state, board.rows["panel0"].state) == ("deciding", "waiting")
    board.apply(p.CallFinished(at_ms=900, role="outer", model="w", started_ms=1, latency_ms=899, tokens=42, cost=None))
    assert (board.rows["writer"].state, board.rows["writer"].detail) == ("decided", "0.9 s, 42 tokens")
    board.apply(p.CallFinished(at_ms=950, role="panel", model="a", started_ms=900, latency_ms=50, tokens=5, cost=None))
    assert board.rows["writer"].state == "decided"  # other calls leave the writer's row alone
