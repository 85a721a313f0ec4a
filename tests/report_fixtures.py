"""Traces for the report tests: a realistic one, and one full of injection payloads in every untrusted field."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from typing import Any

SCRIPT_PAYLOAD = "<script>document.documentElement.setAttribute('data-pwned','script')</script>"
ONERROR_PAYLOAD = "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','onerror')\">"
ATTR_BREAKOUT = "\"><svg onload=\"document.documentElement.setAttribute('data-pwned','svg')\">"
JS_URL = "javascript:document.documentElement.setAttribute('data-pwned','href')"
SECTIONS = ["summary", "question", "answer", "panel", "analysis", "timeline", "calls"]
"""The ids of a trace page's sections, in page order."""


def _member(letter: str | None, model: str, content: str | None, start: float, latency: float, **extra: Any) -> dict[str, Any]:
    return {
        "letter": letter,
        "model": model,
        "status": "ok" if content is not None else "error",
        "content": content,
        "finish_reason": "stop" if content is not None else None,
        "latency_ms": latency,
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150} if content is not None else None,
        "cost": 0.00012 if content is not None else None,
        "error": None if content is not None else {"type": "RateLimitError", "status_code": 429, "message": "slow down"},
        "web": "off",
        "sources": [],
        "tool_calls": [],
        "notes": [],
        "nested_calls": [
            {
                "role": "panel",
                "model": model,
                "start_ms": start + 1,
                "latency_ms": latency - 2,
                "usage": {"total_tokens": 150},
                "cost": 0.00012,
            }
        ]
        if content is not None
        else [],
        "start_ms": start,
        **extra,
    }


