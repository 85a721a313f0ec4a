"""The scripted demo's fixtures: a word problem, three panel answers (one wrong), a judge that reads the
answers it is shown, and the final answer, served by a :class:`~litellm_fusion.testing.ScriptedServer`.

The calls are real LiteLLM calls over HTTP with real model names, so the demo's report shows real prices.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from litellm_fusion.testing import answer_blocks, stage_of

if TYPE_CHECKING:
    from litellm_fusion.testing import Script

__all__ = ["DEMO_QUESTION", "DEMO_PANEL", "DEMO_JUDGE", "DEMO_SYNTHESIZER", "DEMO_FINAL", "demo_scripts", "demo_spec"]

DEMO_QUESTION = (
    "A bakery sells muffins for $3 each and cookies for $1.50 each. On Monday it sold 48 muffins and twice as "
    "many cookies as muffins. On Tuesday it sold 25% more muffins than on Monday and half as many cookies as on "
    "Monday. What was the bakery's total revenue over the two days?"
)
# (model, latency in seconds, scripted answer); the third member misreads "half as many cookies as on Monday".
DEMO_PANEL = [
    (
        "openai/gpt-4o-mini",
        0.35,
        "Monday: 48 muffins x $3 = $144; 96 cookies x $1.50 = $144; Monday = $288.\n"
        "Tuesday: 48 x 1.25 = 60 muffins x $3 = $180; 96 / 2 = 48 cookies x $1.50 = $72; Tuesday = $252.\n"
        "Total revenue: $288 + $252 = $540.",
    ),
    (
        "openai/gpt-4.1-mini",
        0.45,
        "Count each product over both days. Muffins: 48 + 60 = 108, so 108 x $3 = $324. "
        "Cookies: 96 on Monday and 48 on Tuesday, 144 in all, so 144 x $1.50 = $216.\nTotal: $324 + $216 = $540.",
    ),
    (
        "openai/gpt-4.1-nano",
        0.6,
        "Monday: 48 x $3 + 96 x $1.50 = $288.\nTuesday: 60 muffins, and half as many "
        "cookies, so 30 cookies: 60 x $3 + 30 x $1.50 = $225.\nTotal: $288 + $225 = $513.",
    ),
]
DEMO_JUDGE, DEMO_SYNTHESIZER = "openai/gpt-4o", "openai/gpt-4.1"
DEMO_FINAL = (
    "The bakery took in $540 over the two days.\n\n"
    "- Monday: 48 muffins x $3 = $144, and 96 cookies (twice 48) x $1.50 = $144, so $288.\n"
    "- Tuesday: 60 muffins (25% more than 48) x $3 = $180, and 48 cookies (half of Monday's 96) x $1.50 = $72, so $252.\n\n"
    "Total: $288 + $252 = $540. Check by product: 108 muffins x $3 = $324 plus 144 cookies x $1.50 = $216 = $540."
)


def _analysis(body: dict[str, Any]) -> str:
    """The scripted judge: an analysis that names the shuffled letters it actually sees in the prompt."""
    blocks = answer_blocks(body)
    wrong = [x for x, text in blocks.items() if "$513" in text]
    right = sorted(x for x in blocks if x not in wrong)
    stances = [
        {
            "model": x,
            "stance": "$513: counts 30 Tuesday cookies (half of Tuesday's muffins); wrong, the question says half of Monday's 96."
            if x in wrong
            else "$540 from 48 Tuesday cookies (half of Monday's 96); holds up.",
        }
        for x in sorted(blocks)
    ]
    analysis = {
        "consensus": [
            "Monday revenue is $288: 48 muffins x $3 = $144 plus 96 cookies x $1.50 = $144.",
            "Tuesday's muffins are 48 x 1.25 = 60, worth $180.",
        ]
        if blocks
        else [],
        "contradictions": [{"topic": "How many cookies were sold on Tuesday, and so the total", "stances": stances}] if wrong else [],
        "partial_coverage": [{"models": right, "point": "The total revenue is $540."}] if wrong and right else [],
        "unique_insights": [
            {"model": x, "insight": "Sums by product (108 muffins, 144 cookies) as an independent check."}
            for x, text in blocks.items()
            if "108" in text
        ],
        "blind_spots": ["No answer states its assumption that every item sold at full price (no discounts or returns)."],
    }
    return json.dumps(analysis)


def _writer(body: dict[str, Any]) -> str:
    """The final answer when asked to write (the synthesizer, or the judge's model in its place), else the analysis."""
    return DEMO_FINAL if stage_of(body) == "synthesizer" else _analysis(body)


def _upstream(model: str) -> str:
    return model.split("/", 1)[1]  # the server sees the name without LiteLLM's provider prefix


def demo_scripts() -> dict[str, Script]:
    """The scripted server's scripts: each panel member's answer and latency, the judge, the synthesizer (streamed in small chunks)."""
    # Here, not at the top: the server brings aiohttp, which the other commands never need.
    from litellm_fusion.testing import Script

    scripts = {_upstream(model): Script(text=text, latency=latency) for model, latency, text in DEMO_PANEL}
    scripts[_upstream(DEMO_JUDGE)] = Script(text=_writer, latency=0.5)
    scripts[_upstream(DEMO_SYNTHESIZER)] = Script(text=_writer, latency=0.3, chunk_chars=8, chunk_delay=0.01)
    return scripts


def demo_spec(base_url: str) -> dict[str, Any]:
    """The demo's fusion spec, every member on the scripted server at ``base_url``."""

    def member(model: str) -> dict[str, Any]:
        return {"model": model, "api_base": base_url, "api_key": "sk-demo"}

    return {"panel": [member(m) for m, _, _ in DEMO_PANEL], "judge": member(DEMO_JUDGE), "synthesizer": member(DEMO_SYNTHESIZER)}
