"""The built-in presets on the local llama.cpp server (``local``, ``local-self``): which models they name and
where they reach them. Standard library only: the ``local`` package (server, setup) imports these names, so the
spec never imports the package that runs the server.
"""

from __future__ import annotations

import os
from typing import Any

SMALL = "qwen2.5-coder-0.5b"
LARGE = "qwen2.5-coder-1.5b"
BASE_ENV = "LITELLM_FUSION_LOCAL_BASE"
DEFAULT_PORT = 8765
DEFAULT_BASE = f"http://127.0.0.1:{DEFAULT_PORT}/v1"
LOCAL_API_KEY = "sk-local"  # llama.cpp's server checks no key unless started with one; LiteLLM wants one


def local_base_url() -> str:
    """The local server's OpenAI base URL: ``$LITELLM_FUSION_LOCAL_BASE``, else ``http://127.0.0.1:8765/v1``."""
    return (os.environ.get(BASE_ENV) or DEFAULT_BASE).rstrip("/")


def local_member(name: str, base_url: str | None = None, **extra: Any) -> dict[str, Any]:
    """A fusion member dict for a model on the local server, priced at zero (so costs are exact, not unpriced)."""
    return {
        "model": f"openai/{name}",
        "api_base": (base_url or local_base_url()).rstrip("/"),
        "api_key": LOCAL_API_KEY,
        "input_cost_per_token": 0,
        "output_cost_per_token": 0,
        **extra,
    }


def local_preset(base_url: str | None = None) -> dict[str, Any]:
    """The ``local`` preset: panel 0.5B at 0.2, 0.5B at 0.8 and 1.5B at 0.5; judge and synthesizer 1.5B.

    ``base_url`` defaults to ``$LITELLM_FUSION_LOCAL_BASE`` (read now), else ``http://127.0.0.1:8765/v1``.
    The preset waits for every member (no straggler cut-off): on llama-server the members decode in
    parallel on the same cores, so the last to finish is whichever writes the longest answer (often the
    1.5B, the strongest member), not a stuck provider; on the fallback server the panel queues, so a cut-off
    would drop whoever was served last. Each call's completion is capped at 512 tokens (the judge's and the
    synthesizer's at 1024, the synthesizer at temperature 0); a unanimous final claim skips the judge and the
    synthesizer (``short_circuit: vote``); a failed call is retried once (stale keep-alive connections).
    """
    return {
        "panel": [
            local_member(SMALL, base_url, temperature=0.2),
            local_member(SMALL, base_url, temperature=0.8),
            local_member(LARGE, base_url, temperature=0.5),
        ],
        # The judge writes a check of every answer before its analysis: 512 tokens would cut its JSON short.
        "judge": local_member(LARGE, base_url, max_tokens=1024),
        # It rewrites a whole derivation: at the members' 512 tokens it was cut off before its final line.
        # Temperature 0 unless the caller sends one (a client's temperature goes to the synthesizer).
        "synthesizer": local_member(LARGE, base_url, max_tokens=1024, temperature=0),
        "straggler_grace": None,
        # llama.cpp's server drops idle keep-alive connections: a call on a stale pooled one fails at once
        # with a connection error (seen on llama-server under load); one retry opens a fresh connection.
        "num_retries": 1,
        # On a CPU the judge and the synthesizer cost minutes; a unanimous vote is returned as it stands.
        "short_circuit": "vote",
        "max_completion_tokens": 512,
        "timeout": 900,
    }


def local_self_preset(base_url: str | None = None) -> dict[str, Any]:
    """The ``local-self`` preset: the 1.5B model sampled three times (temperature 0, then 0.6 and 0.8 with
    fixed seeds, so reruns repeat); judge and synthesizer 1.5B. Same limits as :func:`local_preset`."""
    return {
        **local_preset(base_url),
        "panel": [
            local_member(LARGE, base_url, temperature=0),
            local_member(LARGE, base_url, temperature=0.6, extra_params={"seed": 2}),
            local_member(LARGE, base_url, temperature=0.8, extra_params={"seed": 3}),
        ],
    }
