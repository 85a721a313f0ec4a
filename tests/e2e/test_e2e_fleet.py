"""The fleet tier: what a production LiteLLM deployment runs, with virtual keys bounding every fusion call.

Two ``litellm --config`` proxy processes share one Postgres (virtual keys, teams, spend logs; set up by the
litellm-db kit) and one Redis (the Router's deployment rpm counters). Keys and teams are created through
``/key/generate`` and ``/team/new``; clients are the ``openai`` SDK; the upstream is a scripted server in this
process, so every nested call is counted. The tier shows, through the database and the API:

(a) a key allowed only ``fz`` is refused (403) on every override path that names another model, with zero
    upstream calls, and ``fz`` itself still works;
(b) a key's and a team's budget refuse a fusion whose worst case exceeds them, with zero upstream calls; and
    without completion caps the fusion stops starting calls once the remaining budget is spent;
(c) one ``LiteLLM_SpendLogs`` row per fusion request, its spend the summed nested cost, with the per-call
    breakdown; the key's spend in ``/key/info`` the sum of its rows;
(d) a member's ``rpm`` limit shared by both instances through Redis; the rate-limited member fails like any
    member and the quorum decides;
(e) both instances serve the same fusion models, holding no state of their own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402
import openai  # noqa: E402
import pytest  # noqa: E402
from e2e_support import Proxy, launch_proxy, responder  # noqa: E402
from fleet_support import Database, database, low_port, redis_server  # noqa: E402

from litellm_fusion.testing import Script, ScriptedServer  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
SYNTH = "Paris is the capital of France."
# Upstream model -> the proxy's model name; fixed token counts, so every cost is exact and known.
MODELS = {"m-a": "gpt-4o-mini", "m-b": "gpt-4.1-mini", "m-secret": "gpt-4o", "m-limited": "gpt-4.1-nano"}
PROMPT_TOKENS, COMPLETION_TOKENS = 1000, 200
RPM = 2

# Every way a client names a model, as the openai SDK sends it (extra_body) -> the field LiteLLM reports.
OVERRIDE_PATHS = {
    "fusion.panel": {"fusion": {"panel": ["m-secret", "m-a"]}},
    "fusion.judge": {"fusion": {"judge": "m-secret"}},
    "fusion.synthesizer": {"fusion": {"synthesizer": "m-secret"}},
    "fusion.panel member dict": {"fusion": {"panel": [{"model": "m-secret", "temperature": 0.1}]}},
    "fusion.judge member dict": {"fusion": {"judge": {"model": "m-secret", "max_tokens": 50}}},
    "fusion.synthesizer member dict": {"fusion": {"synthesizer": {"model": "m-secret"}}},
    "OpenRouter plugins analysis_models": {"plugins": [{"id": "fusion", "analysis_models": ["m-secret", "m-a"]}]},
    "OpenRouter plugins model (the judge)": {"plugins": [{"id": "fusion", "model": "m-secret"}]},
    "OpenRouter server tool analysis_models": {"tools": [{"type": "openrouter:fusion", "parameters": {"analysis_models": ["m-secret"]}}]},
    "OpenRouter server tool model (the judge)": {"tools": [{"type": "openrouter:fusion", "parameters": {"model": "m-secret"}}]},
}


def _deployment(name: str, base: str, **extra: Any) -> dict[str, Any]:
    # A fixed model_info.id: the Router's Redis rpm key is "<id>:<model>:rpm:<minute>", so every instance
    # must give the deployment the same id to share its counter.
    return {
        "model_name": name,
        "litellm_params": {"model": f"openai/{MODELS[name]}", "api_base": base, "api_key": "sk-upstream", **extra},
        "model_info": {"id": f"fleet-{name}"},
    }


def _fusion(name: str, **spec: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": f"fusion/{name}", "fusion": spec}, "model_info": {"id": f"fleet-{name}"}}


def fleet_config(upstream_base: str, redis_port: int) -> dict[str, Any]:
    """One config for every instance: the same models, Postgres from DATABASE_URL, Redis for the Router."""
    return {
        "model_list": [
            _deployment("m-a", upstream_base),
            _deployment("m-b", upstream_base),
            _deployment("m-secret", upstream_base),
            _deployment("m-limited", upstream_base, rpm=RPM),
            _fusion("fz", panel=["m-a", "m-b"], judge="m-a"),
            _fusion("fz-capped", panel=["m-a", "m-b"], judge="m-a", max_completion_tokens=200),
            _fusion("fz-limited", panel=["m-a", "m-limited"], judge="m-a", min_quorum=1, straggler_grace=None),
            _fusion("fz-limited-strict", panel=["m-a", "m-limited"], judge="m-a", min_quorum=2),
        ],
        "router_settings": {
            # The only strategy in LiteLLM 1.108.7 that keeps deployment rpm/tpm in Redis for every instance.
            "routing_strategy": "usage-based-routing-v2",
            "redis_host": "127.0.0.1",
            "redis_port": redis_port,
            "fallback_on_unsupported_params": False,
        },
        "litellm_settings": {
            "custom_provider_map": [{"provider": "fusion", "custom_handler": "litellm_fusion.fusion_llm"}],
            "num_retries": 0,
        },
        "general_settings": {
            "master_key": "os.environ/LITELLM_MASTER_KEY",
            "disable_prisma_schema_update": True,  # the kit has no schema engine; it applied the migrations
            "proxy_batch_write_at": 1,  # spend reaches the database within a second or two
        },
    }


@dataclass
class Fleet:
    a: Proxy
    b: Proxy
    db: Database
    upstream: ScriptedServer
    master_key: str

    def key(self, **body: Any) -> str:
        """A virtual key from ``/key/generate`` (through instance a)."""
        with self.a.http() as http:
            response = http.post("/key/generate", json=body)
        assert response.status_code == 200, response.text
        return response.json()["key"]

    def client(self, proxy: Proxy, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=key, max_retries=0, timeout=60.0)

    def upstream_calls(self) -> int:
        return len(self.upstream.requests)


def _hashed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _wait_ready(proxy: Proxy) -> None:
    deadline = time.monotonic() + 120
    with proxy.http(timeout=5.0) as http:
        while time.monotonic() < deadline:
            try:
                body = http.get("/health/readiness").json()
                if body.get("db") == "connected":
                    return
            except Exception:  # noqa: BLE001 - still starting
                pass
            time.sleep(0.5)
    raise RuntimeError(f"{proxy.base_url} never reported db connected; log:\n{proxy.log_tail(60)}")


@pytest.fixture(scope="module")
def fleet():
    started = time.monotonic()
    text = responder("Paris.", SYNTH)
    scripts = {model: Script(text=text, prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS) for model in MODELS.values()}
    with ScriptedServer(scripts) as upstream, database(Path(sys.prefix)) as db, redis_server() as redis_port:
        config = fleet_config(upstream.base_url, redis_port)
        master_key = f"sk-fleet-{secrets.token_hex(16)}"
        proxies = [launch_proxy(config, env=db.env, master_key=master_key, pick_port=low_port, startup_timeout=240) for _ in range(2)]
        try:
            for proxy in proxies:
                proxy.wait_live()
                _wait_ready(proxy)
            print(f"\nfleet up in {time.monotonic() - started:.1f}s: {proxies[0].base_url}, {proxies[1].base_url}, redis :{redis_port}")
            yield Fleet(a=proxies[0], b=proxies[1], db=db, upstream=upstream, master_key=master_key)
        finally:
            for proxy in proxies:
                proxy.stop()
    print(f"\nfleet tier: {time.monotonic() - started:.1f}s in all")


# ----- (a) model access ---------------------------------------------------------------------------------


def test_a_key_limited_to_the_fusion_model_reaches_no_other_model_through_any_override(fleet):
    key = fleet.key(models=["fz"], key_alias=f"fz-only-{secrets.token_hex(3)}")
    before = fleet.upstream_calls()
    for path, extra_body in OVERRIDE_PATHS.items():
        for proxy in (fleet.a, fleet.b):
            with pytest.raises(openai.PermissionDeniedError) as info:
                fleet.client(proxy, key).chat.completions.create(model="fz", messages=MESSAGES, extra_body=extra_body)
            message = str(info.value)
            assert "'m-secret'" in message and "may not call" in message and "may use as members here: none" in message, (path, message)
    # Streaming too: the refusal comes before the first chunk, so it is still the 403.
    with pytest.raises(openai.PermissionDeniedError, match="'m-secret'"):
        stream = fleet.client(fleet.a, key).chat.completions.create(
            model="fz", messages=MESSAGES, stream=True, extra_body=OVERRIDE_PATHS["fusion.judge"]
        )
        list(stream)
    assert fleet.upstream_calls() == before, "a refused override made an upstream call"
    # LiteLLM itself refuses the same key calling the model directly: the same rule, the same status.
    with pytest.raises(openai.PermissionDeniedError):
        fleet.client(fleet.a, key).chat.completions.create(model="m-secret", messages=MESSAGES)
    assert fleet.upstream_calls() == before
    # The fusion model the key may call still works, with the members the admin configured.
    response = fleet.client(fleet.b, key).chat.completions.create(model="fz", messages=MESSAGES)
    assert response.choices[0].message.content == SYNTH
    assert fleet.upstream_calls() == before + 4  # two members, the judge, the synthesizer


def test_the_anthropic_and_responses_routes_check_the_key_too(fleet):
    key = fleet.key(models=["fz"])
    before = fleet.upstream_calls()
    bodies = {
        "/v1/messages": {"model": "fz", "max_tokens": 100, "messages": MESSAGES, "fusion": {"judge": "m-secret"}},
        "/v1/responses": {"model": "fz", "input": MESSAGES[0]["content"], "fusion": {"judge": "m-secret"}},
    }
    for route, body in bodies.items():
        with httpx.Client(base_url=fleet.b.base_url, headers={"Authorization": f"Bearer {key}"}, trust_env=False, timeout=60) as http:
            response = http.post(route, json=body)
        print(f"\n{route}: {response.status_code} {response.text[:300]}")
        assert response.status_code == 403 and "'m-secret'" in response.text, (route, response.status_code, response.text[:500])
    assert fleet.upstream_calls() == before


def test_a_key_with_a_member_model_may_choose_it_and_nothing_else(fleet):
    key = fleet.key(models=["fz", "m-b"])
    with pytest.raises(openai.PermissionDeniedError, match=r"may use as members here: m-b\."):
        fleet.client(fleet.a, key).chat.completions.create(model="fz", messages=MESSAGES, extra_body={"fusion": {"judge": "m-secret"}})
    response = fleet.client(fleet.a, key).chat.completions.create(
        model="fz", messages=MESSAGES, extra_body={"fusion": {"panel": ["m-b"], "judge": "m-b"}}
    )
    assert [m["model"] for m in response.model_extra["fusion"]["panel"]] == ["m-b"]


# ----- (b) budgets ----------------------------------------------------------------------------------------


def test_key_and_team_budgets_refuse_a_fusion_that_would_exceed_them_before_any_call(fleet):
    key = fleet.key(max_budget=0.0001, key_alias=f"small-{secrets.token_hex(3)}")
    with fleet.a.http() as http:
        team = http.post("/team/new", json={"team_alias": f"research-{secrets.token_hex(3)}", "max_budget": 0.0002}).json()
    team_key = fleet.key(team_id=team["team_id"], max_budget=50.0)
    before = fleet.upstream_calls()
    with pytest.raises(openai.UnprocessableEntityError) as info:
        fleet.client(fleet.a, key).chat.completions.create(model="fz-capped", messages=MESSAGES)
    assert info.value.status_code == 422
    message = str(info.value)
    print(f"\nkey budget refusal: {message}")
    assert "Budget has been exceeded" in message and "estimated worst-case cost $" in message
    assert "$0.000100 remaining in the key budget" in message
    with pytest.raises(openai.UnprocessableEntityError, match=r"\$0\.000200 remaining in the team budget of research-"):
        fleet.client(fleet.b, team_key).chat.completions.create(model="fz-capped", messages=MESSAGES)
    assert fleet.upstream_calls() == before, "a budget refusal made an upstream call"


def test_user_and_end_user_budgets_refuse_it_too(fleet):
    tag = secrets.token_hex(3)
    with fleet.a.http() as http:
        user = http.post("/user/new", json={"user_id": f"user-{tag}", "max_budget": 0.0003})
        customer = http.post("/customer/new", json={"user_id": f"customer-{tag}", "max_budget": 0.0004})
    assert user.status_code == 200 and customer.status_code == 200, (user.text, customer.text)
    personal_key = fleet.key(user_id=f"user-{tag}")
    before = fleet.upstream_calls()
    with pytest.raises(openai.UnprocessableEntityError, match=rf"\$0\.000300 remaining in the user budget of user-{tag}"):
        fleet.client(fleet.b, personal_key).chat.completions.create(model="fz-capped", messages=MESSAGES)
    # The end user is the request's `user`: its budget binds a key that has none of its own.
    with pytest.raises(openai.UnprocessableEntityError, match=rf"\$0\.000400 remaining in the end-user budget of customer-{tag}"):
        fleet.client(fleet.a, fleet.key()).chat.completions.create(model="fz-capped", messages=MESSAGES, user=f"customer-{tag}")
    assert fleet.upstream_calls() == before


def test_without_caps_the_fusion_stops_starting_calls_once_the_budget_is_spent(fleet):
    # The panel alone (m-a and m-b, 1000 + 200 tokens each) costs $0.00099: above what this key has left.
    key = fleet.key(max_budget=0.0005)
    before = fleet.upstream_calls()
    with pytest.raises(openai.UnprocessableEntityError, match=r"stopped before calling 'm-a'.*\$0\.000500 remaining in the key budget"):
        fleet.client(fleet.a, key).chat.completions.create(model="fz", messages=MESSAGES)
    assert fleet.upstream_calls() == before + 2, "only the panel ran: the judge and the synthesizer were not started"
    # What the panel spent is charged: the failed request's spend-log row carries it, and the key's spend.
    panel_cost = 1000 * (0.15e-6 + 0.4e-6) + 200 * (0.6e-6 + 1.6e-6)
    deadline, rows = time.monotonic() + 90, []
    while time.monotonic() < deadline and not rows:
        rows = fleet.db.query(f"""SELECT spend, status FROM "LiteLLM_SpendLogs" WHERE api_key = '{_hashed(key)}' AND spend > 0""")
        time.sleep(1)
    assert len(rows) == 1 and float(rows[0][0]) == pytest.approx(panel_cost) and rows[0][1] == "failure", rows
    deadline, spend = time.monotonic() + 60, None
    with fleet.b.http() as http:
        while time.monotonic() < deadline and not spend:
            spend = http.get("/key/info", params={"key": key}).json()["info"]["spend"]
            time.sleep(0.5)
    assert spend == pytest.approx(panel_cost)
    # Now over budget, the key is refused by LiteLLM's own check, on either instance, before the handler.
    with pytest.raises(openai.APIStatusError, match="(?i)budget"):
        fleet.client(fleet.b, key).chat.completions.create(model="fz", messages=MESSAGES)
    assert fleet.upstream_calls() == before + 2


# ----- (c) spend logs -------------------------------------------------------------------------------------


def _spend_rows(db: Database, hashed: str) -> list[dict[str, Any]]:
    rows = db.query(
        f"""SELECT request_id, spend, model_group, prompt_tokens, completion_tokens, metadata::text
            FROM "LiteLLM_SpendLogs" WHERE api_key = '{hashed}' ORDER BY "startTime" """
    )
    return [
        {"request_id": r[0], "spend": float(r[1]), "model_group": r[2], "prompt_tokens": int(r[3]), "completion_tokens": int(r[4]),
         "metadata": json.loads(r[5] or "{}")}
        for r in rows
    ]  # fmt: skip


def test_one_spend_log_row_per_fusion_request_with_the_breakdown_and_the_key_charged_once(fleet):
    key = fleet.key(max_budget=100.0)
    responses = []
    for proxy in (fleet.a, fleet.b, fleet.a):
        responses.append(fleet.client(proxy, key).chat.completions.create(model="fz", messages=MESSAGES))
    direct = fleet.client(fleet.b, key).chat.completions.create(model="m-a", messages=MESSAGES)
    assert direct.id.startswith("chatcmpl-scripted-")  # the upstream's id, unique across processes and runs

    deadline, rows = time.monotonic() + 90, []
    while time.monotonic() < deadline and len(rows) < 4:
        rows = _spend_rows(fleet.db, _hashed(key))
        time.sleep(1)
    print("\nLiteLLM_SpendLogs rows of the key:")
    for row in rows:
        calls = ((row["metadata"].get("spend_logs_metadata") or {}).get("fusion") or {}).get("calls", [])
        print(
            f"  {row['request_id']} {row['model_group']} spend={row['spend']:.8f} tokens={row['prompt_tokens']}+{row['completion_tokens']} "
            f"calls={[(c['role'], c['model'], c['prompt_tokens'], c['completion_tokens'], round(c['cost'], 8)) for c in calls]}"
        )
    assert len(rows) == 4, rows
    fusion_rows = [r for r in rows if r["model_group"] == "fz"]
    assert sorted(r["request_id"] for r in fusion_rows) == sorted(r.id for r in responses)
    for row in fusion_rows:
        response = next(r for r in responses if r.id == row["request_id"])
        breakdown = row["metadata"]["spend_logs_metadata"]["fusion"]
        calls = breakdown["calls"]
        assert sorted(c["model"] for c in calls if c["role"] == "panel") == ["m-a", "m-b"]
        assert {c["role"] for c in calls} == {"panel", "judge", "synthesizer"}
        assert all(c["prompt_tokens"] == PROMPT_TOKENS and c["completion_tokens"] == COMPLETION_TOKENS for c in calls)
        assert row["spend"] == pytest.approx(sum(c["cost"] for c in calls)) == pytest.approx(breakdown["cost"])
        assert row["spend"] == pytest.approx(response.usage.model_extra["cost"])
        assert row["prompt_tokens"] == PROMPT_TOKENS * len(calls)
    direct_row = next(r for r in rows if r["model_group"] == "m-a")
    assert direct_row["request_id"] == direct.id
    assert "fusion" not in (direct_row["metadata"].get("spend_logs_metadata") or {})

    # The key is charged once per request: its spend is the sum of its rows, not of the nested calls twice.
    total = sum(r["spend"] for r in rows)
    deadline, spend = time.monotonic() + 90, None
    with fleet.b.http() as http:
        while time.monotonic() < deadline:
            spend = http.get("/key/info", params={"key": key}).json()["info"]["spend"]
            if spend == pytest.approx(total):
                break
            time.sleep(1)
    assert spend == pytest.approx(total)


# ----- (d) rate limits shared through Redis ---------------------------------------------------------------


def _same_minute_ahead(seconds: float) -> None:
    """The Router's rpm window is the clock minute: start where the next ``seconds`` fit in one."""
    now = dt.datetime.now(dt.timezone.utc)
    if now.second + seconds >= 60:
        time.sleep(60 - now.second - now.microsecond / 1e6 + 0.5)


