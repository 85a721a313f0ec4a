# ruff: noqa: E501  (the provider table in the docstring is copied to the README as is)
"""The provider's own web tools for a panel member, chosen per provider (checked on LiteLLM 1.108.7).

``native_plan(model)`` says what to add to the nested ``litellm.acompletion`` call. It returns None when the
provider has no native web path here; the caller then runs the client-side tool loop. The provider comes
from ``litellm.get_llm_provider``. ``litellm.supports_web_search`` is only used to pick OpenAI models for
the Responses bridge, because the model map's flag has gaps: ``gpt-5.4`` and the ``claude-haiku-4-5``
alias are not flagged.

| Provider | What is sent | Native fetch? | Mixes with function tools? |
|---|---|---|---|
| ``anthropic`` | ``tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": N}, {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": N, "max_content_tokens": 20000}]``; LiteLLM adds ``anthropic-beta: web-fetch-2025-09-10`` | yes | yes (function tools go out as ``type: custom``) |
| ``vertex_ai`` Claude | ``tools=[web_search_20250305 as above]``; LiteLLM sends ``anthropic-beta: web-search-2025-03-05``. Web fetch is left out: LiteLLM's beta map has no web-fetch header for Vertex | no | yes |
| ``gemini``, ``vertex_ai`` Gemini | ``tools=[{"googleSearch": {}}, {"urlContext": {}}]``, sent as ``googleSearch`` + ``url_context`` | yes (URL context) | **no**: LiteLLM drops the search tools, with a warning, when function declarations are present |
| ``openai`` search models (``*-search-preview``, ``*-search-api``) | ``web_search_options={"search_context_size": "medium"}`` on chat completions | no | no |
| ``openai``, other models that ``supports_web_search`` or are ``gpt-5*`` | model rewritten to ``openai/responses/<model>``, ``tools=[{"type": "web_search"}]``, ``max_tool_calls=N``; LiteLLM bridges this to ``POST /responses`` | no (only the Responses tool's ``open_page``) | yes |
| ``xai`` | ``web_search_options={}``; LiteLLM bridges this to ``POST /responses`` with ``tools=[{"type": "web_search"}]`` | no | yes |
| ``openrouter`` | ``tools=[{"type": "openrouter:web_search", "parameters": {"max_results": 5, "max_total_results": 5 * N}}, {"type": "openrouter:web_fetch", "parameters": {"max_uses": N, "max_content_tokens": 20000}}]``, passed through unchanged | yes | yes |
| ``perplexity`` | nothing: Sonar always searches | no | no |
| anything else (``azure``, ``bedrock``, ``groq``, ``mistral``, ``hosted_vllm``, …) | None: use the client loop | n/a | n/a |

On OpenAI regular models, ``web_search_options`` raises ``UnsupportedParamsError``. A plain ``openai/<model>``
called with ``tools=[{"type": "web_search"}]`` still goes to ``/chat/completions``. That is why these models
are rewritten to ``openai/responses/<model>``.

``aliases`` maps a proxy ``model_name`` to the LiteLLM model behind it. It is used only to detect the
provider, and the plan keeps the alias as its model. An alias that would need a model rewrite (the OpenAI
Responses bridge) gets None, because a Router name cannot be rewritten for a single call.

Anthropic's server tool calls come back in ``message.tool_calls`` (ids starting ``srvtoolu_``), even when
``finish_reason`` is ``"stop"``. A client loop must not run them (see :func:`is_server_tool_call`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import litellm

from litellm_fusion._core.capabilities import supports

__all__ = ["NativePlan", "native_plan", "is_native_refusal", "is_server_tool_call", "FETCH_MAX_CONTENT_TOKENS"]

FETCH_MAX_CONTENT_TOKENS = 20_000
"""Cap on one natively fetched page (Anthropic and OpenRouter ``max_content_tokens``)."""
_OPENROUTER_RESULTS_PER_SEARCH = 5
_OPENAI_SEARCH_MODEL = re.compile(r"search-(preview|api)")


@dataclass(frozen=True, kw_only=True)
class NativePlan:
    """How to call one member with its provider's own web tools."""

    model: str
    """The model to call: the input model (or alias) unchanged, or ``openai/responses/<model>``."""
    extra: dict[str, Any]
    """Keyword arguments to add to the nested ``litellm.acompletion`` call (``tools``, ``web_search_options``, …)."""
    has_search: bool
    has_fetch: bool
    mixes_with_function_tools: bool
    """Whether client-side function tools (e.g. our ``web_fetch``) may be sent beside the native ones."""
    provider: str


def _anthropic_search(max_uses: int) -> dict[str, Any]:
    return {"type": "web_search_20250305", "name": "web_search", "max_uses": max_uses}


