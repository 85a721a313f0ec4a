"""What a proxy key may do through fusion: reach only models it may call, spend only what its budgets have left.

Inside the LiteLLM proxy the caller's ``UserAPIKeyAuth`` arrives in ``litellm_params["metadata"]["user_api_key_auth"]``.
Before any upstream call:

- every member, judge and synthesizer the *client* named (``fusion`` overrides, OpenRouter ``plugins`` or its server tool) must pass
  LiteLLM's own model-access checks for that key (``can_key_call_resolved_model``: the key's models, its team's,
  access groups, wildcards, ``all-proxy-models``, project and end-user limits), else a 403 naming the model and
  the models the key may use. Members the admin configured on the deployment are granted by access to it;
- the worst-case estimate (``_engine.budget.estimate_max_cost``) must fit the smallest remaining key, team, user or
  end-user budget, read the way LiteLLM's own budget checks read spend (its Redis-first counters), else
  LiteLLM's budget error.

While the fusion runs, a :class:`SpendGuard` wrapped around the nested-call seam stops starting calls once what
was spent reaches the remaining budget (or ``max_cost``): the bound for requests without completion caps, where
no estimate exists. Afterwards the per-call breakdown goes into the request's ``spend_logs_metadata``, so the
proxy's spend-log row says which models the money went to. The SDK (no proxy) gets only the ``max_cost`` guard.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import litellm

from litellm_fusion._core.errors import FusionBudgetExceededError, FusionConfigError, ModelAccessDeniedError
from litellm_fusion._core.nested import CompleteFn
from litellm_fusion._core.usage import UsageLedger, cost_of, usage_of
from litellm_fusion._engine.budget import estimate_max_cost
from litellm_fusion._engine.pipeline import FusionDone, FusionRequest
from litellm_fusion._host.request import client_overrides
from litellm_fusion._host.routing import deployment_spec, fusion_model_names, router_names

__all__ = [
    "Budget",
    "SpendGuard",
    "caller_key",
    "client_chosen_models",
    "check_model_access",
    "key_budgets",
    "check_estimate",
    "admit",
    "record_spend",
    "charge_failure",
]


_SHOWN_MODELS = 20
"""How many usable models a refusal lists (a large proxy serves hundreds)."""


def caller_key(litellm_params: dict[str, Any] | None) -> Any | None:
    """The caller's ``UserAPIKeyAuth`` from the proxy's request metadata, or None.

    Chat completions carry it in ``metadata``, other routes (``/v1/messages``) in ``litellm_metadata``, where the
    client's own ``metadata`` may sit beside it. Only a ``UserAPIKeyAuth`` object counts: the proxy puts one
    there, while anything a client sends arrives as JSON, so a client cannot hand in a key of its own making.
    """
    from litellm.proxy._types import UserAPIKeyAuth

    for name in ("litellm_metadata", "metadata"):
        metadata = (litellm_params or {}).get(name)
        key = metadata.get("user_api_key_auth") if isinstance(metadata, dict) else None
        if isinstance(key, UserAPIKeyAuth):
            return key
    return None


def client_chosen_models(overrides: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field path, model)`` for every model a client's overrides name (OpenRouter's are already mapped)."""

    def model_of(member: Any) -> Any:
        return member.get("model") if isinstance(member, dict) else member

    chosen = [(f"fusion.panel[{i}]", model_of(m)) for i, m in enumerate(overrides.get("panel") or [])]
    chosen += [(f"fusion.{role}", model_of(overrides[role])) for role in ("judge", "synthesizer") if overrides.get(role) is not None]
    return [(path, model) for path, model in chosen if isinstance(model, str)]


async def _key_may_call(model: str, key: Any, router: Any) -> bool:
    from litellm.proxy._types import ProxyException
    from litellm.proxy.auth.auth_checks import can_key_call_resolved_model

    try:
        await can_key_call_resolved_model(model=model, llm_model_list=router.model_list, valid_token=key, llm_router=router)
    except ProxyException:
        return False
    return True


async def check_model_access(chosen: list[tuple[str, str]], key: Any, router: Any) -> None:
    """Raise a 403 for the first model ``key`` may not call, naming it and the members the key may use.

    A failing look-up (the database, say) refuses too: fail closed, as LiteLLM does for fallbacks.
    """
    for path, model in chosen:
        try:
            allowed = await _key_may_call(model, key, router)
        except Exception as exc:  # noqa: BLE001 - fail closed
            raise ModelAccessDeniedError(
                f"{path}: could not verify that this key may call '{model}' ({type(exc).__name__}); try again"
            ) from exc
        if allowed:
            continue
        members = sorted(router_names(router) - fusion_model_names(router))
        usable = [name for name in members if await _key_may_call(name, key, router)]
        shown = ", ".join(usable[:_SHOWN_MODELS]) + (f" and {len(usable) - _SHOWN_MODELS} more" if len(usable) > _SHOWN_MODELS else "")
        raise ModelAccessDeniedError(
            f"{path}: this key may not call '{model}'; the models it may use as members here: {shown or 'none'}. "
            "Choose one of those, or ask the proxy admin to grant the model to the key or its team",
            model=model,
        )


