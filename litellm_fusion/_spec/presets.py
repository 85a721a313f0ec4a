"""Built-in presets, as plain data.

Every model id here is in LiteLLM's price map (a test checks it), so the summed cost of a fusion call is
exact. Keys come from each provider's usual environment variable (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``). Every panel member has web search and fetch through its
provider's native tools (``web: auto``), so no search backend needs configuring.

Two families:

- **mixed panels** (``budget``, ``balanced``, ``frontier`` and OpenRouter's names ``general-high``,
  ``general-budget``, ``general-fast``): three vendors' models of one tier;
- **self-ensembles** (``*-self``): the tier's strongest model sampled three times. Self-MoA (arXiv
  2502.00674) found that sampling the one best model beats mixing models of uneven quality. The samples
  differ by temperature where the provider honours it (Anthropic: no ``seed``), and by ``seed`` where the
  model samples at a fixed temperature (OpenAI's reasoning models accept only temperature 1).

``local`` and ``local-self`` are built per lookup by :func:`dynamic_presets`: their base URL comes from
``$LITELLM_FUSION_LOCAL_BASE`` at call time, and their models run on this machine (``litellm_fusion.local``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BUILTIN_PRESETS", "dynamic_presets"]

BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    # Three fast, cheap models from three vendors; the cheapest-but-capable one judges.
    "budget": {
        "panel": ["openai/gpt-5.4-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-3.1-flash-lite"],
        "judge": "openai/gpt-5.4-mini",
        "web": {"mode": "auto"},
    },
    # Mid-tier models; a strong judge that is good at long structured comparisons.
    "balanced": {
        "panel": ["openai/gpt-5.4", "anthropic/claude-sonnet-4-6", "gemini/gemini-3.5-flash"],
        "judge": "anthropic/claude-sonnet-4-6",
        "web": {"mode": "auto"},
    },
    # Each vendor's flagship; for answers where being wrong costs more than the call.
    "frontier": {
        "panel": ["openai/gpt-5.5", "anthropic/claude-opus-4-8", "gemini/gemini-3.1-pro-preview"],
        "judge": "openai/gpt-5.5",
        "web": {"mode": "auto"},
    },
    # OpenRouter's preset names, so clients written for OpenRouter Fusion find them. Quality first: each
    # vendor's flagship, the strongest long-context analyst judging (OpenRouter's default panel).
    "general-high": {
        "panel": ["anthropic/claude-opus-4-8", "openai/gpt-5.5", "gemini/gemini-3.1-pro-preview"],
        "judge": "anthropic/claude-opus-4-8",
        "web": {"mode": "auto"},
    },
    # Cheap but capable models of three vendors; the cheapest of them with structured output judges.
    "general-budget": {
        "panel": ["openai/gpt-5.4-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-3-flash-preview"],
        "judge": "gemini/gemini-3-flash-preview",
        "web": {"mode": "auto"},
    },
    # The lowest-latency models; two answers are enough to go on and a slow third gets 3 s more.
    "general-fast": {
        "panel": ["openai/gpt-5.4-nano", "gemini/gemini-3.1-flash-lite", "anthropic/claude-haiku-4-5"],
        "judge": "gemini/gemini-3.1-flash-lite",
        "min_quorum": 2,
        "straggler_grace": 3.0,
        "web": {"mode": "auto"},
    },
    # Self-ensembles: one model, three samples.
    "budget-self": {
        "panel": [{"model": "openai/gpt-5.4-mini", "extra_params": {"seed": seed}} for seed in (1, 2, 3)],
        "judge": "openai/gpt-5.4-mini",
        "web": {"mode": "auto"},
    },
    "balanced-self": {
        "panel": [{"model": "anthropic/claude-sonnet-4-6", "temperature": t} for t in (0.3, 0.7, 1.0)],
        "judge": "anthropic/claude-sonnet-4-6",
        "web": {"mode": "auto"},
    },
    "frontier-self": {
        "panel": [{"model": "anthropic/claude-opus-4-8", "temperature": t} for t in (0.3, 0.7, 1.0)],
        "judge": "anthropic/claude-opus-4-8",
        "web": {"mode": "auto"},
    },
}


def dynamic_presets() -> dict[str, dict[str, Any]]:
    """Built-in presets that depend on the environment when they are used: ``local`` and ``local-self``
    (see ``litellm_fusion.local``)."""
    from litellm_fusion._spec.local_presets import local_preset, local_self_preset

    return {"local": local_preset(), "local-self": local_self_preset()}
