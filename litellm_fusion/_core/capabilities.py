"""What LiteLLM's model map says a model supports, asked one way everywhere.

LiteLLM's ``supports_*`` look-ups raise for a model name the map does not know (a Router alias, a local
server's model); every caller here wants "not known to support it" then, never an exception.
"""

from __future__ import annotations

from typing import Literal

import litellm

__all__ = ["Capability", "supports"]

Capability = Literal["function_calling", "response_schema", "web_search"]
"""A ``litellm.supports_<capability>`` look-up."""


def supports(capability: Capability, model: str) -> bool:
    """Whether LiteLLM knows ``model`` to support ``capability``; False for a model it does not know."""
    check = getattr(litellm, f"supports_{capability}")  # looked up per call, so a patched LiteLLM is honoured
    try:
        return bool(check(model=model))
    except Exception:  # unknown model names make LiteLLM raise
        return False
