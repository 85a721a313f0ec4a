"""The soak's requests: the mix of kinds, the upstream scripts and fusion specs behind them, and one request of each.

Each kind has a share of every batch (:data:`MIX`, exact counts per batch) and an expected outcome
(:data:`EXPECTED`); the table in ``soak.py``'s docstring says what each does.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

__all__ = ["MIX", "EXPECTED", "MODELS", "SCRIPTS", "build_specs", "batch_kinds", "one_request"]

UPSTREAM_KEY = "sk-soak-upstream"

# kind -> share of every batch; the shares sum to 1.
MIX: dict[str, float] = {
    "normal": 0.58,
    "stream": 0.10,
    "stream_abandon": 0.02,
    "member_500": 0.07,
    "member_500_strict": 0.03,
    "member_hang": 0.05,
    "judge_500": 0.05,
    "cancel": 0.05,
    "malformed": 0.05,
}
EXPECTED: dict[str, str] = {
    "normal": "ok",
    "stream": "stream_ok",
    "stream_abandon": "stream_abandoned",
    "member_500": "ok_degraded",
    "member_500_strict": "503",
    "member_hang": "ok_degraded",
    "judge_500": "ok_degraded",
    "cancel": "cancelled",
    "malformed": "400",
}

ANALYSIS = '{"consensus": ["Paris"], "contradictions": [], "partial_coverage": [], "unique_insights": [], "blind_spots": []}'

# Role -> the upstream model name. Real ids from LiteLLM's bundled price map: every nested call is priced
# like a real one, and LiteLLM's model-info look-ups take their fast path (an unknown name costs a fuzzy
# search through the whole map on every call, ~1 ms of CPU each). The server sees the name without "openai/".
MODELS: dict[str, str] = {
    "a": "gpt-4o-mini",
    "b": "gpt-4.1-mini",
    "c": "gpt-4.1-nano",
    "judge": "gpt-4o",
    "synth": "gpt-4.1",
    "synth_long": "gpt-4.1-2025-04-14",
    "err": "gpt-4o-mini-2024-07-18",
    "judge_err": "gpt-4o-2024-08-06",
    "hang": "gpt-4.1-mini-2025-04-14",
    "slow_a": "gpt-3.5-turbo",
    "slow_b": "gpt-3.5-turbo-0125",
    "slow_c": "gpt-4-turbo",
}

# Role -> Script fields.
ROLE_SCRIPTS: dict[str, dict[str, Any]] = {
    "a": {"text": "Member A: Paris is the capital of France.", "latency": 0.005},
    "b": {"text": "Member B: the capital of France is Paris, on the Seine.", "latency": 0.010},
    "c": {"text": "Member C: Paris.", "latency": 0.020},
    "judge": {"text": ANALYSIS, "latency": 0.010},
    "synth": {"text": "Paris is the capital of France, on the Seine.", "latency": 0.005, "chunk_chars": 8, "chunk_delay": 0.001},
    # ~26 s of stream: an abandoned one still open at the drain was not closed by the caller's aclose().
    "synth_long": {"text": "Paris. " * 300, "latency": 0.005, "chunk_chars": 4, "chunk_delay": 0.05},
    "err": {"status": 500, "latency": 0.005, "error_message": "scripted member failure"},
    "judge_err": {"status": 500, "latency": 0.010, "error_message": "scripted judge failure"},
    "hang": {"hang": True},
    "slow_a": {"text": "Slow A: Paris.", "latency": 5.0},
    "slow_b": {"text": "Slow B: Paris.", "latency": 5.0},
    "slow_c": {"text": "Slow C: Paris.", "latency": 5.0},
}
SCRIPTS: dict[str, dict[str, Any]] = {MODELS[role]: script for role, script in ROLE_SCRIPTS.items()}


def _member(base_url: str, role: str) -> dict[str, Any]:
    return {"model": f"openai/{MODELS[role]}", "api_base": base_url, "api_key": UPSTREAM_KEY}


def build_specs(base_url: str) -> dict[str, dict[str, Any]]:
    """The pre-built fusion spec of each kind (malformed uses the normal one)."""

    def spec(panel: list[str], judge: str = "judge", synth: str = "synth", **extra: Any) -> dict[str, Any]:
        return {
            "panel": [_member(base_url, m) for m in panel],
            "judge": _member(base_url, judge),
            "synthesizer": _member(base_url, synth),
            # Generous: the driver is CPU-bound, so under 16-way concurrency a request waits its turn for seconds.
            "timeout": 120.0,
            "panel_timeout": 60.0,
            **extra,
        }

    normal = spec(["a", "b", "c"])
    return {
        "normal": normal,
        "stream": normal,
        "stream_abandon": spec(["a", "b", "c"], synth="synth_long"),
        "member_500": spec(["a", "b", "err"]),
        "member_500_strict": spec(["a", "b", "err"], min_quorum=3),
        "member_hang": spec(["a", "b", "hang"], straggler_grace=0.05),
        "judge_500": spec(["a", "b", "c"], judge="judge_err"),
        "cancel": spec(["slow_a", "slow_b", "slow_c"]),
        "malformed": normal,
    }


MALFORMED_MESSAGES: list[Any] = [
    [{"role": "bogus", "content": "What is the capital of France?"}],
    [{"role": "user"}],
    [],
]


def _messages(n: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Question {n}: what is the capital of France? Answer in one sentence."}]


def _status(exc: BaseException) -> str:
    code = getattr(exc, "status_code", None)
    return str(code) if isinstance(code, int) else f"error:{type(exc).__name__}"


async def one_request(kind: str, n: int, specs: dict[str, dict[str, Any]], rng: random.Random) -> tuple[str, str | None]:
    """Run one request of ``kind``; return (outcome, detail for an unexpected one)."""
    import litellm

    spec = specs[kind]
    messages: Any = _messages(n)
    if kind == "malformed":
        messages = MALFORMED_MESSAGES[n % len(MALFORMED_MESSAGES)]
    try:
        if kind == "cancel":
            task = asyncio.create_task(litellm.acompletion(model="fusion/soak", fusion=spec, messages=messages))
            await asyncio.sleep(rng.uniform(0.05, 1.0))
            if task.done():
                response = task.result()
                return ("ok_degraded" if response._hidden_params["fusion"]["degraded"] else "ok"), "finished before the cancel"
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Ours, not the caller's: only swallow it if this task itself is not being cancelled.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                return "cancelled", None
            return "ok", "finished despite the cancel"
        if kind in ("stream", "stream_abandon"):
            stream = await litellm.acompletion(
                model="fusion/soak", fusion=spec, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            text, chunks, usage = [], 0, None
            try:
                async for chunk in stream:
                    chunks += 1
                    if chunk.choices:
                        text.append(chunk.choices[0].delta.content or "")
                    usage = getattr(chunk, "usage", None) or usage
                    if kind == "stream_abandon" and chunks >= 3:
                        break
            finally:
                await stream.aclose()
            if kind == "stream_abandon":
                return "stream_abandoned", None
            if not "".join(text).strip() or usage is None:
                return "stream_incomplete", f"{chunks} chunks, text={''.join(text)!r}, usage={usage!r}"
            return "stream_ok", None
        response = await litellm.acompletion(model="fusion/soak", fusion=spec, messages=messages)
        if not (response.choices[0].message.content or "").strip():
            return "empty", "empty answer"
        trace = response._hidden_params["fusion"]
        return ("ok_degraded" if trace["degraded"] else "ok"), None
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the outcome is the status; anything unexpected is reported with its message
        return _status(exc), f"{type(exc).__name__}: {str(exc)[:300]}"


def batch_kinds(n: int, rng: random.Random) -> list[str]:
    """Exactly the MIX shares of ``n`` (largest remainder), shuffled."""
    exact = {kind: share * n for kind, share in MIX.items()}
    counts = {kind: int(math.floor(v)) for kind, v in exact.items()}
    for kind in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[kind] += 1
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    rng.shuffle(kinds)
    return kinds
