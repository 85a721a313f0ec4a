"""A proxy key's model access and budgets bound every nested call (``litellm_fusion._host.tenancy``), in process.

The handler runs as the proxy runs it: LiteLLM's proxy module is imported, its ``llm_router`` is a real Router
whose deployments point at the scripted server, and the request carries the caller's ``UserAPIKeyAuth`` in
its metadata. LiteLLM's own auth checks decide; the scripted server counts what reached the upstream. The
fleet tier (``test_e2e_fleet.py``) proves the same through real proxies, Postgres and Redis.
"""

from __future__ import annotations

import litellm
import pytest
from e2e_support import responder

# The proxy's own auth checks decide: they come with litellm[proxy] (the SDK-only CI venv has no proxy).
pytest.importorskip("fastapi", reason="needs litellm[proxy]: the proxy's auth checks")
pytest.importorskip("apscheduler", reason="needs litellm[proxy]: the proxy's auth checks")
from litellm.proxy._types import UserAPIKeyAuth  # noqa: E402
from litellm.types.utils import ModelResponse  # noqa: E402

import litellm_fusion  # noqa: E402
from litellm_fusion import FusionLLM  # noqa: E402
from litellm_fusion._core.errors import FusionBudgetExceededError, FusionConfigError, ModelAccessDeniedError  # noqa: E402
from litellm_fusion._core.usage import CallRecord, UsageLedger  # noqa: E402
from litellm_fusion._host.tenancy import client_chosen_models, record_spend  # noqa: E402
from litellm_fusion.testing import Script, ScriptedServer  # noqa: E402

MESSAGES = [{"role": "user", "content": "Which city is the capital of France?"}]
# Upstream names (what the scripted server sees) behind the proxy's model names.
UPSTREAM = {"m-a": "gpt-4o-mini", "m-b": "gpt-4.1-mini", "m-secret": "gpt-4o"}
FUSION = {"panel": ["m-a", "m-b"], "judge": "m-a"}

# Every way a client can name a model: (description, optional_params) -> the model it names.
OVERRIDE_PATHS = [
    ("fusion.panel", {"fusion": {"panel": ["m-secret", "m-a"]}}),
    ("fusion.judge", {"fusion": {"judge": "m-secret"}}),
    ("fusion.synthesizer", {"fusion": {"synthesizer": "m-secret"}}),
    ("fusion.panel member dict", {"fusion": {"panel": [{"model": "m-secret", "temperature": 0.2}]}}),
    ("fusion.judge member dict", {"fusion": {"judge": {"model": "m-secret"}}}),
    ("extra_body.fusion.panel", {"extra_body": {"fusion": {"panel": ["m-secret"]}}}),
    ("OpenRouter analysis_models", {"plugins": [{"id": "fusion", "analysis_models": ["m-secret", "m-a"]}]}),
    ("OpenRouter model (judge)", {"plugins": [{"id": "fusion", "model": "m-secret"}]}),
    ("OpenRouter server tool analysis_models", {"tools": [{"type": "openrouter:fusion", "parameters": {"analysis_models": ["m-secret"]}}]}),
    ("OpenRouter server tool model (judge)", {"tools": [{"type": "openrouter:fusion", "parameters": {"model": "m-secret"}}]}),
]


@pytest.fixture(scope="module")
def upstream():
    litellm_fusion.register()
    text = responder("Paris.", "Paris is the capital of France.")
    with ScriptedServer({name: Script(text=text, prompt_tokens=1000, completion_tokens=200) for name in UPSTREAM.values()}) as server:
        yield server


def _router(base_url: str, fusion: dict | None = None, access_groups: dict[str, list[str]] | None = None) -> litellm.Router:
    model_list = [
        {
            "model_name": name,
            "litellm_params": {"model": f"openai/{model}", "api_base": base_url, "api_key": "sk-up"},
            "model_info": {"id": f"id-{name}", "access_groups": (access_groups or {}).get(name, [])},
        }
        for name, model in UPSTREAM.items()
    ]
    model_list.append(
        {"model_name": "fz", "litellm_params": {"model": "fusion/fz", "fusion": fusion or FUSION}, "model_info": {"id": "id-fz"}}
    )
    return litellm.Router(model_list=model_list)


@pytest.fixture
def proxy(upstream, monkeypatch):
    """Make the handler see a running proxy with this Router; returns a function building it."""
    import litellm.proxy.proxy_server as proxy_server

    def install(**kwargs) -> litellm.Router:
        router = _router(upstream.base_url, **kwargs)
        monkeypatch.setattr(proxy_server, "llm_router", router)
        return router

    upstream.reset()
    return install


