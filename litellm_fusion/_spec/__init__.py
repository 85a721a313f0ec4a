"""The spec: what a fusion is before it runs. ``config`` holds ``FusionSpec`` / ``MemberSpec``, the merge rule
for per-request overrides and the ``PresetStore``; ``presets`` and ``local_presets`` are the built-in presets;
``call_kwargs`` turns a member into one nested call's keyword arguments and lists the secrets a spec carries.

May import: ``litellm_fusion._core``.
"""
