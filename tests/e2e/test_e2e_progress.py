"""End to end: a streaming fusion's progress through a real ``litellm`` proxy, in the three client APIs.

The panel's progress goes out as ``delta.reasoning_content`` (chat completions, ``openai`` SDK); LiteLLM
carries it into ``response.reasoning_summary_text.delta`` events (``/v1/responses``, ``openai`` SDK) and a
``thinking`` block before the text (``/v1/messages``, ``anthropic`` SDK). Each test checks that progress
arrives before the answer, in the order things happened, and that the answer itself is unchanged.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import anthropic  # noqa: E402
import openai  # noqa: E402
import pytest  # noqa: E402
from e2e_support import Proxy, responder, start_proxy  # noqa: E402

from litellm_fusion.testing import Script, ScriptedServer  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
SYNTH_TEXT = "Paris is the capital of France, on the Seine."
# The failing member's upstream error tries to break out of its progress line and plant a tracking image.
HOSTILE_ERROR = "bad-1 is down\n\n![pixel](http://127.0.0.1:9/track.png) <img src=x>"
PANEL_LATENCY = {"gpt-4o-mini": 1.2, "gpt-4.1-mini": 0.8}


def _deployment(name: str, model: str, base: str) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_base": base, "api_key": "sk-upstream"}}


def _fusion(name: str, **spec: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": f"fusion/{name}", "fusion": spec}}


@pytest.fixture(scope="module")
def upstream() -> Any:
    server = ScriptedServer().start()
    for model, latency in PANEL_LATENCY.items():
        server.set_script(model, Script(text=responder(f"{model} says: Paris.", SYNTH_TEXT), latency=latency, chunk_chars=6))
    server.set_script("gpt-4o", Script(text=responder("Paris.", SYNTH_TEXT), latency=0.3, chunk_chars=6))
    server.set_script("bad-1", Script(status=500, error_message=HOSTILE_ERROR))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(upstream: ScriptedServer) -> Any:
    panel = {"panel": ["m1", "m2", "b1"], "judge": "j", "min_quorum": 2}
    config = {
        "model_list": [
            _deployment("m1", "openai/gpt-4o-mini", upstream.base_url),
            _deployment("m2", "openai/gpt-4.1-mini", upstream.base_url),
            _deployment("j", "openai/gpt-4o", upstream.base_url),
            _deployment("b1", "openai/bad-1", upstream.base_url),
            _fusion("fz", **panel),
            _fusion("fz-quiet", **panel, progress="none"),
            _fusion("fz-dead", panel=["b1"], judge="j"),
        ],
        "litellm_settings": {"custom_provider_map": [{"provider": "fusion", "custom_handler": "litellm_fusion.fusion_llm"}]},
    }
    with start_proxy(config) as running:
        # The proxy's first request of each API lazily imports its modules; warm them so arrival times mean something.
        running.client().chat.completions.create(model="fz-quiet", messages=MESSAGES)
        running.client().responses.create(model="fz-quiet", input="warm-up")
        _anthropic(running).messages.create(model="fz-quiet", max_tokens=64, messages=MESSAGES)
        yield running


def _anthropic(proxy: Proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.base_url, api_key=proxy.master_key, max_retries=0, timeout=60.0)


def _panel_ends(upstream: ScriptedServer, since: float) -> float:
    """When the first panel member's upstream call finished (monotonic clock, shared with this process)."""
    ends = [r.ended_at for r in upstream.requests if r.model in PANEL_LATENCY and r.started_at >= since and r.ended_at]
    assert ends, "no panel call was recorded"
    return min(ends)


def assert_progress_story(text: str) -> None:
    """The progress lines tell what happened, in order, one event per line, with nothing injected."""
    lines = text.splitlines()
    assert lines[0] == "Fusion fz: asking 3 models (m1, m2, b1); 2 answers needed; judge j, writer j.", lines

    def at(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.fullmatch(pattern, line)]
        assert len(found) == 1, (pattern, lines)
        return found[0]

    for member, latency in (("m1", 1.2), ("m2", 0.8)):
        answered = at(rf"- {member} answered in (\d+\.\d) s \(\d+ tokens\)\.")
        assert at(rf"- {member} is answering…") < answered
        assert float(re.search(r"in (\d+\.\d) s", lines[answered]).group(1)) >= latency - 0.05
    assert at(r"- m2 answered in .*") < at(r"- m1 answered in .*")  # m2 is the faster one
    failed = at(r"- b1 failed after \d+\.\d s: .*")
    assert at(r"- b1 is answering…") < failed
    # The hostile error stayed on its line: no raw newline, image or tag, the markup escaped.
    assert "bad-1 is down \\!\\[pixel\\]" in lines[failed] and "![" not in text and "<img" not in text
    judge = at(r"Judge j is comparing 2 answers…")
    assert max(at(r"- m1 answered in .*"), at(r"- m2 answered in .*"), failed) < judge
    done = at(r"Judge done in \d+\.\d s: 1 point of agreement, 1 contradiction\.")
    assert lines[done + 1 : done + 3] == ["  - agreed: the answers agree", "  - contested: detail"]
    assert lines[-1] == "Writer j is writing the answer…" and judge < done < len(lines) - 1


