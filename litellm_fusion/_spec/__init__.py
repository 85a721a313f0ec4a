"""The spec: what a fusion is before it runs. ``config`` holds ``FusionSpec`` / ``MemberSpec``, the merge rule
for per-request overrides and the ``PresetStore``; ``presets`` and ``local_presets`` are the built-in presets.

May import: ``litellm_fusion._core``.
"""
