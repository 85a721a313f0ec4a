"""``max_cost`` is a true worst case with web tools: a scripted member that spends its whole tool budget stays
under the estimate, which the one-call-per-member estimate it replaced did not.

Real LiteLLM over HTTP to the scripted model server, a SearXNG-compatible endpoint and a fixture page on
127.0.0.1 (the fixture site of ``test_web_loop``), the client loop running for real.
"""

from __future__ import annotations

import litellm
import pytest
from test_web_loop import FixtureSite

from litellm_fusion import FusionLLM
from litellm_fusion._engine.budget import estimate_max_cost
from litellm_fusion._spec.config import FusionSpec, PresetStore
from litellm_fusion._web.fetch import Fetcher, FetchLimits
from litellm_fusion.testing import Script, ScriptedServer, ToolCall

MESSAGES = [{"role": "user", "content": "How tall is the Cape Fable lighthouse?"}]
CAP = 60
PRICE_IN, PRICE_OUT = 2e-6, 8e-6


@pytest.fixture(scope="module")
def site():
    fixture = FixtureSite().start()
    yield fixture
    fixture.stop()


def _handler(site: FixtureSite) -> FusionLLM:
    def fetcher_factory(spec):
        limits = FetchLimits(max_chars=spec.max_chars, timeout=spec.timeout, allowed_ports=frozenset({site.port}), respect_robots=True)
        return Fetcher(limits, allow=lambda ip, port: str(ip) == "127.0.0.1" and port == site.port)

    return FusionLLM(presets=PresetStore(), fetcher_factory=fetcher_factory)


@pytest.mark.parametrize("max_tool_calls", [1, 4])
async def test_a_member_using_its_whole_tool_budget_stays_under_the_estimate(site, max_tool_calls):
    # Every step asks for one more tool (searching, then reading the article the search found) until the
    # budget is spent; then the loop forces a last answer. Every completion is at the cap.
    steps = [
        Script(tool_calls=[ToolCall("web_fetch", {"url": f"{site.base}/article"}) if i % 2 else ToolCall("web_search", {"query": f"q{i}"})],
               completion_tokens=CAP)
        for i in range(max_tool_calls)
    ]  # fmt: skip
    final = Script(text="It is 43 metres tall.", completion_tokens=CAP)
    free_writer = Script(text="43 metres.", completion_tokens=CAP)
    with ScriptedServer({"scripted-researcher": [*steps, final], "scripted-writer": free_writer}) as models:
        member = {"model": "openai/scripted-researcher", "api_base": models.base_url, "api_key": "sk-up",
                  "input_cost_per_token": PRICE_IN, "output_cost_per_token": PRICE_OUT}  # fmt: skip
        # The judge and the writer are free, so the member's spend is the whole cost.
        writer = {
            "model": "openai/scripted-writer",
            "api_base": models.base_url,
            "api_key": "sk-up",
            "input_cost_per_token": 0,
            "output_cost_per_token": 0,
        }
        spec = {
            "panel": [member],
            "judge": writer,
            "max_completion_tokens": CAP,
            "max_cost": 10.0,
            "web": {"mode": "client", "max_tool_calls": max_tool_calls, "search": {"provider": "searxng", "api_base": site.base}},
        }
        response = await _handler(site).acompletion(
            model="custom", messages=MESSAGES, model_response=litellm.ModelResponse(), optional_params={"fusion": spec}
        )
        trace = response._hidden_params["fusion"]
        member_calls = models.requests_for("scripted-researcher")
    assert len(trace["panel"][0]["tool_calls"]) == max_tool_calls and all(c["status"] == "ok" for c in trace["panel"][0]["tool_calls"])
    assert len(member_calls) == max_tool_calls + 1 and member_calls[-1].body["tool_choice"] == "none"
    spent = trace["cost"]
    # Searxng is free to query, so the spend is the member's tokens: growing prompts and capped completions.
    usage = trace["panel"][0]["usage"]
    assert spent == pytest.approx(usage["prompt_tokens"] * PRICE_IN + usage["completion_tokens"] * PRICE_OUT)
    print(f"\nmax_tool_calls={max_tool_calls}: spent ${spent:.6f}, estimate ${trace['cost_estimate']:.6f}")
    assert 0 < spent <= trace["cost_estimate"]
    one_call_per_member = estimate_max_cost(FusionSpec.model_validate({**spec, "web": {"mode": "off"}}), MESSAGES)
    assert spent > one_call_per_member, "the old estimate (one call per member) was below what the run spent"


def test_web_members_multiply_the_estimate_by_their_calls_and_pay_search_fees():
    base = {"panel": ["openai/gpt-4o-mini"], "judge": "openai/gpt-4o-mini", "max_completion_tokens": 100}
    off = estimate_max_cost(FusionSpec.model_validate(base), MESSAGES)
    spec = FusionSpec.model_validate({**base, "web": {"mode": "client", "max_tool_calls": 8, "search": {"provider": "tavily"}}})
    client = estimate_max_cost(spec, MESSAGES, web_modes=("client",))
    assert client > off + 8 * 0.008  # at least tavily's fee per search on top
    fewer = estimate_max_cost(
        spec.model_copy(update={"web": spec.web.model_copy(update={"max_tool_calls": 2})}), MESSAGES, web_modes=("client",)
    )
    assert off < fewer < client
    native = estimate_max_cost(
        FusionSpec.model_validate({**base, "panel": ["anthropic/claude-haiku-4-5"]}), MESSAGES, web_modes=("native",)
    )
    # Natively fetched pages are input tokens: 8 fetches of up to 20,000 tokens at claude-haiku's input price.
    assert native > 8 * 20_000 * litellm.get_model_info("anthropic/claude-haiku-4-5")["input_cost_per_token"]
