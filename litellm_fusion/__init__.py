"""litellm-fusion: multi-model ensemble ("fusion") models for LiteLLM.

``fusion/<preset>`` fans a prompt out to a panel of models in parallel, a judge writes a structured
analysis of their answers, and a synthesizer writes the final answer from both::

    import litellm, litellm_fusion
    litellm_fusion.register()
    response = litellm.completion(model="fusion/budget", messages=[{"role": "user", "content": "..."}])
    response._hidden_params["fusion"]   # every answer, the analysis, each call's cost and latency

Names are imported lazily, so ``litellm_fusion.testing`` (the scripted server) starts without paying
for LiteLLM's import.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "FusionLLM": "provider",
    "fusion_llm": "provider",
    "register": "provider",
    "FusionSpec": "config",
    "MemberSpec": "config",
    "PresetStore": "config",
    "FusionRequest": "pipeline",
    "FusionResult": "pipeline",
    "run_fusion": "pipeline",
    "stream_fusion": "pipeline",
    "FusionError": "errors",
    "FusionConfigError": "errors",
    "PanelFailedError": "errors",
    "SynthesisFailedError": "errors",
    "FusionTimeoutError": "errors",
    "ModelAccessDeniedError": "errors",
    "FusionBudgetExceededError": "errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'litellm_fusion' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
