"""Pre-flight limits, checked before any upstream call: prompt size and a worst-case cost estimate.

The estimate is an upper bound of one request's spend: every member's calls (below) at their input and
output prices; the judge reading every answer (and one repair call); the synthesizer reading answers and
analysis (and one fallback writer); all times ``1 + num_retries``.

A member without web tools makes one call: its prompt plus its completion cap. A member with web tools
makes up to ``max_tool_calls + 2`` calls (the client loop's steps, its forced last answer, and a refused
native attempt before it), each reading the prompt, every earlier step's output and every tool result so
far; natively, the provider's own search results and fetched pages are input tokens too, and each search
has a fee. Web content is counted at one token per character (pages are untrusted: no tokenizer is
assumed to compress them), our own templates at a character count over two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import litellm

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._engine.prompts import JUDGE_SYSTEM, SYNTHESIZER_SYSTEM
from litellm_fusion._spec.config import FusionSpec, MemberSpec
from litellm_fusion._web.loop import WEB_NOTE
from litellm_fusion._web.native import FETCH_MAX_CONTENT_TOKENS, native_plan
from litellm_fusion._web.tools import WEB_FETCH_TOOL, WEB_SEARCH_TOOL

__all__ = ["prompt_chars", "check_prompt_size", "estimate_max_cost", "check_cost_cap"]

# Prompt-template overhead in tokens, rounded up from the prompts' length (~4 characters a token). Every call
# is charged both prompts, which also covers the vote's key in the judge's prompt and its recommendation in
# the synthesizer's; what grows with the panel is the vote's line per claim (up to 200 characters of it).
_TEMPLATE_TOKENS = (len(JUDGE_SYSTEM) + len(SYNTHESIZER_SYSTEM)) // 4 + 200
_VOTE_LINE_TOKENS = 60
# What a web member's every call adds: the web note and the two tool schemas.
_WEB_OVERHEAD_TOKENS = (len(WEB_NOTE) + len(str(WEB_SEARCH_TOOL)) + len(str(WEB_FETCH_TOOL))) // 2 + 100
# One client-loop tool message around its payload (the untrusted-data note, the call id, JSON keys).
_TOOL_MESSAGE_CHARS = 400
# Title, URL and date of one search hit (the snippet is cut at 500 characters by the search backend adapter).
_SEARCH_HIT_CHARS = 500 + 2_000
# Title and final URL of a fetched page, around its ``max_chars`` of text.
_PAGE_EXTRA_CHARS = 3_000
# One native search's results as input tokens (providers return a few thousand; this bounds it generously).
_NATIVE_SEARCH_TOKENS = 10_000
# Per-search fee when LiteLLM prices none for the provider (above every fee in LiteLLM's map).
_DEFAULT_SEARCH_FEE = 0.05


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


@dataclass(frozen=True)
class _Calls:
    """A member's worst case as calls: how many, the input each adds over the last, and fixed extras."""

    count: int
    first_input: int
    """Input tokens of the first call."""
    growth: int
    """Input tokens each later call adds over the one before (the previous output replayed)."""
    fees: float = 0.0
    """Search fees in USD."""

    def cost(self, cap: int, price_in: float, price_out: float) -> float:
        # Call k reads first_input + k * growth: the sum over k < count, plus every call's completion cap.
        inputs = self.count * self.first_input + self.growth * self.count * (self.count - 1) // 2
        return inputs * price_in + self.count * cap * price_out + self.fees


def _search_fee(provider: str) -> float:
    try:
        from litellm.search import search_provider_cost_per_query

        return float(search_provider_cost_per_query(model=f"{provider}/search", custom_llm_provider=provider)[0])
    except Exception:  # an unpriced search provider: assume the dearest fee
        return _DEFAULT_SEARCH_FEE


def _native_fee(model: str) -> float:
    try:
        fees = litellm.get_model_info(model).get("search_context_cost_per_query") or {}
    except Exception:  # unmapped model
        fees = {}
    return max([float(v) for v in fees.values() if isinstance(v, (int, float))], default=_DEFAULT_SEARCH_FEE)


