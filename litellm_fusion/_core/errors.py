"""Errors raised by litellm-fusion.

Every error is also a LiteLLM exception, so the SDK, the Router and the proxy map it to the right HTTP
status and retry/fallback decision without any translation::

    FusionError                      (mixin; catch this for "anything fusion raised")
    ├── FusionConfigError            litellm.BadRequestError, 400: you configured it wrong; the fix is in
    │                                the message; raised before any upstream call; not retried
    ├── PanelFailedError             litellm.ServiceUnavailableError, 503: too few panel members answered;
    │                                carries each member's fate; retried, then fallbacks
    ├── SynthesisFailedError         litellm.ServiceUnavailableError, 503: the synthesizer (and its fallback)
    │                                failed after the panel answered
    ├── FusionTimeoutError           litellm.Timeout, 408: the whole-request deadline passed
    ├── ModelAccessDeniedError       litellm.PermissionDeniedError, 403: a proxy key chose a model it may not
    │                                call; raised before any upstream call
    └── FusionBudgetExceededError    litellm.BudgetExceededError (and UnprocessableEntityError, so LiteLLM
                                     passes it through unmapped), LiteLLM's budget status (422): the
                                     worst case does not fit the remaining budget, or spend reached it

Run errors carry ``trace`` (the partial fusion trace, with what was already spent) so a caller can see
what failed and what it cost.
"""

from __future__ import annotations

from typing import Any

import httpx
import litellm

__all__ = [
    "FusionError",
    "FusionConfigError",
    "PanelFailedError",
    "SynthesisFailedError",
    "FusionTimeoutError",
    "ModelAccessDeniedError",
    "FusionBudgetExceededError",
]

PROVIDER = "fusion"


class FusionError(Exception):
    """Root of every error litellm-fusion raises (always combined with a LiteLLM exception class)."""

    trace: dict[str, Any] | None = None


class FusionConfigError(FusionError, litellm.BadRequestError):
    """The fusion spec, the preset name or the request is invalid (HTTP 400). Nothing was called upstream."""

    def __init__(self, message: str, *, model: str = PROVIDER) -> None:
        super().__init__(message=f"fusion: {message}", model=model, llm_provider=PROVIDER)


class _RunError(FusionError):
    """The one constructor of the run errors below: LiteLLM's arguments, and the partial trace."""

    def __init__(self, message: str, *, model: str = PROVIDER, trace: dict[str, Any] | None = None) -> None:
        super().__init__(message=f"fusion: {message}", model=model, llm_provider=PROVIDER)  # the LiteLLM class, next in the MRO
        self.trace = trace


class PanelFailedError(_RunError, litellm.ServiceUnavailableError):
    """Fewer panel members answered than the quorum needs (HTTP 503); ``trace["panel"]`` has each fate."""


class SynthesisFailedError(_RunError, litellm.ServiceUnavailableError):
    """The synthesizer failed, and so did its fallback (HTTP 503)."""


class FusionTimeoutError(_RunError, litellm.Timeout):
    """The whole-request deadline passed (HTTP 408); every nested call still running was cancelled."""


class ModelAccessDeniedError(FusionError, litellm.PermissionDeniedError):
    """A proxy client named a member, judge or synthesizer its key may not call (HTTP 403). Nothing was called."""

    def __init__(self, message: str, *, model: str = PROVIDER) -> None:
        response = httpx.Response(403, request=httpx.Request("POST", "http://fusion.invalid/v1/chat/completions"))
        super().__init__(message=f"fusion: {message}", model=model, llm_provider=PROVIDER, response=response)


class FusionBudgetExceededError(FusionError, litellm.BudgetExceededError, litellm.UnprocessableEntityError):
    """The fusion would exceed (or has reached) a key, team, user or end-user budget, or ``max_cost``.

    It is LiteLLM's own ``BudgetExceededError`` with LiteLLM's budget status (``litellm.budget_exceeded_status_code``,
    422 by default). It is also an ``UnprocessableEntityError`` only so that LiteLLM's exception mapping, which
    rewrites unknown exception types into a 400, passes it through unchanged.
    """

    def __init__(
        self,
        message: str,
        *,
        current_cost: float,
        max_budget: float,
        entity_type: str | None = None,
        entity_id: str | None = None,
        model: str = PROVIDER,
        trace: dict[str, Any] | None = None,
    ) -> None:
        status = litellm.budget_exceeded_status_code
        response = httpx.Response(status, request=httpx.Request("POST", "http://fusion.invalid/v1/chat/completions"))
        litellm.UnprocessableEntityError.__init__(self, message=f"fusion: {message}", model=model, llm_provider=PROVIDER, response=response)
        # BudgetExceededError's own fields, set here because its __init__ cannot run in this MRO.
        self.current_cost = current_cost
        self.max_budget = max_budget
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.status_code = status
        self.message = f"Budget has been exceeded! fusion: {message}"  # LiteLLM's own budget wording
        self.args = (self.message,)
        self.category = "litellm_rate_limit"
        self.rate_limit_type = "budget"
        self.trace = trace