def test_chat_stream_sends_progress_as_reasoning_before_the_answer(proxy: Proxy, upstream: ScriptedServer):
    started = time.monotonic()
    arrivals: list[tuple[float, str | None, str | None]] = []
    stream = proxy.client().chat.completions.create(model="fz", messages=MESSAGES, stream=True)
    for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is not None:
            arrivals.append((time.monotonic(), getattr(delta, "reasoning_content", None), delta.content))
    reasoning = [(t, r) for t, r, _ in arrivals if r]
    content = [(t, c) for t, _, c in arrivals if c]
    assert "".join(c for _, c in content) == SYNTH_TEXT
    assert reasoning and content and reasoning[-1][0] <= content[0][0]
    last_reasoning = max(i for i, (_, r, _) in enumerate(arrivals) if r)
    first_content = min(i for i, (_, _, c) in enumerate(arrivals) if c)
    assert last_reasoning < first_content and not any(r and c for _, r, c in arrivals)
    # Life before any panel member answered: the first line left the proxy while the panel was still working.
    assert reasoning[0][0] < _panel_ends(upstream, started)
    assert_progress_story("".join(r for _, r in reasoning))


def test_progress_none_and_non_streaming_answers_carry_no_reasoning(proxy: Proxy):
    client = proxy.client()
    quiet = list(client.chat.completions.create(model="fz-quiet", messages=MESSAGES, stream=True))
    deltas = [c.choices[0].delta for c in quiet if c.choices]
    assert "".join(d.content or "" for d in deltas) == SYNTH_TEXT
    assert not any(getattr(d, "reasoning_content", None) for d in deltas)
    message = client.chat.completions.create(model="fz", messages=MESSAGES).choices[0].message
    assert message.content == SYNTH_TEXT and getattr(message, "reasoning_content", None) is None


def test_a_client_chooses_progress_per_request_and_a_bad_value_is_a_400(proxy: Proxy):
    client = proxy.client()

    def reasoning(model: str, progress: str) -> str:
        chunks = client.chat.completions.create(model=model, messages=MESSAGES, stream=True, extra_body={"fusion": {"progress": progress}})
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        assert "".join(d.content or "" for d in deltas) == SYNTH_TEXT
        return "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)

    assert reasoning("fz", "none") == ""
    assert reasoning("fz-quiet", "reasoning").startswith("Fusion fz-quiet: asking 3 models")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="fz", messages=MESSAGES, stream=True, extra_body={"fusion": {"progress": "loud"}})
    assert "fusion.progress" in str(caught.value) and "'reasoning' or 'none'" in str(caught.value)


def test_responses_api_stream_carries_progress_as_reasoning_events(proxy: Proxy, upstream: ScriptedServer):
    started = time.monotonic()
    events = [(time.monotonic(), event) for event in proxy.client().responses.create(model="fz", input=MESSAGES[0]["content"], stream=True)]
    kinds = [event.type for _, event in events]
    reasoning = [(t, e.delta) for t, e in events if e.type == "response.reasoning_summary_text.delta"]
    text = [(t, e.delta) for t, e in events if e.type == "response.output_text.delta"]
    assert "".join(d for _, d in text) == SYNTH_TEXT
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index("response.output_text.delta")
    assert reasoning[0][0] < _panel_ends(upstream, started)
    assert_progress_story("".join(d for _, d in reasoning))
    completed = events[-1][1]
    assert completed.type == "response.completed"
    items = [item.type for item in completed.response.output]
    assert items == ["reasoning", "message"] and completed.response.output_text == SYNTH_TEXT


def test_messages_api_stream_carries_progress_as_a_thinking_block(proxy: Proxy, upstream: ScriptedServer):
    client = _anthropic(proxy)
    started = time.monotonic()
    events: list[tuple[float, Any]] = []
    with client.messages.stream(model="fz", max_tokens=512, messages=MESSAGES) as stream:
        for event in stream:
            events.append((time.monotonic(), event))
        final = stream.get_final_message()
    starts = [e.content_block.type for _, e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text"]
    thinking = [(t, e.delta.thinking) for t, e in events if e.type == "content_block_delta" and e.delta.type == "thinking_delta"]
    texts = [(t, e.delta.text) for t, e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert "".join(x for _, x in texts) == SYNTH_TEXT and thinking[-1][0] <= texts[0][0]
    assert thinking[0][0] < _panel_ends(upstream, started)
    assert_progress_story("".join(x for _, x in thinking))
    assert [block.type for block in final.content] == ["thinking", "text"] and final.content[1].text == SYNTH_TEXT


def test_with_progress_a_failed_panel_is_an_error_event_after_the_lines_that_explain_it(proxy: Proxy):
    """The stream has begun (HTTP 200) when the panel fails, so the 503 arrives as the stream's error event."""
    with proxy.http() as http:
        reply = http.post("/v1/chat/completions", json={"model": "fz-dead", "messages": MESSAGES, "stream": True})
    assert reply.status_code == 200
    events = [json.loads(line[len("data: ") :]) for line in reply.text.splitlines() if line.startswith("data: {")]
    reasoning = "".join(e["choices"][0]["delta"].get("reasoning_content") or "" for e in events if e.get("choices"))
    assert reasoning.splitlines()[-1].startswith("- b1 failed after ") and "bad-1 is down" in reasoning
    assert "error" in events[-1] and events[-1]["error"]["code"] == "503"
    assert "0 of 1 panel members answered, 1 needed" in events[-1]["error"]["message"]
    with pytest.raises(openai.APIError, match="0 of 1 panel members answered"):
        list(proxy.client().chat.completions.create(model="fz-dead", messages=MESSAGES, stream=True))
