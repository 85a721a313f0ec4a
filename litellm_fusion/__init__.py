"""litellm-fusion: multi-model ensemble ("fusion") models for LiteLLM.

``fusion/<preset>`` fans a prompt out to a panel of models in parallel, a judge writes a structured
analysis of their answers, and a synthesizer writes the final answer from both::

    import litellm, litellm_fusion
    litellm_fusion.register()
    response = litellm.completion(model="fusion/budget", messages=[{"role": "user", "content": "..."}])
    response._hidden_params["fusion"]   # every answer, the analysis, each call's cost and latency

This module is the public surface (``tests/unit/test_public_surface.py`` pins it), together with the
``progress``, ``testing``, ``local``, ``evaluation`` and ``report`` packages and the ``litellm-fusion`` command (``cli``).
The packages whose names start with ``_`` are internals, layered bottom-up — ``_core`` (nested call, usage,
errors) ← ``_spec`` (config, presets) ← ``_web`` (web tools) ← ``_engine`` (the fusion) ← ``_host`` (the
LiteLLM adapter) — and each imports only the ones below it (``tests/unit/test_layers.py``).

Proxy config points at names here: ``custom_handler: litellm_fusion.fusion_llm`` and
``callbacks: ["litellm_fusion.fusion_server_tool"]``.

Names are imported lazily, so ``litellm_fusion.testing`` (the scripted server) starts without paying
for LiteLLM's import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "FusionLLM": "_host.provider",
    "fusion_llm": "_host.provider",
    "register": "_host.provider",
    "fusion_server_tool": "_host.server_tool",
    "FusionSpec": "_spec.config",
    "MemberSpec": "_spec.config",
    "PresetStore": "_spec.config",
    "FusionRequest": "_engine.run",
    "FusionResult": "_engine.pipeline",
    "run_fusion": "_engine.pipeline",
    "stream_fusion": "_engine.pipeline",
    "FusionError": "_core.errors",
    "FusionConfigError": "_core.errors",
    "PanelFailedError": "_core.errors",
    "SynthesisFailedError": "_core.errors",
    "FusionTimeoutError": "_core.errors",
    "ModelAccessDeniedError": "_core.errors",
    "FusionBudgetExceededError": "_core.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def _lazy_exports(package: str, exports: dict[str, str], namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for names imported on first use: ``exports`` maps each
    name to the module (relative to ``package``) that defines it; a resolved name is cached in ``namespace``.
    The root and the ``testing`` and ``evaluation`` packages use it to stay cheap to import."""

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(namespace["__all__"])

    return getattr_, dir_


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
