"""Every native citation shape LiteLLM 1.108.7 produces, normalised to a list of ``Source(url, title)``.

Shapes read, in this order:

1. ``message.annotations``, in either of two forms. The chat form ``{type: url_citation, url_citation: {url,
   title}}`` comes from OpenAI search models, OpenRouter and Gemini. The flat Responses form ``{type:
   url_citation, url, title}`` comes from the ``openai/responses/`` bridge and xAI. Perplexity gets chat-form
   annotations only with ``EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER`` set, and then only for ``[n]`` markers.
2. Anthropic ``message.provider_specific_fields``. ``["citations"]`` is a list of lists of ``{url, title,
   cited_text}``. ``["web_search_results"]`` holds ``web_search_tool_result`` blocks (``content`` is a list of
   ``{url, title}``) and ``web_fetch_tool_result`` blocks (``content`` is ``{url, content: {title}}``).
   Chat completions carry no ``annotations`` for Anthropic.
3. Gemini ``vertex_ai_grounding_metadata``: a list of ``{groundingChunks: [{web: {uri, title}}]}``. Its URIs
   are ``vertexaisearch.cloud.google.com`` redirects. Also ``vertex_ai_url_context_metadata``: ``[{urlMetadata:
   [{retrievedUrl, urlRetrievalStatus}]}]``, the pages URL context fetched. Both are set as response
   attributes and also in ``response._hidden_params``.
4. Perplexity ``response.search_results`` (``[{title, url}]``) and ``response.citations`` (``[url]``). These
   are the raw fields, passed through by the default OpenAI-SDK path.
5. A raw Responses API object (``litellm.aresponses``): ``output[].content[].annotations``, flat form.

The response may be a LiteLLM object or its dict dump.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Source", "sources_from_response"]


@dataclass(frozen=True, kw_only=True)
class Source:
    """One web page the answer drew on."""

    url: str
    title: str | None = None


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _from_response(response: Any, key: str) -> Any:
    """A field LiteLLM sets as an attribute and/or in ``_hidden_params``."""
    value = _get(response, key)
    if value:
        return value
    hidden = _get(response, "_hidden_params") or _get(response, "hidden_params")
    return _get(hidden, key)


def _annotation(item: Any) -> Iterator[tuple[Any, Any]]:
    if _get(item, "type") not in (None, "url_citation"):
        return
    nested = _get(item, "url_citation")
    source = nested if nested is not None else item
    yield _get(source, "url"), _get(source, "title")


def _anthropic(fields: Any) -> Iterator[tuple[Any, Any]]:
    for group in _list(_get(fields, "citations")):
        for citation in group if isinstance(group, (list, tuple)) else [group]:
            yield _get(citation, "url"), _get(citation, "title")
    for block in _list(_get(fields, "web_search_results")):
        content = _get(block, "content")
        if _get(block, "type") == "web_fetch_tool_result":
            yield _get(content, "url"), _get(_get(content, "content"), "title")
        for result in _list(content):
            yield _get(result, "url"), _get(result, "title")


def _pairs(response: Any) -> Iterator[tuple[Any, Any]]:
    for choice in _list(_get(response, "choices")):
        message = _get(choice, "message")
        for item in _list(_get(message, "annotations")):
            yield from _annotation(item)
        fields = _get(message, "provider_specific_fields")
        if fields:
            yield from _anthropic(fields)
    for item in _list(_get(response, "output")):
        for part in _list(_get(item, "content")):
            for annotation in _list(_get(part, "annotations")):
                yield from _annotation(annotation)
    for metadata in _list(_from_response(response, "vertex_ai_grounding_metadata")):
        for chunk in _list(_get(metadata, "groundingChunks")):
            web = _get(chunk, "web")
            yield _get(web, "uri"), _get(web, "title")
    for metadata in _list(_from_response(response, "vertex_ai_url_context_metadata")):
        for entry in _list(_get(metadata, "urlMetadata")):
            if _get(entry, "urlRetrievalStatus") in (None, "URL_RETRIEVAL_STATUS_SUCCESS"):
                yield _get(entry, "retrievedUrl"), None
    for result in _list(_get(response, "search_results")):
        yield _get(result, "url"), _get(result, "title")
    for url in _list(_get(response, "citations")):
        yield url, None


def sources_from_response(response: Any) -> list[Source]:
    """The pages ``response`` cites or retrieved, deduplicated by URL, in order of first appearance.

    A URL seen first without a title takes the first title found for it later.
    """
    titles: dict[str, str | None] = {}
    for url, title in _pairs(response):
        if not isinstance(url, str) or not url.strip():
            continue
        url = url.strip()
        title = title.strip() if isinstance(title, str) and title.strip() else None
        if titles.get(url) is None:
            titles[url] = title
    return [Source(url=url, title=title) for url, title in titles.items()]
