"""The leaves every other package stands on: one nested LiteLLM call (``nested``), token and cost accounting
(``usage``), the error types (``errors``), model capability look-ups (``capabilities``) and stopping a child process group (``processes``).

May import: LiteLLM (and httpx, which it brings) and the standard library, never another ``litellm_fusion`` package.
"""