def sample_trace() -> dict[str, Any]:
    """Three members (one with web tools, one failed), a judge with a repair call, a synthesizer."""
    web_member = _member(
        "B",
        "openai/gpt-4.1-mini",
        "Paris, per the source.",
        2.0,
        2400.0,
        web="client",
        sources=[{"url": "https://example.org/paris", "title": "Paris facts"}],
        tool_calls=[
            {"name": "web_search", "argument": "capital of France", "status": "ok", "error": None, "latency_ms": 300.0, "start_ms": 700.0},
            {
                "name": "web_fetch",
                "argument": "https://example.org/paris",
                "status": "ok",
                "error": None,
                "latency_ms": 500.0,
                "start_ms": 1010.0,
            },
        ],
    )
    web_member["nested_calls"] = [
        {
            "role": "panel",
            "model": "openai/gpt-4.1-mini",
            "start_ms": 3.0,
            "latency_ms": 690.0,
            "usage": {"total_tokens": 80},
            "cost": 0.00005,
        },
        {
            "role": "panel",
            "model": "openai/gpt-4.1-mini",
            "start_ms": 1520.0,
            "latency_ms": 880.0,
            "usage": {"total_tokens": 70},
            "cost": 0.00007,
        },
    ]
    return {
        "preset": "budget",
        "panel": [
            _member("A", "openai/gpt-4o-mini", "Paris is the capital.", 2.0, 1200.0),
            web_member,
            _member(None, "anthropic/claude-haiku-4-5", None, 2.0, 300.0),
        ],
        "letters": {"A": "openai/gpt-4o-mini", "B": "openai/gpt-4.1-mini"},
        "analysis": {
            "consensus": ["Paris is the capital of France."],
            "contradictions": [
                {
                    "topic": "Whether to cite a source",
                    "stances": [
                        {"model": "openai/gpt-4o-mini", "stance": "No source given."},
                        {"model": "openai/gpt-4.1-mini", "stance": "Cites example.org."},
                    ],
                }
            ],
            "partial_coverage": [{"models": ["openai/gpt-4.1-mini"], "point": "names the source"}],
            "unique_insights": [{"model": "openai/gpt-4.1-mini", "insight": "fetched a page"}],
            "blind_spots": ["population"],
        },
        "judge": {
            "model": "openai/gpt-4o",
            "status": "ok",
            "failed_reason": None,
            "structured_output": "json_schema",
            "nested_calls": [
                {
                    "role": "judge",
                    "model": "openai/gpt-4o",
                    "start_ms": 2410.0,
                    "latency_ms": 900.0,
                    "usage": {"total_tokens": 700},
                    "cost": 0.002,
                },
                {
                    "role": "judge_repair",
                    "model": "openai/gpt-4o",
                    "start_ms": 3315.0,
                    "latency_ms": 400.0,
                    "usage": {"total_tokens": 300},
                    "cost": 0.001,
                },
            ],
            "latency_ms": 1300.0,
            "usage": {"total_tokens": 1000},
            "cost": 0.003,
            "error": None,
            "start_ms": 2408.0,
        },
        "judge_failed": None,
        "synthesizer": {
            "model": "openai/gpt-4.1",
            "status": "ok",
            "latency_ms": 800.0,
            "usage": {"total_tokens": 900},
            "cost": 0.002,
            "errors": [],
            "start_ms": 3720.0,
        },
        "usage": {"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500},
        "cost": 0.00524,
        "unpriced_models": [],
        "latency_ms": 4530.0,
        "failed_models": ["anthropic/claude-haiku-4-5"],
        "degraded": True,
        "quorum": 2,
        "short_circuit": None,
        "cost_estimate": None,
    }


def hostile_trace(beacon: str | None = None) -> dict[str, Any]:
    """The sample trace with an injection payload in every field a model or a web page controls.

    ``beacon``: a URL prefix the payloads also try to load (an image, a stylesheet), to prove nothing is fetched.
    """
    trace = copy.deepcopy(sample_trace())
    a, b, c = trace["panel"]
    a["content"] = f"Answer with a script: {SCRIPT_PAYLOAD}"
    if beacon:
        a["content"] += f'<img src="{beacon}/img"><link rel="stylesheet" href="{beacon}/css">'
        trace["synthesizer"]["model"] = f'<img src="{beacon}/model">'

    b["content"] = f"Answer with an image: {ONERROR_PAYLOAD} and {ATTR_BREAKOUT}"
    b["sources"] = [
        {"url": JS_URL, "title": f"title {SCRIPT_PAYLOAD}"},
        {"url": " javascript:alert(1)", "title": "leading space"},
        {"url": "java\tscript:alert(1)", "title": "tab inside"},
        {"url": "data:text/html,<script>alert(1)</script>", "title": "data url"},
        {
            "url": "https://example.org/ok?q=\"><svg/onload=document.documentElement.setAttribute('data-pwned','url')>",
            "title": ATTR_BREAKOUT,
        },
    ]
    b["tool_calls"][0]["argument"] = f"</text></svg>{SCRIPT_PAYLOAD}"
    b["tool_calls"][1]["argument"] = JS_URL
    c["error"]["message"] = ONERROR_PAYLOAD
    analysis = trace["analysis"]
    analysis["consensus"] = [SCRIPT_PAYLOAD]
    analysis["contradictions"][0]["topic"] = ONERROR_PAYLOAD
    analysis["contradictions"][0]["stances"][0]["stance"] = SCRIPT_PAYLOAD
    analysis["contradictions"][0]["stances"].append({"model": ATTR_BREAKOUT, "stance": SCRIPT_PAYLOAD})
    analysis["unique_insights"][0]["insight"] = ATTR_BREAKOUT
    analysis["blind_spots"] = [ONERROR_PAYLOAD]
    trace["preset"] = ATTR_BREAKOUT
    return trace


class Dom(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser's parser would see them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def ids(self) -> list[str]:
        return [a["id"] for _, a in self.tags if a.get("id")]


def eval_data() -> dict[str, Any]:
    summary = {
        "name": "solo <b>mini</b>", "kind": "solo", "model": "openai/gpt-4o-mini", "n": 2, "correct": 1, "accuracy": 0.5,
        "errors": 1, "total_cost": 0.0012, "unpriced": False, "mean_tokens": 120.0, "p50_latency_ms": 850.0,
    }  # fmt: skip
    results = [
        {"config": "solo <b>mini</b>", "id": "q1", "expected": 4, "correct": True, "extracted": 4, "error": None},
        {"config": "solo <b>mini</b>", "id": "q2", "expected": 9, "correct": False, "extracted": None,
         "error": {"stage": "call", "type": "Timeout", "message": SCRIPT_PAYLOAD}},
    ]  # fmt: skip
    return {
        "questions_path": "arith.jsonl",
        "n_questions": 2,
        "summaries": [summary],
        "results": results,
        "concurrency": 2,
        "duration_s": 3.5,
    }