@dataclass(frozen=True)
class Budget:
    """One budget that applies to the request, with what it has spent."""

    entity: str
    """``key``, ``team``, ``user``, ``end-user`` or ``max_cost``."""
    label: str
    """How the error names it (a key alias, a team id, ...; never the key itself)."""
    max_budget: float
    spend: float
    entity_id: str | None = None

    @property
    def remaining(self) -> float:
        """What is left, never below zero."""
        return max(0.0, self.max_budget - self.spend)

    def describe(self) -> str:
        """How an error names this budget: which one, its limit and what it has spent."""
        if self.entity == "max_cost":
            return f"fusion.max_cost ${self.max_budget:.6f}"
        return f"the {self.entity} budget of {self.label} (max_budget ${self.max_budget:.6f}, spent ${self.spend:.6f})"


async def _spend(counter_key: str, fallback: float, max_budget: float) -> float:
    """Current spend the way LiteLLM's auth-time checks read it (cross-instance Redis counter first)."""
    try:
        from litellm.proxy.proxy_server import get_current_spend
    except ImportError:  # pragma: no cover - only inside the proxy
        return fallback
    return float(await get_current_spend(counter_key=counter_key, fallback_spend=fallback, max_budget=max_budget))


async def key_budgets(key: Any, *, apply_user_budget_to_team_keys: bool = False) -> tuple[Budget, ...]:
    """Every finite ``max_budget`` on the key, its team, its user (as LiteLLM applies it) and its end user."""
    candidates: list[tuple[str, str, str | None, float | None, float, str]] = []
    if key.token:
        candidates.append(("key", key.key_alias or "this key", key.token, key.max_budget, key.spend or 0.0, f"spend:key:{key.token}"))
    if key.team_id:
        candidates.append(
            ("team", key.team_alias or key.team_id, key.team_id, key.team_max_budget, key.team_spend or 0.0, f"spend:team:{key.team_id}")
        )
    # LiteLLM applies a user's personal budget to team keys only when the proxy opts in.
    if key.user_id and (key.team_id is None or apply_user_budget_to_team_keys):
        candidates.append(("user", key.user_id, key.user_id, key.user_max_budget, key.user_spend or 0.0, f"spend:user:{key.user_id}"))
    if key.end_user_id:
        candidates.append(("end-user", key.end_user_id, key.end_user_id, key.end_user_max_budget, 0.0, f"spend:end_user:{key.end_user_id}"))
    budgets = []
    for entity, label, entity_id, max_budget, fallback, counter in candidates:
        if max_budget is None or not math.isfinite(max_budget):
            continue
        spend = await _spend(counter, fallback, max_budget)
        budgets.append(Budget(entity=entity, label=label, entity_id=entity_id, max_budget=float(max_budget), spend=spend))
    return tuple(budgets)


def _budget_error(message: str, budget: Budget, spent: float, trace: dict[str, Any] | None = None) -> FusionBudgetExceededError:
    return FusionBudgetExceededError(
        message,
        current_cost=budget.spend + spent,
        max_budget=budget.max_budget,
        entity_type=budget.entity,
        entity_id=budget.entity_id,
        trace=trace,
    )


def check_estimate(estimate: float, budgets: tuple[Budget, ...]) -> None:
    """Refuse before any call when the worst case does not fit the smallest remaining budget."""
    tightest = min(budgets, key=lambda b: b.remaining, default=None)
    if tightest is None or estimate <= tightest.remaining:
        return
    raise _budget_error(
        f"estimated worst-case cost ${estimate:.6f} is above the ${tightest.remaining:.6f} remaining in {tightest.describe()}; "
        "lower fusion.max_completion_tokens, use fewer or cheaper members, or ask the proxy admin to raise the budget",
        tightest,
        0.0,
    )