async def call(
    key: UserAPIKeyAuth | None, optional_params: dict | None = None, router: litellm.Router | None = None, logging_obj=None
) -> ModelResponse:
    """The handler as the proxy calls it for deployment ``fz``: the deployment's fusion dict, the client's params."""
    params = {"fusion": FUSION, **(optional_params or {})}
    litellm_params = {
        "proxy_server_request": {"body": {"model": "fz"}},
        "metadata": {"user_api_key_auth": key, "model_info": {"id": "id-fz"}, "spend_logs_metadata": {"client": "x"}},
    }
    handler = FusionLLM(router=router)
    response = await handler.acompletion(
        model="fz",
        messages=MESSAGES,
        model_response=ModelResponse(),
        optional_params=params,
        litellm_params=litellm_params,
        logging_obj=logging_obj,
    )
    response.litellm_params = litellm_params  # for the spend-log assertions
    return response


def key(**fields) -> UserAPIKeyAuth:
    return UserAPIKeyAuth(token="hashed-token-1", key_alias="tenant-a", **fields)


@pytest.mark.parametrize(("path", "params"), OVERRIDE_PATHS, ids=[p for p, _ in OVERRIDE_PATHS])
async def test_a_key_limited_to_the_fusion_model_reaches_no_other_model_through_any_override(proxy, upstream, path, params):
    proxy()
    with pytest.raises(ModelAccessDeniedError) as info:
        await call(key(models=["fz"]), params)
    assert info.value.status_code == 403
    assert "'m-secret'" in str(info.value) and "may not call" in str(info.value)
    assert "may use as members here: none" in str(info.value)
    assert upstream.requests == []


async def test_the_fusion_model_itself_still_works_with_its_configured_members(proxy, upstream):
    """Admin-configured members are granted by access to the deployment, though the key may not call them."""
    proxy()
    response = await call(key(models=["fz"]))
    assert response.choices[0].message.content == "Paris is the capital of France."
    assert {r.model for r in upstream.requests} == {"gpt-4o-mini", "gpt-4.1-mini"}


async def test_the_refusal_lists_the_members_the_key_may_use_and_an_allowed_one_runs(proxy, upstream):
    proxy()
    with pytest.raises(ModelAccessDeniedError, match=r"may use as members here: m-a\. "):
        await call(key(models=["fz", "m-a"]), {"fusion": {"judge": "m-secret"}})
    assert upstream.requests == []
    await call(key(models=["fz", "m-a"]), {"fusion": {"panel": ["m-a"], "judge": "m-a"}})
    assert {r.model for r in upstream.requests} == {"gpt-4o-mini"}


async def test_team_models_apply_to_a_key_without_models_of_its_own(proxy, upstream):
    proxy()
    team_key = key(models=[], team_id="team-1", team_models=["fz", "m-b"])
    with pytest.raises(ModelAccessDeniedError, match="'m-secret'.*may use as members here: m-b"):
        await call(team_key, {"fusion": {"panel": ["m-secret"]}})
    await call(team_key, {"fusion": {"panel": ["m-b"]}})
    assert upstream.requests  # m-b and the configured judge ran


async def test_access_groups_and_all_proxy_models_grant_by_litellm_rules(proxy, upstream):
    proxy(access_groups={"m-secret": ["premium"]})
    await call(key(models=["fz", "premium"]), {"fusion": {"judge": "m-secret"}})
    assert "gpt-4o" in {r.model for r in upstream.requests}
    await call(key(models=["all-proxy-models"]), {"fusion": {"synthesizer": "m-secret"}})
    with pytest.raises(ModelAccessDeniedError):
        await call(key(models=["fz", "basic"]), {"fusion": {"judge": "m-secret"}})


async def test_allowed_models_narrows_and_never_widens(proxy, upstream):
    proxy(fusion={**FUSION, "clients": {"allowed_models": ["m-a", "m-secret"]}})
    # Narrows: an all-access key still cannot pick m-b, which the deployment does not allow.
    with pytest.raises(FusionConfigError, match="'m-b' is not a model clients may use"):
        await call(key(models=[]), {"fusion": {"panel": ["m-b"]}})
    # Never widens: the deployment allows m-secret, the key does not.
    with pytest.raises(ModelAccessDeniedError, match="'m-secret'"):
        await call(key(models=["fz", "m-a"]), {"fusion": {"panel": ["m-secret"]}})
    assert upstream.requests == []


async def test_the_sdk_is_unchanged_a_router_member_needs_no_key(upstream):
    """No proxy: the caller is trusted (their own process, their own credentials)."""
    upstream.reset()
    router = _router(upstream.base_url)
    response = await FusionLLM(router=router).acompletion(
        model="custom",
        messages=MESSAGES,
        model_response=ModelResponse(),
        optional_params={"fusion": {"panel": ["m-secret"], "judge": "m-secret"}},
    )
    assert response.choices[0].message.content
    assert {r.model for r in upstream.requests} == {"gpt-4o"}


