"""Tests for litellm_fusion.testing.ScriptedServer, the fake OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from litellm_fusion.testing import Script, ScriptedServer, ToolCall

REPO_ROOT = Path(__file__).resolve().parents[2]


# One shared client: building a fresh httpx client (and its SSL context) per call costs ~50 ms.
_HTTP = httpx.Client(timeout=5)


@pytest.fixture(scope="module", autouse=True)
def _close_http_client():
    yield
    _HTTP.close()


def _chat(server: ScriptedServer, model: str, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return _HTTP.post(f"{server.base_url}/chat/completions", json=body)


def _client(server: ScriptedServer, api_key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0, http_client=_HTTP)


def test_non_stream_text_usage_and_recording():
    with ScriptedServer({"model-a": Script(text="Paris is the capital.")}) as server:
        messages = [
            {"role": "system", "content": "Be brief."},  # 9 chars
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},  # 18 chars
        ]
        reply = _client(server, "sk-upstream-a").chat.completions.create(model="model-a", messages=messages)

        assert reply.object == "chat.completion"
        assert reply.model == "model-a"
        assert reply.choices[0].message.role == "assistant"
        assert reply.choices[0].message.content == "Paris is the capital."
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage.prompt_tokens == (9 + 18) // 4 + 1
        assert reply.usage.completion_tokens == 4
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + 4

        # The client can read the body before the server's handler has finished recording it.
        assert server.wait_idle(5.0)
        [record] = server.requests_for("model-a")
        assert record.headers["authorization"] == "Bearer sk-upstream-a"
        assert record.path == "/v1/chat/completions"
        assert record.body["messages"] == messages
        assert record.status == 200 and not record.disconnected
        assert record.ended_at is not None and record.ended_at >= record.started_at


def test_callable_text_and_usage_overrides():
    def judge(body: dict) -> str:
        return "verdict for " + body["messages"][-1]["content"]

    script = Script(text=judge, prompt_tokens=7, completion_tokens=3, finish_reason="length")
    with ScriptedServer({"judge": script}) as server:
        data = _chat(server, "judge").json()
    assert data["choices"][0]["message"]["content"] == "verdict for hi"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_reassembles_text_with_optional_usage(include_usage):
    text = "The quick brown fox jumps"
    with ScriptedServer({"m": Script(text=text, chunk_chars=4)}) as server:
        chunks = list(
            _client(server).chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "go"}],
                stream=True,
                stream_options={"include_usage": include_usage},
            )
        )
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in with_choices if c.choices[0].delta.content]
    assert contents == [text[i : i + 4] for i in range(0, len(text), 4)]
    assert "".join(contents) == text
    assert with_choices[-1].choices[0].finish_reason == "stop"
    usage_chunks = [c for c in chunks if not c.choices]
    if include_usage:
        assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0]
        assert usage_chunks[0].usage.completion_tokens == 5
        assert usage_chunks[0].usage.total_tokens == usage_chunks[0].usage.prompt_tokens + 5
    else:
        assert usage_chunks == []


CALLS = [ToolCall("web_search", {"query": "capital of France"}), ToolCall("calculator", {"expr": "2+2"})]


def test_tool_calls_non_stream():
    with ScriptedServer({"agent": Script(tool_calls=CALLS)}) as server:
        reply = _client(server).chat.completions.create(model="agent", messages=[{"role": "user", "content": "x"}])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert [c.id for c in choice.message.tool_calls] == ["call_1", "call_2"]
    assert [c.function.name for c in choice.message.tool_calls] == ["web_search", "calculator"]
    assert [json.loads(c.function.arguments) for c in choice.message.tool_calls] == [c.arguments for c in CALLS]
    assert reply.usage.completion_tokens == 20


def test_tool_calls_stream_rebuilds_from_deltas():
    with ScriptedServer({"agent": Script(tool_calls=CALLS, chunk_chars=5)}) as server:
        stream = _client(server).chat.completions.create(
            model="agent", messages=[{"role": "user", "content": "x"}], stream=True
        )
        calls: dict[int, dict] = {}
        argument_pieces: dict[int, int] = {}
        finish = None
        for chunk in stream:
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                if delta.id:
                    call["id"], call["name"] = delta.id, delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
                    argument_pieces[delta.index] = argument_pieces.get(delta.index, 0) + 1
    assert finish == "tool_calls"
    assert [calls[i]["id"] for i in sorted(calls)] == ["call_1", "call_2"]
    assert [calls[i]["name"] for i in sorted(calls)] == ["web_search", "calculator"]
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == [c.arguments for c in CALLS]
    assert argument_pieces[0] > 1  # arguments really were split over several chunks


def test_error_status_body_and_retry_after():
    script = Script(status=429, error_message="slow down", retry_after=2, latency=0.05)
    with ScriptedServer({"m": script}) as server:
        started = time.monotonic()
        response = _chat(server, "m")
        elapsed = time.monotonic() - started
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        error = response.json()["error"]
        assert error["message"] == "slow down"
        assert error["type"] == "rate_limit_error"
        assert "code" in error
        assert elapsed >= 0.05
        assert server.requests[0].status == 429

        with pytest.raises(openai.RateLimitError):
            _client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_script_queue_last_repeats_and_reset_rewinds():
    queue = [Script(tool_calls=[ToolCall("web_search", {"query": "x"})]), Script(text="final")]
    with ScriptedServer({"model-b": queue}) as server:
        first = _chat(server, "model-b").json()["choices"][0]
        assert first["finish_reason"] == "tool_calls"
        assert [_chat(server, "model-b").json()["choices"][0]["message"]["content"] for _ in range(2)] == [
            "final",
            "final",
        ]
        assert server.stats()["by_model"] == {"model-b": 3}

        server.reset()
        assert server.stats()["total"] == 0 and server.requests == []
        assert _chat(server, "model-b").json()["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"

        server.set_script("model-b", Script(text="replaced"))
        assert _chat(server, "model-b").json()["choices"][0]["message"]["content"] == "replaced"


def test_unknown_model_404_without_default_and_default_otherwise():
    with ScriptedServer({"known": Script()}) as server:
        response = _chat(server, "nope")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
        with pytest.raises(openai.NotFoundError):
            _client(server).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with ScriptedServer({}, default=Script(text="default answer")) as server:
        data = _chat(server, "anything").json()
        assert data["choices"][0]["message"]["content"] == "default answer"
        assert data["model"] == "anything"


def test_models_and_health_routes():
    with ScriptedServer({"a": Script(), "b": Script()}) as server:
        models = _HTTP.get(f"{server.base_url}/models").json()
        health = _HTTP.get(server.base_url.removesuffix("/v1") + "/health")
    assert sorted(m["id"] for m in models["data"]) == ["a", "b"]
    assert health.status_code == 200


@pytest.mark.asyncio
async def test_concurrency_peak_and_wall_time():
    with ScriptedServer({"slow": Script(text="done", latency=0.3)}) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
            body = {"model": "slow", "messages": [{"role": "user", "content": "x"}]}
            started = time.monotonic()
            responses = await asyncio.gather(*(client.post("/chat/completions", json=body) for _ in range(3)))
            elapsed = time.monotonic() - started
        assert [r.status_code for r in responses] == [200, 200, 200]
        stats = server.stats()
    assert stats["max_in_flight"] == 3
    assert stats["in_flight"] == 0 and stats["total"] == 3
    assert 0.3 <= elapsed < 0.6


def test_hang_then_client_timeout_is_recorded_as_disconnect():
    with ScriptedServer({"stuck": Script(hang=True)}) as server:
        with pytest.raises(httpx.ReadTimeout):
            _HTTP.post(f"{server.base_url}/chat/completions", json={"model": "stuck"}, timeout=0.3)
        assert server.wait_idle(timeout=1.0)
        stats = server.stats()
        assert stats["disconnected_before_done"] == 1
        assert stats["in_flight"] == 0
        [record] = server.requests
        assert record.disconnected and record.status is None and record.ended_at is not None


def test_client_disconnect_mid_stream_is_recorded():
    with ScriptedServer({"m": Script(text="x" * 40, chunk_chars=1, chunk_delay=0.02)}) as server:
        body = {"model": "m", "stream": True}
        with _HTTP.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
            next(response.iter_lines())  # one chunk arrived; now walk away
        assert server.wait_idle(timeout=1.0)
        [record] = server.requests
        assert record.status == 200 and record.disconnected
        assert server.stats()["disconnected_before_done"] == 1


def test_break_stream_after_aborts_connection():
    with ScriptedServer({"m": Script(text="abcdefghij", chunk_chars=2, break_stream_after=2)}) as server:
        received = []
        body = {"model": "m", "stream": True}
        with pytest.raises(httpx.RemoteProtocolError):
            with _HTTP.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        received.append(json.loads(line[6:])["choices"][0]["delta"].get("content"))
        assert received == ["", "ab", "cd"]  # role chunk, then exactly two content chunks
        assert server.wait_idle(timeout=1.0)
        [record] = server.requests
        assert record.status == 200 and not record.disconnected  # the server broke it, not the client


def test_malformed_body_is_not_json():
    with ScriptedServer({"bad": Script(malformed=True)}) as server:
        bad = _chat(server, "bad")
    assert bad.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad.text)


def test_drip_sends_one_byte_at_a_time():
    with ScriptedServer({"drip": Script(text="slow", drip=0.02)}) as server:
        arrivals = []
        with _HTTP.stream("POST", f"{server.base_url}/chat/completions", json={"model": "drip"}) as response:
            for piece in response.iter_raw():
                arrivals.append((time.monotonic(), piece))
                if len(arrivals) == 4:
                    break  # enough evidence; hang up instead of waiting for the whole body
        assert [piece for _, piece in arrivals] == [b"{", b'"', b"i", b"d"]
        assert arrivals[-1][0] - arrivals[0][0] >= 3 * 0.02 * 0.8
        assert server.wait_idle(timeout=1.0)
        assert server.stats()["disconnected_before_done"] == 1


def test_stop_cancels_in_flight_request_and_leaves_no_thread():
    server = ScriptedServer({"stuck": Script(hang=True)}, shutdown_timeout=0.1).start()
    errors: list[Exception] = []

    def call():
        try:
            _HTTP.post(f"{server.base_url}/chat/completions", json={"model": "stuck"})
        except Exception as exc:  # the server going away is the expected outcome
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 2
    while server.stats()["in_flight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop()
    caller.join(timeout=2)
    assert errors, "the hanging request should fail once the server stops"
    assert server.stats()["in_flight"] == 0
    assert not [t for t in threading.enumerate() if t.name == "ScriptedServer"]


def test_main_entry_point_prints_url_and_serves(tmp_path):
    scripts = tmp_path / "scripts.yaml"
    scripts.write_text(
        "model-a: {text: from yaml}\n"
        "model-b:\n"
        "  - {tool_calls: [{name: web_search, arguments: {query: x}}]}\n"
        "  - {text: final}\n"
        "default: {text: fallback}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "litellm_fusion.testing", "--port", "0", "--scripts", str(scripts)],
        cwd=REPO_ROOT,
        # Importing the parent package imports litellm; keep it from reaching for the network.
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        stdout=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, proc.kill)  # a server that never prints must not hang the suite
    watchdog.start()
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")

        def post(model: str) -> dict:
            return _HTTP.post(f"{base_url}/chat/completions", json={"model": model}).json()

        assert post("model-a")["choices"][0]["message"]["content"] == "from yaml"
        call = post("model-b")["choices"][0]["message"]["tool_calls"][0]["function"]
        assert call["name"] == "web_search" and json.loads(call["arguments"]) == {"query": "x"}
        assert post("model-b")["choices"][0]["message"]["content"] == "final"
        assert post("other")["choices"][0]["message"]["content"] == "fallback"
    finally:
        proc.terminate()
        watchdog.cancel()
        assert proc.wait(timeout=10) == 0  # SIGTERM is a clean shutdown


def test_response_ids_are_unique_across_servers_and_restarts():
    """LiteLLM's proxy keys spend-log rows on the response id and drops duplicates: ids never repeat."""
    ids = []
    for _ in range(2):  # two servers, as two processes or two runs on one database would be
        with ScriptedServer({"model-a": Script(text="ok")}) as server:
            ids += [_chat(server, "model-a").json()["id"] for _ in range(3)]
            stream = _HTTP.post(f"{server.base_url}/chat/completions", json={"model": "model-a", "stream": True, "messages": []})
            first = json.loads(stream.text.split("\n")[0].removeprefix("data: "))
            assert first["id"] == ids[-1].rsplit("-", 1)[0] + "-4"  # chunks carry their response's id
    assert len(set(ids)) == 6 and all(i.startswith("chatcmpl-scripted-") for i in ids)


def test_connection_stats_tell_a_pooled_client_from_one_connection_per_call():
    with ScriptedServer({"m": Script(text="ok")}) as server:
        with httpx.Client(timeout=5) as pooled:
            for _ in range(3):
                pooled.post(f"{server.base_url}/chat/completions", json={"model": "m"})
            assert server.wait_idle(5.0)
            assert server.connection_stats() == {"connections": 1, "new_connections": 1}

            # After a reset the kept-alive connection counts as used again, not as newly opened.
            server.reset()
            pooled.post(f"{server.base_url}/chat/completions", json={"model": "m"})
            assert server.wait_idle(5.0)
            assert server.connection_stats() == {"connections": 1, "new_connections": 0}

        server.reset()
        for _ in range(2):
            with httpx.Client(timeout=5) as fresh:  # a client built anew per call opens a connection per call
                fresh.post(f"{server.base_url}/chat/completions", json={"model": "m"})
        assert server.wait_idle(5.0)
        assert server.connection_stats() == {"connections": 2, "new_connections": 2}
