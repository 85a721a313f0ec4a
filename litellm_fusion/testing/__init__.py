"""Test helpers: a scripted OpenAI-compatible upstream server.

Example::

    from litellm_fusion.testing import ScriptedServer, Script

    with ScriptedServer({"model-a": Script(text="Paris", latency=0.1)}) as server:
        ...  # point an OpenAI client at server.base_url
        assert server.stats()["total"] == 1
"""

from litellm_fusion.testing.server import (
    RecordedRequest,
    Script,
    ScriptedServer,
    ToolCall,
    load_scripts,
    script_from_dict,
)

__all__ = ["RecordedRequest", "Script", "ScriptedServer", "ToolCall", "load_scripts", "script_from_dict"]
