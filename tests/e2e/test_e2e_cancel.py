"""End to end: a client that goes away through a real ``litellm`` proxy (perf-reliability.md §9 row 14).

One proxy process with ``general_settings: {cancel_on_disconnect: true}`` serves a fusion deployment whose
two panel members hang (the :class:`ScriptedServer` upstream runs in this test process). A raw ``httpx``
client starts a request, streaming or not, and goes away after about a second; within a second of that,
every nested request must have been disconnected upstream and none may still be in flight. Without the
disconnect the request would run on to the deployment's ``timeout`` (30 s), so a pass cannot come from
the deadline.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402
import pytest  # noqa: E402
from e2e_support import Proxy, responder, start_proxy  # noqa: E402

from litellm_fusion.testing import Script, ScriptedServer  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
HANGING = ("gpt-4.1-mini", "gpt-4.1-nano")  # upstream ids of the two hanging members
DEADLINE = 30  # the hanging deployment's own timeout: far beyond every bound below
OK_TEXT, SYNTH_TEXT = "ok-member says: Paris.", "Paris is the capital of France."


def _deployment(name: str, model: str, base: str) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": f"openai/{model}", "api_base": base, "api_key": "sk-up-cancel"}}


@pytest.fixture(scope="module")
def upstream() -> Any:
    server = ScriptedServer(
        {
            "gpt-4o-mini": Script(text=responder(OK_TEXT, SYNTH_TEXT)),
            "gpt-4o": Script(text=responder("judge says: Paris.", SYNTH_TEXT)),
            **{model: Script(hang=True) for model in HANGING},
        }
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(upstream: ScriptedServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = upstream.base_url
    config = {
        "model_list": [
            _deployment("ok", "gpt-4o-mini", base),
            _deployment("j", "gpt-4o", base),
            _deployment("h1", HANGING[0], base),
            _deployment("h2", HANGING[1], base),
            {"model_name": "fz-ok", "litellm_params": {"model": "fusion/fz-ok", "fusion": {"panel": ["ok", "j"], "judge": "j"}}},
            {
                "model_name": "fz-hang",
                "litellm_params": {"model": "fusion/fz-hang", "fusion": {"panel": ["h1", "h2"], "judge": "j", "timeout": DEADLINE}},
            },
        ],
        "litellm_settings": {"custom_provider_map": [{"provider": "fusion", "custom_handler": "litellm_fusion.fusion_llm"}]},
        "general_settings": {"cancel_on_disconnect": True},
    }
    with start_proxy(config, workdir=tmp_path_factory.mktemp("proxy-cancel")) as running:
        # The first requests after startup are slow (lazy imports, client setup): warm up a plain and a
        # fusion deployment that do not hang, so the measured requests start at once.
        with running.http() as http:
            for model in ("ok", "fz-ok"):
                reply = http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
                assert reply.status_code == 200, reply.text[:500]
            assert reply.json()["choices"][0]["message"]["content"] == SYNTH_TEXT
        assert upstream.wait_idle(5.0)
        yield running


async def _poll(predicate, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_client_disconnect_cancels_every_nested_call(proxy: Proxy, upstream: ScriptedServer, stream: bool):
    assert upstream.wait_idle(5.0)
    upstream.reset()
    client = httpx.AsyncClient(
        base_url=proxy.base_url, headers={"Authorization": f"Bearer {proxy.master_key}"}, timeout=60.0, trust_env=False
    )
    body = {"model": "fz-hang", "messages": MESSAGES, "stream": stream}
    received: list[bytes] = []

    async def request() -> int:
        if not stream:
            return (await client.post("/v1/chat/completions", json=body)).status_code
        async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            async for data in reply.aiter_bytes():
                received.append(data)
            return reply.status_code

    started = time.monotonic()
    task = asyncio.create_task(request())
    try:
        # Both members' requests reached the upstream and hang there.
        assert await _poll(lambda: upstream.stats()["in_flight"] == len(HANGING), 10.0), (upstream.stats(), proxy.log_tail(40))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        assert not task.done(), "the request ended before the client went away"
    finally:
        task.cancel()  # the client goes away: its connection to the proxy is closed
        disconnected_at = time.monotonic()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()

    def all_cancelled() -> bool:
        stats = upstream.stats()
        return stats["in_flight"] == 0 and stats["disconnected_before_done"] == len(HANGING)

    cancelled = await _poll(all_cancelled, 1.0)
    waited = time.monotonic() - disconnected_at
    assert cancelled, (f"{waited:.2f}s after the disconnect", upstream.stats(), proxy.log_tail(40))
    assert sorted(r.model for r in upstream.requests) == sorted(HANGING)  # one each; no judge, no synthesizer
    assert all(r.disconnected for r in upstream.requests)
    assert b"Paris" not in b"".join(received)
    # Nothing is started afterwards either (no retry of the cancelled call, no judge).
    await asyncio.sleep(0.5)
    assert upstream.stats()["total"] == len(HANGING)
    # And the proxy still serves.
    async with httpx.AsyncClient(
        base_url=proxy.base_url, headers={"Authorization": f"Bearer {proxy.master_key}"}, timeout=30.0, trust_env=False
    ) as http:
        reply = await http.post("/v1/chat/completions", json={"model": "fz-ok", "messages": MESSAGES})
    assert reply.status_code == 200, reply.text[:500]
