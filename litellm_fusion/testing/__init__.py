"""The test kit: test your own fusion configs offline, as this project's tests do.

- :class:`ScriptedServer` (with :class:`Script`, :class:`ToolCall`): a scripted OpenAI-compatible upstream on
  127.0.0.1 for real LiteLLM calls over HTTP; every request is kept as a :class:`RecordedRequest`.
- :class:`FakeCompletion` (with :class:`Reply`, :class:`CallInfo`, :func:`upstream_error`): a fake
  ``litellm.acompletion`` for the ``complete`` seam of ``run_fusion``/``stream_fusion``, scripted per model
  or stage, recording every call.
- :func:`stage_of` (which stage a call is), :func:`answer_blocks` and :func:`nonce_of` (the answers a judge or
  synthesizer prompt quotes), :func:`scripted_analysis` (a valid judge reply).

Example::

    from litellm_fusion.testing import Script, ScriptedServer, answer_blocks, scripted_analysis, stage_of

    def upstream(body):  # one model for every role
        if stage_of(body) == "judge":
            return scripted_analysis(answer_blocks(body))
        return "Paris"

    with ScriptedServer({"gpt-4o-mini": Script(text=upstream)}) as server:
        ...  # members: {"model": "openai/gpt-4o-mini", "api_base": server.base_url, "api_key": "x"}

Names are imported lazily: the server alone (``python -m litellm_fusion.testing``) does not import LiteLLM.

May import: the packages below the public ones (``litellm_fusion._engine`` for the prompt format).
"""

from __future__ import annotations

from litellm_fusion import _lazy_exports

_EXPORTS = {
    "RecordedRequest": "server",
    "Script": "server",
    "ScriptedServer": "server",
    "ToolCall": "server",
    "load_scripts": "server",
    "script_from_dict": "server",
    "CallInfo": "_fake",
    "FakeCompletion": "_fake",
    "Reply": "_fake",
    "upstream_error": "_fake",
    "Stage": "_prompts",
    "answer_blocks": "_prompts",
    "nonce_of": "_prompts",
    "scripted_analysis": "_prompts",
    "stage_of": "_prompts",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