def native_plan(model: str, *, max_uses: int = 8, aliases: dict[str, str] | None = None) -> NativePlan | None:
    """The native web plan for ``model`` (table in the module docstring), or None for the client loop."""
    target = (aliases or {}).get(model, model)
    aliased = target != model
    try:
        base, provider, _, _ = litellm.get_llm_provider(target)
    except Exception:  # unknown names make LiteLLM raise
        return None
    name = base.lower()
    plan = dict(model=model, provider=provider, has_search=True)
    if provider == "anthropic":
        fetch = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": max_uses, "max_content_tokens": FETCH_MAX_CONTENT_TOKENS}
        return NativePlan(**plan, extra={"tools": [_anthropic_search(max_uses), fetch]}, has_fetch=True, mixes_with_function_tools=True)
    if provider == "vertex_ai" and "claude" in name:
        return NativePlan(**plan, extra={"tools": [_anthropic_search(max_uses)]}, has_fetch=False, mixes_with_function_tools=True)
    if provider == "gemini" or (provider == "vertex_ai" and "gemini" in name):
        tools = [{"googleSearch": {}}, {"urlContext": {}}]
        return NativePlan(**plan, extra={"tools": tools}, has_fetch=True, mixes_with_function_tools=False)
    if provider == "openai":
        bare = name.removeprefix("responses/")
        if _OPENAI_SEARCH_MODEL.search(bare) and bare == name:
            extra = {"web_search_options": {"search_context_size": "medium"}}
            return NativePlan(**plan, extra=extra, has_fetch=False, mixes_with_function_tools=False)
        if bare != name or bare.startswith("gpt-5") or supports("web_search", target):
            if aliased and bare == name:
                return None  # the rewrite would bypass the Router deployment behind the alias
            rewritten = model if bare != name else f"openai/responses/{base}"
            extra = {"tools": [{"type": "web_search"}], "max_tool_calls": max_uses}
            return NativePlan(**{**plan, "model": rewritten}, extra=extra, has_fetch=False, mixes_with_function_tools=True)
        return None
    if provider == "xai":
        return NativePlan(**plan, extra={"web_search_options": {}}, has_fetch=False, mixes_with_function_tools=True)
    if provider == "openrouter":
        search = {"max_results": _OPENROUTER_RESULTS_PER_SEARCH, "max_total_results": _OPENROUTER_RESULTS_PER_SEARCH * max_uses}
        fetch = {"max_uses": max_uses, "max_content_tokens": FETCH_MAX_CONTENT_TOKENS}
        tools = [{"type": "openrouter:web_search", "parameters": search}, {"type": "openrouter:web_fetch", "parameters": fetch}]
        return NativePlan(**plan, extra={"tools": tools}, has_fetch=True, mixes_with_function_tools=True)
    if provider == "perplexity":
        return NativePlan(**plan, extra={}, has_fetch=False, mixes_with_function_tools=False)
    return None


# A refusal of the native tool names it: Anthropic "web search is not enabled", OpenAI "Tool 'web_search' is not
# supported with ...", Gemini "Search Grounding is not supported", LiteLLM "does not support parameters:
# ['web_search_options']", or a schema error about "tools.0" / "url_context" / a beta header.
_TOOL_WORDS = re.compile(r"tool|web[ _-]?(search|fetch)|search|grounding|url[ _]?context|browse|beta", re.IGNORECASE)


def is_native_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is the provider refusing the native web tool, so one retry in client mode is worth it.

    That means a 400/422 (``BadRequestError``, ``UnprocessableEntityError``, ``UnsupportedParamsError``) whose
    message is about tools, search, fetch, grounding or a beta header. Context-window and content-policy
    errors are 400s too, but client mode would not fix them, so they are excluded.
    """
    if isinstance(exc, (litellm.ContextWindowExceededError, litellm.ContentPolicyViolationError)):
        return False
    refused = isinstance(exc, (litellm.BadRequestError, litellm.UnprocessableEntityError, litellm.UnsupportedParamsError))
    if not refused and getattr(exc, "status_code", None) not in (400, 422):
        return False
    return bool(_TOOL_WORDS.search(str(exc)))


def is_server_tool_call(tool_call: Any) -> bool:
    """Whether a ``message.tool_calls`` entry is a provider-executed server tool (Anthropic ``srvtoolu_`` ids).

    A client loop must neither run nor answer it. LiteLLM rebuilds it from ``provider_specific_fields`` when the
    assistant message is replayed.
    """
    call_id = tool_call.get("id") if isinstance(tool_call, dict) else getattr(tool_call, "id", None)
    return isinstance(call_id, str) and call_id.startswith("srvtoolu_")
