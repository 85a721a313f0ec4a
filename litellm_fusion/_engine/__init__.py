"""The engine: one fusion from a spec and messages to an answer and its trace, with no knowledge of the host.

``pipeline`` runs the stages (``invocation`` → ``panel`` → ``judge`` with ``vote`` and ``consensus`` →
``synthesis``, sequenced in ``stages``) for both call shapes, over one ``run`` (the request and its state);
``trace`` builds the trace; ``prompts`` writes every prompt; ``budget`` bounds the cost before a call;
``progress`` turns stage events into lines for a stream.

May import: ``litellm_fusion._web``, ``litellm_fusion._spec``, ``litellm_fusion._core``.
"""
