"""Built-in presets, as plain data.

Every model id here is in LiteLLM's price map (a test checks it), so the summed cost of a fusion call is
exact. Keys come from each provider's usual environment variable (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``). Every panel member has web search and fetch through its
provider's native tools (``web: auto``), so no search backend needs configuring.

``local`` is built per lookup by :func:`dynamic_presets`: its base URL comes from
``$LITELLM_FUSION_LOCAL_BASE`` at call time, and its models run on this machine (``litellm_fusion.local``).
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
}


def dynamic_presets() -> dict[str, dict[str, Any]]:
    """Built-in presets that depend on the environment when they are used: ``local`` (see ``litellm_fusion.local``)."""
    from .local import local_preset  # standard library only; nothing is started or downloaded

    return {"local": local_preset()}
