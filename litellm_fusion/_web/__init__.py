"""Web search and web fetch for panel members.

- ``native``: the provider's own web tools where it has them (Anthropic, Gemini, OpenAI, xAI, OpenRouter,
  Perplexity), chosen per provider;
- ``loop``: a client-side tool loop (``web_search`` / ``web_fetch`` function tools) for everything else;
- ``search``: search through ``litellm.asearch`` (or the proxy's configured search tools);
- ``fetch`` / ``ssrf`` / ``extract``: SSRF-safe fetching of model-chosen URLs and HTML to text;
- ``citations``: every native citation shape normalised to ``Source(url, title)``;
- ``tools``: the client loop's tool schemas, budget, URL provenance and sources;
- ``member``: one member's answer with the web: which path it takes (native, client loop, pre-search), and running it.

May import: ``litellm_fusion._spec``, ``litellm_fusion._core``.
"""
