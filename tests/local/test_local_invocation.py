"""``invocation: auto | required`` on the real local models (marker ``local``): structure, never wording.

Whether the 1.5B outer model calls the panel is its own decision; either way the trace must say which path
ran and the usage must be the exact sum of the calls that did. Reuses a local server already answering at
``$LITELLM_FUSION_LOCAL_BASE`` (else starts one).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import pytest  # noqa: E402

import litellm_fusion  # noqa: E402
from litellm_fusion import local  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is 6 x 7? Reply with the number only."}]


@pytest.fixture(scope="module")
def base_url():
    saved = list(litellm.custom_provider_map)
    litellm_fusion.register()
    with local.running_local_server(local.local_base_url()) as server:
        yield server.base_url
    litellm.custom_provider_map = saved


def spec(base_url: str, invocation: str) -> dict[str, Any]:
    small = local.local_member(local.SMALL, base_url, temperature=0, max_tokens=64)
    large = local.local_member(local.LARGE, base_url, temperature=0, max_tokens=64)
    judge = local.local_member(local.LARGE, base_url, temperature=0, max_tokens=384)
    return {
        "panel": [small, large],
        "judge": judge,
        "synthesizer": large,
        "invocation": invocation,
        "straggler_grace": None,
        "timeout": 900,
    }


def _check(trace: dict[str, Any], usage: Any, text: str, invocation: str) -> None:
    assert text.strip() or trace["invocation"]["invoked"] is False
    decision = trace["invocation"]
    assert decision["mode"] == invocation and isinstance(decision["reason"], str)
    outer = decision["outer"]
    assert outer["status"] == "ok" and outer["usage"]["completion_tokens"] > 0
    parts = [outer["usage"]]
    if decision["invoked"]:
        assert len(trace["panel"]) == 2 and all(m["status"] == "ok" for m in trace["panel"])
        assert trace["synthesizer"]["status"] == "ok"
        parts += [m["usage"] for m in trace["panel"]] + [trace["judge"]["usage"], trace["synthesizer"]["usage"]]
    else:
        assert text.strip(), "a direct answer is the response"
        assert trace["panel"] == [] and trace["judge"] is None and trace["synthesizer"] is None
    for key in ("prompt_tokens", "completion_tokens"):
        summed = sum(p[key] for p in parts)
        got = usage[key] if isinstance(usage, dict) else getattr(usage, key)
        assert summed == trace["usage"][key] == got, (key, parts, usage)
    assert trace["cost"] == 0


@pytest.mark.parametrize("invocation", ["auto", "required"])
async def test_invocation_on_the_local_models(base_url: str, invocation: str) -> None:
    response = await litellm.acompletion(model="fusion/local-invocation", messages=MESSAGES, fusion=spec(base_url, invocation))
    trace = response._hidden_params["fusion"]
    _check(trace, response.usage, response.choices[0].message.content or "", invocation)
    if invocation == "required":
        assert trace["invocation"]["invoked"] is True


async def test_auto_streams_on_the_local_models(base_url: str) -> None:
    stream = await litellm.acompletion(
        model="fusion/local-invocation",
        messages=MESSAGES,
        fusion=spec(base_url, "auto"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    trace = next(
        (c.choices[0].delta.provider_specific_fields or {})["fusion"]
        for c in chunks
        if c.choices and (getattr(c.choices[0].delta, "provider_specific_fields", None) or {}).get("fusion")
    )
    usage = next(c.usage for c in reversed(chunks) if getattr(c, "usage", None) is not None)
    _check(trace, usage, text, "auto")
