"""Streaming (the table's ``d`` rows): time to first token against the critical path and a hand-rolled stream.

The critical-path TTFT is slowest member + judge + synthesizer's first chunk. A second probe streams four
chunks with a long ``chunk_delay``: if fusion held the first content chunk back until the second arrived,
its TTFT gap to hand-rolled would grow by about that delay.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from benchmarks.calls import Context, fusion_stream, hand_rolled
from benchmarks.scenario import SYNTH, SYNTH_TEXT, Scenario, script, standard_spec
from benchmarks.stats import summary
from benchmarks.table import Row, row, signed
from benchmarks.table import ms as fmt_ms
from benchmarks.upstream import Upstream

__all__ = ["TITLE", "StreamingSettings", "measure", "rows"]

TITLE = "streaming time to first token"


@dataclasses.dataclass(frozen=True)
class StreamingSettings:
    """How many streams of each kind, and the synthesizer's chunking."""

    pairs: int = 6
    """Streams of each kind (fusion, hand-rolled), alternating which goes first."""
    chunk_delay: float = 0.025
    """Seconds between the synthesizer's chunks (not scaled)."""
    chunk_chars: int = 10
    holdback_delay: float = 0.2
    """The hold-back probe's chunk_delay (not scaled)."""
    holdback_pairs: int = 3

    @classmethod
    def quick(cls) -> StreamingSettings:
        return cls(pairs=3, holdback_pairs=2)


async def measure(scenario: Scenario, s: StreamingSettings, up: Upstream, ctx: Context) -> dict[str, Any]:
    """Section ``d``: fusion and hand-rolled streams, alternating, then the hold-back probe."""
    text = SYNTH_TEXT
    up.set_scripts(scenario.scripts(synth_extra={"chunk_delay": s.chunk_delay, "chunk_chars": s.chunk_chars}))
    spec = standard_spec(up.base_url)
    hand = await hand_rolled(up, scenario, ctx)
    await fusion_stream(spec)
    await hand.call("fixed", stream=True)
    await up.wait_idle()
    up.reset()
    runs: dict[str, list[dict[str, Any]]] = {"fusion": [], "hand_rolled": []}
    for i in range(s.pairs):
        order = ["fusion", "hand_rolled"] if i % 2 == 0 else ["hand_rolled", "fusion"]
        for name in order:
            runs[name].append(await fusion_stream(spec) if name == "fusion" else await hand.call("fixed", stream=True))
    crit = scenario.critical_path_ms()
    chunks_expected = -(-len(text) // s.chunk_chars)
    out: dict[str, Any] = {
        "critical_path_ttft_ms": crit,
        "chunk_delay_ms": round(1000 * s.chunk_delay, 1),
        "content_chunks_scripted": chunks_expected,
        "stream_end_expected_ms": round(crit + 1000 * s.chunk_delay * (chunks_expected - 1), 1),
    }
    for name, items in runs.items():
        ttft = summary([r["ttft"] for r in items])
        out[name] = {
            "ttft": ttft,
            "ttft_minus_critical_path_ms": {"p50": round(ttft["p50_ms"] - crit, 1), "p99": round(ttft["p99_ms"] - crit, 1)},
            "total": summary([r["total"] for r in items]),
            "content_chunks": [r["chunks"] for r in items],
            "gap": summary([g for r in items for g in r["gaps"]]),
            "raw": items if name == "fusion" else [{k: v for k, v in r.items() if k != "gaps"} for r in items],
        }
    out["fusion"]["first_progress"] = summary([r["first_progress"] for r in runs["fusion"]])
    for r in runs["fusion"]:
        r.pop("gaps", None)
    out["fusion_minus_hand_rolled_ttft_ms"] = {
        "p50": round(out["fusion"]["ttft"]["p50_ms"] - out["hand_rolled"]["ttft"]["p50_ms"], 1),
        "p99": round(out["fusion"]["ttft"]["p99_ms"] - out["hand_rolled"]["ttft"]["p99_ms"], 1),
    }
    up.set_scripts(
        {SYNTH: script("abcdefghijklmnopqrst", scenario.lat(scenario.synth_latency), chunk_delay=s.holdback_delay, chunk_chars=5)}
    )
    probe: dict[str, list[float]] = {"fusion": [], "hand_rolled": []}
    for _ in range(s.holdback_pairs):
        probe["fusion"].append((await fusion_stream(spec))["ttft"])
        probe["hand_rolled"].append((await hand.call("fixed", stream=True))["ttft"])
    gap = round(1000 * (statistics.median(probe["fusion"]) - statistics.median(probe["hand_rolled"])), 1)
    out["holdback_probe"] = {
        "chunk_delay_ms": round(1000 * s.holdback_delay, 1),
        "fusion_ttft": summary(probe["fusion"]),
        "hand_rolled_ttft": summary(probe["hand_rolled"]),
        "fusion_minus_hand_rolled_ttft_ms_median": gap,
        "first_chunk_held_back": gap > 0.6 * 1000 * s.holdback_delay,
    }
    return out


def rows(d: dict[str, Any]) -> list[Row]:
    """The ``d`` rows of the table."""
    out = []
    for name, label in (("fusion", "fusion stream TTFT"), ("hand_rolled", "hand-rolled stream TTFT")):
        if name in d:
            v = d[name]
            out.append(
                row(
                    "d",
                    label,
                    v["ttft"]["n"],
                    v["ttft"]["p50_ms"],
                    v["ttft"]["p99_ms"],
                    f"critical-path TTFT {d['critical_path_ttft_ms']:.0f}",
                    f"{signed(v['ttft_minus_critical_path_ms']['p50'])} / {signed(v['ttft_minus_critical_path_ms']['p99'])} ms; "
                    f"stream end p50 {fmt_ms(v['total']['p50_ms'])} (expected {fmt_ms(d['stream_end_expected_ms'])}); "
                    f"chunk gap p50 {fmt_ms(v['gap'].get('p50_ms'))} ms; content chunks {sorted(set(v['content_chunks']))}",
                )
            )
    if "first_progress" in d.get("fusion", {}):
        v = d["fusion"]["first_progress"]
        out.append(
            row(
                "d",
                "fusion stream: first progress line (reasoning)",
                v["n"],
                v["p50_ms"],
                v["p99_ms"],
                f"fusion TTFT p50 {fmt_ms(d['fusion']['ttft']['p50_ms'])}",
                "life before the panel answered",
            )
        )
    if "fusion_minus_hand_rolled_ttft_ms" in d:
        x = d["fusion_minus_hand_rolled_ttft_ms"]
        out.append(row("d", "**TTFT fusion − hand-rolled**", "", x["p50"], x["p99"], f"chunk_delay {d['chunk_delay_ms']:.0f} ms", ""))
    if "holdback_probe" in d:
        h = d["holdback_probe"]
        out.append(
            row(
                "d",
                f"TTFT with chunk_delay {h['chunk_delay_ms']:.0f} ms: fusion vs hand-rolled",
                h["fusion_ttft"]["n"],
                h["fusion_ttft"]["p50_ms"],
                h["fusion_ttft"]["p99_ms"],
                f"hand-rolled p50 {fmt_ms(h['hand_rolled_ttft']['p50_ms'])}",
                f"fusion − hand-rolled {signed(h['fusion_minus_hand_rolled_ttft_ms_median'])} ms: "
                f"first chunk held back = {h['first_chunk_held_back']}",
            )
        )
    return out
