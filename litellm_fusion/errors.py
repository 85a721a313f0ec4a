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
    └── FusionTimeoutError           litellm.Timeout, 408: the whole-request deadline passed

Run errors carry ``trace`` (the partial fusion trace, with what was already spent) so a caller can see
what failed and what it cost.
"""

from __future__ import annotations

from typing import Any

import litellm

__all__ = [
    "FusionError",
    "FusionConfigError",
    "PanelFailedError",
    "SynthesisFailedError",
    "FusionTimeoutError",
]

PROVIDER = "fusion"


class FusionError(Exception):
    """Root of every error litellm-fusion raises (always combined with a LiteLLM exception class)."""

    trace: dict[str, Any] | None = None


class FusionConfigError(FusionError, litellm.BadRequestError):
    """The fusion spec, the preset name or the request is invalid (HTTP 400). Nothing was called upstream."""

    def __init__(self, message: str, *, model: str = PROVIDER) -> None:
        super().__init__(message=f"fusion: {message}", model=model, llm_provider=PROVIDER)


class PanelFailedError(FusionError, litellm.ServiceUnavailableError):
    """Fewer panel members answered than the quorum needs (HTTP 503); ``trace["panel"]`` has each fate."""

    def __init__(self, message: str, *, model: str = PROVIDER, trace: dict[str, Any] | None = None) -> None:
        super().__init__(message=f"fusion: {message}", model=model, llm_provider=PROVIDER)
        self.trace = trace


class SynthesisFailedError(FusionError, litellm.ServiceUnavailableError):
    """The synthesizer failed, and so did its fallback (HTTP 503)."""

    def __init__(self, message: str, *, model: str = PROVIDER, trace: dict[str, Any] | None = None) -> None:
        super().__init__(message=f"fusion: {message}", model=model, llm_provider=PROVIDER)
        self.trace = trace


class FusionTimeoutError(FusionError, litellm.Timeout):
    """The whole-request deadline passed (HTTP 408); every nested call still running was cancelled."""

    def __init__(self, message: str, *, model: str = PROVIDER, trace: dict[str, Any] | None = None) -> None:
        super().__init__(message=f"fusion: {message}", model=model, llm_provider=PROVIDER)
        self.trace = trace
