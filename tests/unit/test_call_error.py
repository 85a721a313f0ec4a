"""CallError: what a failed nested call shows the caller, with API keys redacted."""

from litellm_fusion._core.nested import CallError


def test_api_key_in_an_error_message_is_redacted():
    key = "sk-proj-abcdef1234567890"
    error = CallError.from_exception(RuntimeError(f"OpenAIException - Incorrect API key provided: {key}"), secrets=(key,))
    assert key not in error.message
    assert error.message == "OpenAIException - Incorrect API key provided: [redacted]"


def test_placeholder_keys_do_not_mangle_the_message():
    # api_key="x" is what a local OpenAI-compatible server gets; it is not a secret and is inside many words.
    error = CallError.from_exception(RuntimeError("OpenAIException - Connection error."), secrets=("x",))
    assert error.message == "OpenAIException - Connection error."


def test_long_messages_are_cut_and_timeouts_are_408():
    error = CallError.from_exception(TimeoutError("t" * 800))
    assert error.status_code == 408 and error.type == "TimeoutError"
    assert len(error.message) == 501 and error.message.endswith("…")