def _client_loop_calls(spec: FusionSpec, prompt: int, cap: int) -> _Calls:
    tools = spec.web.max_tool_calls
    search = spec.web.search.max_results * _SEARCH_HIT_CHARS
    fetch = spec.web.fetch.max_chars + _PAGE_EXTRA_CHARS if spec.web.fetch.enabled else 0
    result = max(search, fetch) + _TOOL_MESSAGE_CHARS
    # Every allowed call's result (at most max_tool_calls of them), plus the one step whose surplus calls
    # are refused: fewer than cap / 10 calls (a call is at least ten tokens), each a short refusal.
    results = tools * result + (cap // 10 + 1) * _TOOL_MESSAGE_CHARS
    return _Calls(
        count=tools + 2, first_input=prompt + _WEB_OVERHEAD_TOKENS + results, growth=cap, fees=tools * _search_fee(spec.web.search.provider)
    )


def _native_calls(member: MemberSpec, spec: FusionSpec, prompt: int, cap: int, aliases: dict[str, str]) -> _Calls:
    tools = spec.web.max_tool_calls
    plan = native_plan(member.model, max_uses=tools, aliases=aliases)
    fetches = tools if plan is None or plan.has_fetch or plan.mixes_with_function_tools else 0
    pages = fetches * max(FETCH_MAX_CONTENT_TOKENS, spec.web.fetch.max_chars + _PAGE_EXTRA_CHARS)
    results = tools * _NATIVE_SEARCH_TOKENS + pages
    # The provider samples again after each tool use: up to one step per search and per fetch, plus the answer.
    fees = tools * max(_native_fee(aliases.get(member.model, member.model)), _search_fee(spec.web.search.provider))
    return _Calls(count=tools + fetches + 2, first_input=prompt + _WEB_OVERHEAD_TOKENS + results, growth=cap, fees=fees)


def _member_calls(member: MemberSpec, mode: str, spec: FusionSpec, prompt: int, cap: int, aliases: dict[str, str]) -> _Calls:
    if mode == "off":
        return _Calls(count=1, first_input=prompt, growth=0)
    if mode == "presearch":
        search = spec.web.search.max_results * _SEARCH_HIT_CHARS + _TOOL_MESSAGE_CHARS
        return _Calls(count=1, first_input=prompt + _WEB_OVERHEAD_TOKENS + search, growth=0, fees=_search_fee(spec.web.search.provider))
    if mode == "client":
        return _client_loop_calls(spec, prompt, cap)
    # Native, and after a refusal the client loop: the bigger of the two covers either path.
    native, client = _native_calls(member, spec, prompt, cap, aliases), _client_loop_calls(spec, prompt, cap)
    return _Calls(
        count=max(native.count, client.count),
        first_input=max(native.first_input, client.first_input),
        growth=cap,
        fees=max(native.fees, client.fees),
    )


def estimate_max_cost(
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    aliases: dict[str, str] | None = None,
    web_modes: tuple[str, ...] = (),
) -> float:
    """The most one request can cost under ``spec``, in USD (see the module docstring).

    ``web_modes`` is each panel member's web path (``_web.member.member_web_mode``); empty means no web.
    Raises ``FusionConfigError`` when a completion cap or a price is missing (the message says which).
    """
    aliases = aliases or {}
    modes = web_modes or ("off",) * len(spec.panel)
    prompt = litellm.token_counter(model="gpt-4o", messages=messages)
    total, answers = 0.0, 0
    if spec.invocation != "always":
        # The outer call (conversation + the panel tool), whose focused question then lengthens the panel's prompt.
        writer = spec.synthesizer_or_judge
        outer_cap = _cap(writer, spec, "fusion.synthesizer")
        price_in, price_out = _prices(writer, aliases)
        total += (prompt + _TEMPLATE_TOKENS) * price_in + outer_cap * price_out
        prompt += outer_cap
    for i, (member, mode) in enumerate(zip(spec.panel, modes, strict=True)):
        cap = _cap(member, spec, f"fusion.panel[{i}]")
        price_in, price_out = _prices(member, aliases)
        total += _member_calls(member, mode, spec, prompt, cap, aliases).cost(cap, price_in, price_out)
        # The judge reads the answer and the sources listed under it (20 at most, title and URL each).
        answers += cap + (20 * _SEARCH_HIT_CHARS if mode != "off" else 0)
    judge_cap = _cap(spec.judge, spec, "fusion.judge")
    price_in, price_out = _prices(spec.judge, aliases)
    judge_prompt = prompt + answers + _TEMPLATE_TOKENS
    total += 2 * (judge_prompt * price_in + judge_cap * price_out)  # the call and its repair
    writers = [spec.synthesizer_or_judge] + ([spec.judge] if spec.synthesizer_or_judge.model != spec.judge.model else [])
    for writer in writers:
        cap = _cap(writer, spec, "fusion.synthesizer")
        price_in, price_out = _prices(writer, aliases)
        vote = _VOTE_LINE_TOKENS * len(spec.panel) if spec.aggregation == "vote" else 0
        total += (prompt + answers + judge_cap + _TEMPLATE_TOKENS + vote) * price_in + cap * price_out
    retries = max([spec.num_retries, *(m.num_retries or 0 for m in [*spec.panel, spec.judge, spec.synthesizer_or_judge])])
    return total * (1 + retries)


def check_cost_cap(
    spec: FusionSpec, messages: list[dict[str, Any]], aliases: dict[str, str] | None = None, web_modes: tuple[str, ...] = ()
) -> float | None:
    """The estimate when ``max_cost`` is set; above the cap it is a 400 naming both numbers."""
    if spec.max_cost is None:
        return None
    estimate = estimate_max_cost(spec, messages, aliases, web_modes)
    if estimate > spec.max_cost:
        raise FusionConfigError(
            f"estimated worst-case cost ${estimate:.6f} is above max_cost=${spec.max_cost:.6f}; "
            "raise fusion.max_cost, lower max_completion_tokens, or use fewer or cheaper members"
        )
    return estimate
