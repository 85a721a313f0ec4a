"""The host adapter: LiteLLM's ``CustomLLM`` (``provider``), building a fusion request from LiteLLM's keyword
arguments (``request``), what a proxy client may override (``clients``), nested calls through the proxy's Router
(``routing``), what a proxy key may reach and spend (``tenancy``), the ``openrouter:fusion`` server-tool hook
(``server_tool``) and the event-loop thread the sync entry points run on (``sync``).

May import: ``litellm_fusion._engine`` and everything below it.
"""