@dataclass
class SpendGuard:
    """Wraps the nested-call seam: once what the calls cost reaches ``limit``, no further call starts.

    Calls already running finish (cancelling them would not refund them); the next one raises, the member or
    stage fails like any other, and :meth:`check` turns the whole request into the budget error with its trace.
    A streamed call is counted when its stream ends. Client-side web searches do not pass through this seam:
    their fees are in the trace's cost but not in what the guard counts.
    """

    budgets: tuple[Budget, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    spent: float = 0.0
    stopped: str | None = None
    """The model whose call was not started, once the guard stopped one."""

    @property
    def limit(self) -> Budget | None:
        """The budget with the least left, if any applies."""
        return min(self.budgets, key=lambda b: b.remaining, default=None)

    def wrap(self, complete: CompleteFn) -> CompleteFn:
        """``complete`` with the guard in front (unchanged when no budget applies)."""
        if self.limit is None:
            return complete

        async def guarded(**kwargs: Any) -> Any:
            limit = self.limit
            assert limit is not None
            if self.spent >= limit.remaining:
                self.stopped = self.stopped or kwargs["model"]
                raise self._error(f"not started: ${self.spent:.6f} already spent reaches", None)
            response = await complete(**kwargs)
            if kwargs.get("stream"):
                return self._counted(response, kwargs)
            self.spent += self._call_cost(response, usage_of(response), kwargs)
            return response

        return guarded

    def _call_cost(self, response: Any, tokens: tuple[int, int], kwargs: dict[str, Any]) -> float:
        model = kwargs["model"]
        prices = (kwargs.get("input_cost_per_token"), kwargs.get("output_cost_per_token"))
        cost = cost_of(response, model=self.aliases.get(model, model), prompt_tokens=tokens[0], completion_tokens=tokens[1], prices=prices)
        return cost or 0.0

    async def _counted(self, stream: Any, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """``stream`` unchanged, its cost counted when it ends: a streamed call is not always the last one
        (``invocation: auto`` streams the outer call, then the panel runs)."""
        usage = None
        try:
            async for chunk in stream:
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                yield chunk
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            # Streams carry no stamped cost: priced from their usage, as the ledger prices them.
            self.spent += self._call_cost(None, usage_of(usage), kwargs)

    def _error(self, what: str, trace: dict[str, Any] | None) -> FusionBudgetExceededError:
        limit = self.limit
        assert limit is not None
        return _budget_error(
            f"{what} the ${limit.remaining:.6f} remaining in {limit.describe()}; "
            "set fusion.max_completion_tokens so the worst case is refused before any call, or ask the proxy admin to raise the budget",
            limit,
            self.spent,
            trace,
        )

    def check(self, trace: dict[str, Any] | None, cause: BaseException | None = None) -> None:
        """Raise the budget error (with the run's trace) when the guard stopped a call."""
        if self.stopped is None:
            return
        raise self._error(f"stopped before calling '{self.stopped}': ${self.spent:.6f} spent reached", trace) from cause

    async def bounded(self, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """A fusion event stream that ends with the budget error, not an answer, once the guard stopped a call.

        Panel and judge finish before the first event, so a stop there is known before anything is sent.
        """
        async for event in events:
            if self.stopped is not None:
                trace = event.trace if isinstance(event, FusionDone) else None
                async for rest in events:  # the short-circuit answer is followed at once by its FusionDone
                    trace = rest.trace if isinstance(rest, FusionDone) else trace
                self.check(trace)
            yield event


async def admit(
    request: FusionRequest,
    *,
    optional_params: dict[str, Any],
    litellm_params: dict[str, Any] | None,
    router: Any | None,
    from_proxy_client: bool,
) -> SpendGuard:
    """Every check of this module for one call, before any upstream call; returns the in-flight guard."""
    budgets: tuple[Budget, ...] = ()
    if request.spec.max_cost is not None:
        budgets = (Budget(entity="max_cost", label="max_cost", max_budget=request.spec.max_cost, spend=0.0),)
    key = caller_key(litellm_params) if from_proxy_client else None
    if key is not None:
        overrides = client_overrides(optional_params, deployment_spec(router, litellm_params or {}) or {})
        await check_model_access(client_chosen_models(overrides), key, router)
        from litellm.proxy.proxy_server import general_settings

        key_limits = await key_budgets(key, apply_user_budget_to_team_keys=general_settings.get("apply_user_budget_to_team_keys") is True)
        if key_limits:
            try:
                estimate = request.cost_estimate or estimate_max_cost(request.spec, request.messages, request.aliases, request.web_modes)
            except FusionConfigError:  # no completion cap or no price: the in-flight guard bounds it instead
                estimate = None
            if estimate is not None:
                check_estimate(estimate, key_limits)
            budgets += key_limits
    return SpendGuard(budgets=budgets, aliases=request.aliases)


def record_spend(litellm_params: dict[str, Any] | None, ledger: UsageLedger) -> None:
    """Put the per-call breakdown into ``spend_logs_metadata``, which the proxy stores on the spend-log row."""
    calls = [
        {"role": r.role, "model": r.model, "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens, "cost": r.cost}
        for r in ledger.records
    ]
    for name in ("metadata", "litellm_metadata"):  # whichever the route's spend logger reads
        metadata = (litellm_params or {}).get(name)
        if isinstance(metadata, dict):
            existing = metadata.get("spend_logs_metadata")
            metadata["spend_logs_metadata"] = {
                **(existing if isinstance(existing, dict) else {}),
                "fusion": {"cost": ledger.cost, "calls": calls},
            }


def charge_failure(logging_obj: Any, trace: dict[str, Any] | None) -> None:
    """A failed fusion still spent what its nested calls cost: hand that to LiteLLM as the request's usage.

    The proxy writes a failed request's spend-log row, and charges the key, team and user, with the usage and
    cost it finds in the logging object's ``combined_usage_object`` and ``response_cost`` (where a broken
    stream's partial usage goes). Without this a request stopped at the budget, or failing after the panel,
    would be free, and a key could spend past its budget one failed request at a time.
    """
    details = getattr(logging_obj, "model_call_details", None)
    if not isinstance(details, dict) or not trace or not trace.get("cost"):
        return
    usage = trace.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    details["combined_usage_object"] = litellm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    details["response_cost"] = float(trace["cost"])