def test_a_members_rpm_limit_holds_across_both_instances_and_the_quorum_decides(fleet):
    key = fleet.key()
    _same_minute_ahead(30)
    traces = []
    for proxy in (fleet.a, fleet.b):
        response = fleet.client(proxy, key).chat.completions.create(model="fz-limited", messages=MESSAGES)
        traces.append(response.model_extra["fusion"])
    statuses = [next(m["status"] for m in t["panel"] if m["model"] == "m-limited") for t in traces]
    # rpm 2 on the deployment. LiteLLM 1.108.7's usage-based-routing-v2 skips a deployment once usage + 1 >= rpm,
    # so it admits one call a minute: the one through a. Instance b had never called m-limited, yet refuses it:
    # it read a's call from the shared Redis counter.
    assert statuses == ["ok", "error"], statuses
    limited = next(m for m in traces[1]["panel"] if m["model"] == "m-limited")
    assert limited["error"]["type"] == "RateLimitError" and limited["error"]["status_code"] == 429, limited["error"]
    # A rate-limited member fails like any member: with a quorum of 1 the fusion answers, degraded ...
    assert traces[1]["failed_models"] == ["m-limited"] and traces[1]["degraded"] is True
    # ... and with a quorum of 2 the same member fails the fusion (PanelFailedError, a 503 to the Router, which
    # retries and falls back as for any 503). The client sees 429: LiteLLM's ProxyException rewrites any error
    # whose message says "No deployments available" (here, the member's error) into a 429.
    with pytest.raises(openai.RateLimitError) as info:
        fleet.client(fleet.a, key).chat.completions.create(model="fz-limited-strict", messages=MESSAGES)
    message = str(info.value)
    assert "ServiceUnavailableError: fusion: 0 of 2 panel members answered, 2 needed" in message
    assert "m-limited: error (RateLimitError" in message


# ----- (e) stateless instances ----------------------------------------------------------------------------


def test_both_instances_serve_the_same_fusion_models_with_no_state_of_their_own(fleet):
    key = fleet.key(models=["fz", "fz-capped"])
    listed = [sorted(m.id for m in fleet.client(proxy, key).models.list()) for proxy in (fleet.a, fleet.b)]
    assert listed[0] == listed[1] == ["fz", "fz-capped"]
    answers = [fleet.client(proxy, key).chat.completions.create(model="fz", messages=MESSAGES) for proxy in (fleet.b, fleet.a)]
    assert [a.choices[0].message.content for a in answers] == [SYNTH, SYNTH]
    shapes = [sorted((m["model"], m["status"]) for m in a.model_extra["fusion"]["panel"]) for a in answers]
    assert shapes[0] == shapes[1] == [("m-a", "ok"), ("m-b", "ok")]