async def test_a_key_sent_by_the_client_as_json_is_not_believed(proxy, upstream):
    """The proxy puts a UserAPIKeyAuth object in the metadata; a dict there came from a client (Anthropic's
    ``metadata``, say) and must not grant anything. With the real key beside it, the real key decides."""
    proxy()
    forged = {"token": "x", "models": [], "max_budget": None}
    litellm_params = {
        "proxy_server_request": {"body": {"model": "fz"}},
        "metadata": {"user_api_key_auth": forged, "model_info": {"id": "id-fz"}},
        "litellm_metadata": {"user_api_key_auth": key(models=["fz"])},
    }
    with pytest.raises(ModelAccessDeniedError, match="'m-secret'"):
        await FusionLLM().acompletion(
            model="fz",
            messages=MESSAGES,
            model_response=ModelResponse(),
            optional_params={"fusion": {"judge": "m-secret"}},
            litellm_params=litellm_params,
        )
    assert upstream.requests == []


def test_every_override_path_names_its_models():
    assert client_chosen_models({"panel": ["a", {"model": "b"}], "judge": {"model": "c"}, "synthesizer": "d"}) == [
        ("fusion.panel[0]", "a"),
        ("fusion.panel[1]", "b"),
        ("fusion.judge", "c"),
        ("fusion.synthesizer", "d"),
    ]


CAPPED = {"fusion": {"max_completion_tokens": 200}}


async def test_a_worst_case_above_the_key_budget_is_refused_before_any_call(proxy, upstream):
    proxy()
    with pytest.raises(FusionBudgetExceededError) as info:
        await call(key(models=[], max_budget=0.001, spend=0.0), CAPPED)
    error = info.value
    assert isinstance(error, litellm.BudgetExceededError) and error.status_code == litellm.budget_exceeded_status_code == 422
    assert "estimated worst-case cost $" in str(error) and "above the $0.001000 remaining in the key budget of tenant-a" in str(error)
    assert error.entity_type == "key" and error.max_budget == 0.001
    assert upstream.requests == []


async def test_the_smallest_remaining_budget_decides_team_over_key(proxy, upstream):
    proxy()
    team_key = key(models=[], max_budget=100.0, spend=0.0, team_id="team-1", team_alias="research", team_max_budget=0.5, team_spend=0.4995)
    with pytest.raises(FusionBudgetExceededError, match=r"\$0\.000500 remaining in the team budget of research") as info:
        await call(team_key, CAPPED)
    assert info.value.entity_type == "team"
    assert upstream.requests == []
    # The same fusion fits a budget with room: it runs.
    await call(key(models=[], max_budget=100.0, spend=0.0), CAPPED)
    assert upstream.requests


async def test_without_completion_caps_the_fusion_stops_starting_calls_at_the_remaining_budget(proxy, upstream):
    """No estimate is possible; the panel (1000 prompt + 200 completion tokens each at gpt-4o-mini prices) spends
    more than the $0.0002 left, so the judge is never called and the request ends with the budget error and trace."""
    proxy()
    logging_obj = type("Logging", (), {"model_call_details": {}})()
    with pytest.raises(FusionBudgetExceededError) as info:
        await call(key(models=[], max_budget=1.0, spend=0.9998), logging_obj=logging_obj)
    error = info.value
    # What the panel spent is handed to LiteLLM, which charges a failed request with it.
    assert logging_obj.model_call_details["response_cost"] == pytest.approx(error.trace["cost"])
    assert logging_obj.model_call_details["combined_usage_object"].prompt_tokens == 2000
    assert "stopped before calling 'm-a'" in str(error) and "$0.000200 remaining in the key budget" in str(error)
    assert error.status_code == 422
    assert [m["status"] for m in error.trace["panel"]] == ["ok", "ok"]
    assert error.trace["judge"]["status"] == "failed"
    assert error.trace["cost"] > 0.0002
    assert sorted(r.model for r in upstream.requests) == ["gpt-4.1-mini", "gpt-4o-mini"]  # the panel only


