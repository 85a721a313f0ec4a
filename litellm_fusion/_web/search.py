"""Web search for the client tool loop, through ``litellm.asearch`` (any LiteLLM search provider).

Inside the proxy, ``search_tool_name`` picks one of the proxy's configured ``search_tools``, so search
keys live in the proxy config like model keys do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import litellm

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._core.nested import resolve_secret
from litellm_fusion._spec.config import WebSearchSpec

__all__ = ["SearchHit", "SearchOutcome", "SearchFn", "make_search"]


@dataclass(frozen=True, kw_only=True)
class SearchHit:
    """One search result as the model sees it."""

    title: str
    url: str
    snippet: str
    date: str | None = None


@dataclass(frozen=True, kw_only=True)
class SearchOutcome:
    """The result of one search: hits, or an error the model is told about (never raised)."""

    query: str
    hits: tuple[SearchHit, ...] = ()
    cost: float | None = None
    error: str | None = None
    latency_ms: float = 0.0


SearchFn = Callable[[str, int], Awaitable[SearchOutcome]]
"""``search(query, max_results) -> SearchOutcome``; the seam tests replace."""


def _proxy_search_tool(router: Any, name: str) -> dict[str, Any]:
    for tool in getattr(router, "search_tools", None) or []:
        if tool.get("search_tool_name") == name:
            return dict(tool.get("litellm_params") or {})
    raise FusionConfigError(f"fusion.web.search.search_tool_name: no search tool '{name}' in the proxy's search_tools")


def _cost_per_query(provider: str) -> float | None:
    try:
        from litellm.search import search_provider_cost_per_query

        return float(search_provider_cost_per_query(model=f"{provider}/search", custom_llm_provider=provider)[0])
    except Exception:  # an unpriced provider is not an error
        return None


def make_search(spec: WebSearchSpec, *, router: Any | None = None, timeout: float = 15.0) -> SearchFn:
    """The search function for ``spec``; a missing backend is a 400 at request time, not a runtime surprise."""
    params: dict[str, Any] = {"search_provider": spec.provider, "api_base": spec.api_base}
    if spec.search_tool_name:
        if router is None:
            raise FusionConfigError("fusion.web.search.search_tool_name works inside the LiteLLM proxy only; set provider/api_base instead")
        params = {key: resolve_secret(value) for key, value in _proxy_search_tool(router, spec.search_tool_name).items()}
    provider = params.get("search_provider") or spec.provider
    if provider == "searxng" and not (params.get("api_base") or os.environ.get("SEARXNG_API_BASE")):
        raise FusionConfigError(
            "web search needs a backend: set fusion.web.search.api_base to your SearXNG instance (or SEARXNG_API_BASE), "
            "or fusion.web.search.provider to tavily / exa_ai / brave / perplexity with its key in the environment"
        )
    call_params = {k: v for k, v in params.items() if k not in {"search_provider", "timeout", "max_retries"} and v is not None}
    per_query = _cost_per_query(provider)

    async def search(query: str, max_results: int) -> SearchOutcome:
        started = time.perf_counter()
        try:
            response = await litellm.asearch(query=query, search_provider=provider, max_results=max_results, timeout=timeout, **call_params)
        except Exception as exc:  # the model is told the search failed; the member goes on
            message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            return SearchOutcome(query=query, error=f"search failed: {message}", latency_ms=(time.perf_counter() - started) * 1000)
        hits = tuple(
            SearchHit(title=r.title or "", url=r.url, snippet=(r.snippet or "")[:500], date=getattr(r, "date", None))
            for r in response.results[:max_results]  # some providers (SearXNG) ignore max_results
            if getattr(r, "url", None)
        )
        return SearchOutcome(query=query, hits=hits, cost=per_query, latency_ms=(time.perf_counter() - started) * 1000)

    return search
