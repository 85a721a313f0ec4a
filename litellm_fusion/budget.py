"""Pre-flight limits, checked before any upstream call: prompt size and a worst-case cost estimate.

The estimate is an upper bound of one request's spend: every member's prompt at its input price plus
its completion cap at its output price; the judge reading every answer (and one repair call); the
synthesizer reading answers and analysis (and one fallback writer); all times ``1 + num_retries``.
"""

from __future__ import annotations

from typing import Any

import litellm

from .config import FusionSpec, MemberSpec
from .errors import FusionConfigError
from .prompts import JUDGE_SYSTEM, SYNTHESIZER_SYSTEM

__all__ = ["prompt_chars", "check_prompt_size", "estimate_max_cost", "check_cost_cap"]

# Prompt-template overhead in tokens, rounded up from the prompts' length (~4 characters a token).
_TEMPLATE_TOKENS = (len(JUDGE_SYSTEM) + len(SYNTHESIZER_SYSTEM)) // 4 + 200


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of all message text (string contents and text parts)."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(part.get("text", "")) for part in content if isinstance(part, dict))
    return total


def check_prompt_size(messages: list[dict[str, Any]], spec: FusionSpec) -> None:
    """A conversation above ``max_prompt_chars`` is a 400 (it would be sent N+2 times)."""
    size = prompt_chars(messages)
    if size > spec.max_prompt_chars:
        raise FusionConfigError(
            f"messages: {size} characters, above max_prompt_chars={spec.max_prompt_chars}; "
            "shorten the conversation or raise fusion.max_prompt_chars"
        )


def _prices(member: MemberSpec, aliases: dict[str, str]) -> tuple[float, float]:
    if member.input_cost_per_token is not None and member.output_cost_per_token is not None:
        return member.input_cost_per_token, member.output_cost_per_token
    model = aliases.get(member.model, member.model)
    try:
        info = litellm.get_model_info(model)
        return float(info["input_cost_per_token"] or 0.0), float(info["output_cost_per_token"] or 0.0)
    except Exception:  # LiteLLM raises for unmapped models
        raise FusionConfigError(
            f"max_cost is set but LiteLLM has no price for '{member.model}'; give that member "
            "input_cost_per_token and output_cost_per_token, or remove max_cost"
        ) from None


def _cap(member: MemberSpec, spec: FusionSpec, path: str) -> int:
    cap = member.max_tokens or spec.max_completion_tokens
    if cap is None:
        raise FusionConfigError(
            f"max_cost needs a completion-token cap to bound the estimate: set fusion.max_completion_tokens (or {path}.max_tokens)"
        )
    return cap


def estimate_max_cost(spec: FusionSpec, messages: list[dict[str, Any]], aliases: dict[str, str] | None = None) -> float:
    """The most one request can cost under ``spec``, in USD (see the module docstring)."""
    aliases = aliases or {}
    prompt = litellm.token_counter(model="gpt-4o", messages=messages)
    total, answers = 0.0, 0
    if spec.invocation != "always":
        # The outer call (conversation + the panel tool), whose focused question then lengthens the panel's prompt.
        writer = spec.synthesizer_or_judge
        outer_cap = _cap(writer, spec, "fusion.synthesizer")
        price_in, price_out = _prices(writer, aliases)
        total += (prompt + _TEMPLATE_TOKENS) * price_in + outer_cap * price_out
        prompt += outer_cap
    for i, member in enumerate(spec.panel):
        cap = _cap(member, spec, f"fusion.panel[{i}]")
        price_in, price_out = _prices(member, aliases)
        total += prompt * price_in + cap * price_out
        answers += cap
    judge_cap = _cap(spec.judge, spec, "fusion.judge")
    price_in, price_out = _prices(spec.judge, aliases)
    judge_prompt = prompt + answers + _TEMPLATE_TOKENS
    total += 2 * (judge_prompt * price_in + judge_cap * price_out)  # the call and its repair
    writers = [spec.synthesizer_or_judge] + ([spec.judge] if spec.synthesizer_or_judge.model != spec.judge.model else [])
    for writer in writers:
        cap = _cap(writer, spec, "fusion.synthesizer")
        price_in, price_out = _prices(writer, aliases)
        total += (prompt + answers + judge_cap + _TEMPLATE_TOKENS) * price_in + cap * price_out
    retries = max([spec.num_retries, *(m.num_retries or 0 for m in [*spec.panel, spec.judge, spec.synthesizer_or_judge])])
    return total * (1 + retries)


def check_cost_cap(spec: FusionSpec, messages: list[dict[str, Any]], aliases: dict[str, str] | None = None) -> float | None:
    """The estimate when ``max_cost`` is set; above the cap it is a 400 naming both numbers."""
    if spec.max_cost is None:
        return None
    estimate = estimate_max_cost(spec, messages, aliases)
    if estimate > spec.max_cost:
        raise FusionConfigError(
            f"estimated worst-case cost ${estimate:.6f} is above max_cost=${spec.max_cost:.6f}; "
            "raise fusion.max_cost, lower max_completion_tokens, or use fewer or cheaper members"
        )
    return estimate
