"""Smoke test of ``benchmarks/run.py``: sections a–d and f in tiny quick mode, in-process (no proxy, so no e).

It checks that the table and the JSON are produced and that the numbers are sane: the 5-member panel is
not much slower than the 1-member one (parallel), quorum + grace beats wait-for-all at p99 and closes the
hanging member's connection, and the consensus short-circuit saves cost. Runs in well under a minute.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import sys
import time
from pathlib import Path

RUN_PY = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _load_run_module():
    spec = importlib.util.spec_from_file_location("fusion_benchmarks_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered while it executes
    spec.loader.exec_module(module)
    return module


def test_benchmarks_quick_smoke(tmp_path: Path) -> None:
    bench = _load_run_module()
    settings = bench.Settings.quick_mode(
        scenario={"scale": 0.3, "warmup": 1},
        calibration={"n": 16, "concurrency": 8},
        overhead={"rounds_c1": 2, "rounds_c8": 1, "probe_n": 3},
        # x0.3 = 300 ms per member: well above LiteLLM's per-call CPU even on a busy machine
        panel_width={"pairs": 2, "member_latency": 1.0},
        straggler={"n": 4, "concurrency": 4},
        streaming={"pairs": 2, "holdback_pairs": 1},
        short_circuit={"pairs": 2},
    )
    out = tmp_path / "results.json"
    started = time.perf_counter()
    # A thread of its own: asyncio.run must not touch the event loop pytest-asyncio keeps for this session.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(bench.run_benchmarks, settings, "abcdf", out, lambda _msg: None)
        results, table = future.result(timeout=150)
    elapsed = time.perf_counter() - started

    # The table and the JSON are there, with one object per section and no failed section.
    assert out.exists()
    saved = json.loads(out.read_text(encoding="utf-8"))
    for key in ("meta", "server", "a", "b", "c", "d", "f"):
        assert key in saved, key
        assert "error" not in saved[key], saved[key].get("traceback") if isinstance(saved[key], dict) else saved[key]
    assert "e" not in saved
    assert saved["meta"]["nproc"] >= 1 and saved["meta"]["server_mode"] == "process"
    assert table.count("\n| a |") >= 6 and "| b |" in table and "| c |" in table and "| d |" in table and "| f |" in table
    assert saved["table_markdown"] == table

    # (a) nothing beats the scripted critical path; the overhead numbers exist.
    a = saved["a"]
    for cell in ("c1", "c8"):
        for variant in ("fusion", "hand_rolled", "hand_rolled_remaining_timeout"):
            assert a[cell][variant]["n"] >= 1
            assert a[cell][variant]["min_ms"] >= a["critical_path_ms"] - 5, (cell, variant, a[cell][variant])
        assert isinstance(a[cell]["fusion_minus_hand_rolled_ms"]["p50"], float)
    assert a["cpu_and_connections"]["fusion"]["upstream_calls"] == 5 * settings.overhead.probe_n

    # (b) the panel runs in parallel.
    b = saved["b"]
    assert b["panel_5"]["p50_ms"] < 2 * b["panel_1"]["p50_ms"], b
    assert b["upstream_max_in_flight"] >= 5

    # (c) quorum + grace beats wait-for-all, and the hanging member's connection is closed either way.
    c = saved["c"]
    assert c["quorum_grace"]["p99_ms"] < c["wait_for_all"]["p99_ms"], c
    for mode in ("quorum_grace", "wait_for_all"):
        assert c[mode]["hanging_requests"] == settings.straggler.n
        assert c[mode]["hanging_closed_by_client"] == settings.straggler.n, c[mode]
        assert c[mode]["upstream_idle_after"] is True
    assert c["quorum_grace"]["hanging_member_status"] == {"dropped": settings.straggler.n}

    # (d) streaming: a first token, never before the critical path, and the whole text arrives.
    d = saved["d"]
    assert d["fusion"]["ttft"]["n"] == settings.streaming.pairs
    assert d["fusion"]["ttft"]["min_ms"] >= d["critical_path_ttft_ms"] - 5
    assert all(n > 1 for n in d["fusion"]["content_chunks"])

    # (f) the short-circuit is taken and saves cost.
    f = saved["f"]
    assert f["exact"]["short_circuit"] == ["exact"] and f["off"]["short_circuit"] == ["None"]
    assert 0 < f["exact"]["mean_cost_usd"] < f["off"]["mean_cost_usd"]
    assert f["cost_saved_pct"] > 50

    print(f"\nbenchmark smoke: {elapsed:.1f} s\n{table}")
