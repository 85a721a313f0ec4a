"""Source normalisation: hand-built shapes, then the real LiteLLM responses from the capture fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any

import pytest
from test_web_native import (
    BRIT,
    FETCHED,
    REDIRECT_A,
    REDIRECT_B,
    WIKI,
    CaptureServer,
    call_plan,
    fake_vertex_auth,
    running_capture_server,
)

from litellm_fusion._web.citations import Source, sources_from_response


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureServer]:
    with running_capture_server() as server:
        yield server


@pytest.fixture
def vertex_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_vertex_auth(monkeypatch)


def S(url: str, title: str | None = None) -> Source:
    return Source(url=url, title=title)


def chat(message: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x", **message}}], **top}


# ---- hand-built shapes ----------------------------------------------------------------------------------------


def test_chat_style_annotations_dedup_in_order() -> None:
    response = chat(
        {
            "annotations": [
                {"type": "url_citation", "url_citation": {"url": "https://b.example/", "title": "B", "start_index": 0, "end_index": 1}},
                {"type": "url_citation", "url_citation": {"url": "https://a.example/", "title": "A"}},
                {"type": "url_citation", "url_citation": {"url": "https://b.example/", "title": "B again"}},
                {"type": "file_citation", "file_citation": {"file_id": "f"}},
            ]
        }
    )
    assert sources_from_response(response) == [S("https://b.example/", "B"), S("https://a.example/", "A")]


def test_flat_responses_style_annotations() -> None:
    response = chat(
        {"annotations": [{"type": "url_citation", "url": "https://a.example/", "title": "A", "start_index": 0, "end_index": 2}]}
    )
    assert sources_from_response(response) == [S("https://a.example/", "A")]


def test_anthropic_provider_specific_fields() -> None:
    fields = {
        "citations": [
            [{"type": "web_search_result_location", "url": "https://a.example/", "title": "A", "cited_text": "..."}],
            [{"type": "char_location", "document_title": "no url here", "cited_text": "..."}],
        ],
        "web_search_results": [
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": [
                    {"type": "web_search_result", "url": "https://a.example/", "title": "A"},
                    {"url": "https://b.example/", "title": "B"},
                ],
            },
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_2",
                "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"},
            },
            {
                "type": "web_fetch_tool_result",
                "content": {"type": "web_fetch_result", "url": "https://c.example/", "content": {"title": "C"}},
            },
            {"type": "web_fetch_tool_result", "content": {"type": "web_fetch_tool_error", "error_code": "url_not_accessible"}},
        ],
        "thinking_blocks": None,
    }
    assert sources_from_response(chat({"provider_specific_fields": fields})) == [
        S("https://a.example/", "A"),
        S("https://b.example/", "B"),
        S("https://c.example/", "C"),
    ]


def test_gemini_grounding_from_attribute_or_hidden_params() -> None:
    grounding = [
        {
            "webSearchQueries": ["q1", "q2"],
            "groundingChunks": [{"web": {"uri": "https://r.example/1", "title": "one.org"}}, {"retrievedContext": {"uri": "gs://x"}}],
        }
    ]
    url_context = [
        {
            "urlMetadata": [
                {"retrievedUrl": "https://u.example/", "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"},
                {"retrievedUrl": "https://u.example/bad", "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_ERROR"},
            ]
        }
    ]
    expected = [S("https://r.example/1", "one.org"), S("https://u.example/")]
    as_attribute = SimpleNamespace(choices=[], vertex_ai_grounding_metadata=grounding, vertex_ai_url_context_metadata=url_context)
    as_hidden = SimpleNamespace(
        choices=[], _hidden_params={"vertex_ai_grounding_metadata": grounding, "vertex_ai_url_context_metadata": url_context}
    )
    assert sources_from_response(as_attribute) == expected
    assert sources_from_response(as_hidden) == expected


def test_perplexity_search_results_then_citations() -> None:
    response = chat(
        {}, search_results=[{"title": "A", "url": "https://a.example/"}], citations=["https://b.example/", "https://a.example/"]
    )
    assert sources_from_response(response) == [S("https://a.example/", "A"), S("https://b.example/")]


def test_raw_responses_api_object() -> None:
    response = {
        "output": [
            {"type": "web_search_call"},
            {"type": "message", "content": [{"annotations": [{"type": "url_citation", "url": "https://a.example/", "title": "A"}]}]},
        ]
    }
    assert sources_from_response(response) == [S("https://a.example/", "A")]


def test_a_later_title_fills_an_untitled_source_and_blanks_are_dropped() -> None:
    response = chat(
        {
            "annotations": [
                {"type": "url_citation", "url_citation": {"url": "https://a.example/", "title": ""}},
                {"type": "url_citation", "url_citation": {"url": "  ", "title": "blank"}},
            ]
        },
        search_results=[{"title": "A", "url": "https://a.example/"}],
    )
    assert sources_from_response(response) == [S("https://a.example/", "A")]


def test_nothing_to_find() -> None:
    assert sources_from_response(chat({})) == []
    assert sources_from_response(None) == []
    assert sources_from_response({"choices": None}) == []


# ---- end to end: real LiteLLM responses from the capture fixtures ---------------------------------------------


async def test_anthropic_end_to_end(capture: CaptureServer) -> None:
    response = await call_plan(capture, "anthropic/claude-haiku-4-5")
    assert getattr(response.choices[0].message, "annotations", None) is None  # no annotations for Anthropic on chat
    assert sources_from_response(response) == [S(WIKI, "Paris - Wikipedia"), S(BRIT, "Paris | Britannica"), S(FETCHED, "Paris facts")]
    assert sources_from_response(response.model_dump()) == sources_from_response(response)


async def test_gemini_end_to_end(capture: CaptureServer) -> None:
    response = await call_plan(capture, "gemini/gemini-2.5-flash")
    # Annotations cover the supported chunk only; grounding metadata adds the second; URL context adds the fetch.
    assert [a["url_citation"]["url"] for a in response.choices[0].message.annotations] == [REDIRECT_A]
    assert response._hidden_params["vertex_ai_grounding_metadata"] == response.vertex_ai_grounding_metadata
    assert sources_from_response(response) == [S(REDIRECT_A, "wikipedia.org"), S(REDIRECT_B, "britannica.com"), S(FETCHED)]


async def test_vertex_gemini_end_to_end(capture: CaptureServer, vertex_auth: None) -> None:
    response = await call_plan(capture, "vertex_ai/gemini-2.5-flash", vertex_project="proj", vertex_location="us-central1")
    assert sources_from_response(response) == [S(REDIRECT_A, "wikipedia.org"), S(REDIRECT_B, "britannica.com"), S(FETCHED)]


async def test_openai_search_model_end_to_end(capture: CaptureServer) -> None:
    response = await call_plan(capture, "openai/gpt-4o-search-preview")
    assert sources_from_response(response) == [S(WIKI, "Paris - Wikipedia"), S(BRIT, "Paris | Britannica")]


async def test_openai_responses_bridge_end_to_end(capture: CaptureServer) -> None:
    response = await call_plan(capture, "openai/gpt-5.4")
    annotations = response.choices[0].message.annotations
    assert annotations[0]["url"] == WIKI and "url_citation" not in annotations[0]  # the flat Responses form
    assert sources_from_response(response) == [S(WIKI, "Paris - Wikipedia"), S(BRIT, "Paris | Britannica")]
    assert response.choices[0].message.tool_calls is None


async def test_xai_end_to_end(capture: CaptureServer) -> None:
    response = await call_plan(capture, "xai/grok-4")
    assert sources_from_response(response) == [S(WIKI, "Paris - Wikipedia"), S(BRIT, "Paris | Britannica")]


async def test_openrouter_end_to_end(capture: CaptureServer) -> None:
    response = await call_plan(capture, "openrouter/openai/gpt-4o")
    assert sources_from_response(response) == [S(BRIT, "Paris | Britannica"), S(WIKI, "Paris - Wikipedia")]


async def test_perplexity_end_to_end(capture: CaptureServer) -> None:
    response = await call_plan(capture, "perplexity/sonar")
    # 1.108.7 sends Perplexity through the OpenAI SDK path: the raw fields survive, no annotations are built.
    annotations = getattr(response.choices[0].message, "annotations", None)
    if version("litellm") == "1.108.7":
        assert annotations is None
    else:  # a later LiteLLM may build them from the [n] markers; the sources must not change
        assert [a["url_citation"]["url"] for a in annotations or []] in ([], [WIKI, FETCHED])
    assert response.citations == [WIKI, FETCHED]
    assert sources_from_response(response) == [S(WIKI, "Paris - Wikipedia"), S(FETCHED, "Paris facts")]


async def test_perplexity_annotations_on_the_experimental_http_handler(capture: CaptureServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With LiteLLM's own HTTP handler, Perplexity's transform builds chat-form annotations from the [n] markers."""
    monkeypatch.setenv("EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER", "true")
    response = await call_plan(capture, "perplexity/sonar")
    assert [a["url_citation"]["url"] for a in response.choices[0].message.annotations] == [WIKI, FETCHED]
    assert sources_from_response(response) == [S(WIKI, "Paris - Wikipedia"), S(FETCHED, "Paris facts")]