async def test_max_cost_stops_in_flight_too_when_the_upstream_reports_more_than_the_estimate():
    """A server reporting far more tokens than were sent (a proxy rewriting prompts, say) beats the estimate:
    the guard still stops the fusion at max_cost, in the SDK as well."""
    text = responder("Paris.", "Paris is the capital of France.")
    # A model name outside LiteLLM's price map: per-call prices would otherwise be written into its global map.
    with ScriptedServer({"scripted-priced": Script(text=text, prompt_tokens=5000, completion_tokens=200)}) as server:
        member = {
            "model": "openai/scripted-priced",
            "api_base": server.base_url,
            "api_key": "sk-up",
            "input_cost_per_token": 1e-6,
            "output_cost_per_token": 1e-6,
        }
        spec = {"panel": [member], "judge": member, "max_completion_tokens": 200, "max_cost": 0.004}
        with pytest.raises(FusionBudgetExceededError, match=r"stopped before calling .*fusion\.max_cost \$0\.004000") as info:
            await FusionLLM().acompletion(
                model="custom", messages=MESSAGES, model_response=ModelResponse(), optional_params={"fusion": spec}
            )
        # 5000 + 200 tokens at $1e-6 = $0.0052 per call: the panel call ran; the judge and the writer did not start.
        assert info.value.trace["cost"] == pytest.approx(0.0052)
        assert info.value.trace["cost_estimate"] <= 0.004
        assert len(server.requests) == 1


async def test_the_spend_log_metadata_gets_the_per_call_breakdown(proxy, upstream):
    proxy()
    response = await call(key(models=["fz"], max_budget=10.0, spend=0.0))
    logged = response.litellm_params["metadata"]["spend_logs_metadata"]
    assert logged["client"] == "x"  # the client's own spend_logs_metadata is kept
    calls = logged["fusion"]["calls"]
    assert [c["role"] for c in calls].count("panel") == 2 and {c["role"] for c in calls} >= {"panel", "judge", "synthesizer"}
    assert all(c["prompt_tokens"] == 1000 and c["completion_tokens"] == 200 for c in calls)
    assert (
        sum(c["cost"] for c in calls) == pytest.approx(logged["fusion"]["cost"]) == pytest.approx(response._hidden_params["response_cost"])
    )


def test_record_spend_keeps_the_clients_metadata():
    ledger = UsageLedger()
    ledger.add(CallRecord(role="panel", model="m", prompt_tokens=1, completion_tokens=2, cost=0.5, latency_ms=1.0))
    params = {"metadata": {"spend_logs_metadata": {"tag": 1}}}
    record_spend(params, ledger)
    assert params["metadata"]["spend_logs_metadata"] == {
        "tag": 1,
        "fusion": {"cost": 0.5, "calls": [{"role": "panel", "model": "m", "prompt_tokens": 1, "completion_tokens": 2, "cost": 0.5}]},
    }


async def test_openrouter_max_tool_calls_above_the_deployments_is_a_400_before_any_call(proxy, upstream):
    proxy()
    with pytest.raises(FusionConfigError, match=r"fusion\.web\.max_tool_calls \(OpenRouter's max_tool_calls\)") as info:
        await call(key(models=["fz"]), {"plugins": [{"id": "fusion", "max_tool_calls": 16}]})
    assert info.value.status_code == 400
    assert upstream.requests == []


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
async def test_a_streamed_outer_call_counts_towards_max_cost_before_the_panel_starts(stream):
    """``invocation: required`` streams the outer call and then runs the panel: its cost must stop the panel."""
    scripts = {
        "scripted-priced": Script(text="Paris.", prompt_tokens=5000, completion_tokens=200),
        "scripted-big": Script(text="Paris.", prompt_tokens=12000, completion_tokens=200),
    }
    with ScriptedServer(scripts) as server:
        member = {
            "model": "openai/scripted-priced",
            "api_base": server.base_url,
            "api_key": "sk-up-xxxxxxxx",
            "input_cost_per_token": 1e-6,
            "output_cost_per_token": 1e-6,
        }
        # The scripted usage (12,000 prompt tokens) is far above what the estimate counts for this short
        # prompt, so the pre-flight check passes and only the in-flight stop can hold the cap.
        spec = {"panel": [member, member], "judge": member, "synthesizer": {**member, "model": "openai/scripted-big"}}
        spec.update(max_cost=0.0095, invocation="required", max_completion_tokens=200)
        handler = FusionLLM()
        with pytest.raises(FusionBudgetExceededError) as info:
            if stream:
                async for _ in handler.astreaming(model="custom", messages=MESSAGES, model_response=ModelResponse(), optional_params={"fusion": spec}):
                    pass
            else:
                await handler.acompletion(model="custom", messages=MESSAGES, model_response=ModelResponse(), optional_params={"fusion": spec})
        assert [r.model for r in server.requests] == ["scripted-big"], "only the outer call ran"
        assert info.value.trace["cost"] == pytest.approx(0.0122)
        assert "$0.012200 spent reached the $0.009500 remaining" in str(info.value)
