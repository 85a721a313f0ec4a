"""The scripted scenario most measurements share: one question, a 3-member panel, a judge and a synthesizer.

Real model ids from LiteLLM's price map, so every nested call has a real cost; the scripted server sees them
without the ``openai/`` prefix. :class:`Scenario` holds the scripted latencies and the latency scale
(``--quick`` runs at 0.4), so each measurement has a known critical path to compare with.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = [
    "KEY", "FUSION_MODEL", "PANEL", "EXTRA_PANEL", "JUDGE", "SYNTH", "MESSAGES", "PANEL_TEXT", "AGREED_TEXT", "JUDGE_JSON",
    "SYNTH_TEXT", "Scenario", "member", "script", "standard_spec",
]  # fmt: skip

KEY = "sk-bench"
FUSION_MODEL = "fusion/bench"
PANEL = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano")
EXTRA_PANEL = ("gpt-3.5-turbo", "gpt-4-turbo")  # members 4 and 5 of the panel-width measurement
JUDGE = "gpt-4o"
SYNTH = "gpt-4.1"

MESSAGES = [
    {
        "role": "user",
        "content": "A train leaves at 09:40 and arrives at 13:05, with a 20-minute stop on the way. "
        "How long is it actually moving? Show the working briefly, then give the answer on its own line. " * 2,
    }
]
PANEL_TEXT = {
    "gpt-4o-mini": "From 09:40 to 13:05 is 3 h 25 min; minus the 20-minute stop leaves 3 h 05 min of motion. Answer: 3 h 5 min.",
    "gpt-4.1-mini": "Total elapsed time is 205 minutes. The train stands still for 20 of them, so it moves 185 minutes. Answer: 185 min.",
    "gpt-4.1-nano": "09:40 to 13:05 is 3 hours 25 minutes. Subtracting the stop gives 3 hours 5 minutes moving. Answer: 3 h 05.",
    "gpt-3.5-turbo": "It travels for 3 h 25 min in total, 20 min of which is stopped: 3 h 05 min moving. Answer: 3 h 5 min.",
    "gpt-4-turbo": "205 min elapsed, 20 min stopped, therefore 185 min = 3 h 5 min in motion. Answer: 3 h 5 min.",
}
AGREED_TEXT = "3 hours 5 minutes."
JUDGE_JSON = json.dumps(
    {
        "consensus": ["205 minutes elapse; minus the 20-minute stop the train moves for 185 minutes (3 h 5 min)"],
        "contradictions": [],
        "partial_coverage": [{"models": ["A", "B"], "point": "states the answer in minutes"}],
        "unique_insights": [],
        "blind_spots": [],
    }
)
SYNTH_TEXT = "From 09:40 to 13:05 is 3 h 25 min (205 min). The train stops for 20 min, so it is moving for 185 min.\nAnswer: 3 h 5 min"


def member(base_url: str, name: str, **extra: Any) -> dict[str, Any]:
    """A member (or judge, or synthesizer) on the scripted upstream."""
    return {"model": f"openai/{name}", "api_base": base_url, "api_key": KEY, **extra}


def script(text: str, latency: float = 0.0, **extra: Any) -> dict[str, Any]:
    """Script fields for the upstream's ``set_scripts``."""
    return {"text": text, "latency": latency, **extra}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """The scripted latencies of the standard panel, judge and synthesizer, and how they scale."""

    scale: float = 1.0
    """Multiplier for every scripted latency that says so (member, judge, synthesizer, grace, panel_timeout)."""
    panel_latency: tuple[float, ...] = (0.3, 0.4, 0.5)
    judge_latency: float = 0.3
    synth_latency: float = 0.3
    warmup: int = 3
    """Warm-up calls before a measurement (fills LiteLLM's client cache and the preset store)."""

    @classmethod
    def quick(cls) -> Scenario:
        return cls(scale=0.4, warmup=2)

    def lat(self, seconds: float) -> float:
        """``seconds`` at this scenario's scale."""
        return round(seconds * self.scale, 4)

    def critical_path_ms(self) -> float:
        """Slowest member + judge + synthesizer, as scripted."""
        return round(1000 * (max(self.lat(x) for x in self.panel_latency) + self.lat(self.judge_latency) + self.lat(self.synth_latency)), 1)

    def scripts(self, synth_extra: dict[str, Any] | None = None, panel_text: str | None = None) -> dict[str, Any]:
        """The standard panel, judge and synthesizer scripts."""
        scripts = {name: script(panel_text or PANEL_TEXT[name], self.lat(lat)) for name, lat in zip(PANEL, self.panel_latency, strict=True)}
        scripts[JUDGE] = script(JUDGE_JSON, self.lat(self.judge_latency))
        scripts[SYNTH] = script(SYNTH_TEXT, self.lat(self.synth_latency), **(synth_extra or {}))
        return scripts


def standard_spec(base_url: str, **extra: Any) -> dict[str, Any]:
    """The fusion spec of the standard panel on the scripted upstream, with ``extra`` fields."""
    return {
        "panel": [member(base_url, name) for name in PANEL],
        "judge": member(base_url, JUDGE),
        "synthesizer": member(base_url, SYNTH),
        "timeout": 60,
        **extra,
    }
