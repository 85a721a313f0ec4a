"""Shared fixtures: one scripted upstream server per session, LiteLLM with fusion registered.

The folder is the tier: a test under ``tests/<tier>/`` gets the marker of that name (``unit``, ``web``,
``integration``, ``e2e``, ``local``, ``browser``), so ``make test-fast`` and friends select by marker and a
newcomer sees the tiers in the tree. A tier marker on a test in another tier's folder, or a test module
outside a tier folder, is a collection error.

The cost map must be the bundled one (no network), so the variable is set before LiteLLM is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio  # noqa: E402
import string  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

import litellm  # noqa: E402
import pytest  # noqa: E402

import litellm_fusion  # noqa: E402
from litellm_fusion._engine import prompts  # noqa: E402
from litellm_fusion._spec.config import PresetStore  # noqa: E402
from litellm_fusion.testing import Script, ScriptedServer, answer_blocks, scripted_analysis  # noqa: E402

UPSTREAM_KEY = "sk-upstream-test"

TIERS = ("unit", "web", "integration", "e2e", "local", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = config.rootpath / "tests"
    for item in items:
        if not item.path.is_relative_to(tests_dir):
            continue  # a test file named on the command line from elsewhere: not a tier of this suite
        relative = item.path.relative_to(tests_dir)
        tier = relative.parts[0] if len(relative.parts) > 1 else None
        if tier not in TIERS:
            raise pytest.UsageError(f"{relative}: a test module belongs in a tier folder, one of {', '.join(TIERS)}")
        stray = [m.name for m in item.iter_markers() if m.name in TIERS and m.name != tier]
        if stray:
            raise pytest.UsageError(f"{item.nodeid}: marked {stray[0]!r} but lives in tests/{tier}/; move it to tests/{stray[0]}/")
        item.add_marker(tier)


# Real model ids from LiteLLM's price map, so every nested call has a real cost. The server sees them
# without the ``openai/`` prefix, which tells the stages apart.
PANEL_MODELS = ("openai/gpt-4o-mini", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano")
JUDGE_MODEL = "openai/gpt-4o"
SYNTH_MODEL = "openai/gpt-4.1"

PANEL_TEXT = {
    "gpt-4o-mini": "Answer from the first member: Paris is the capital of France.",
    "gpt-4.1-mini": "Answer from the second member: the capital is Paris, on the Seine.",
    "gpt-4.1-nano": "Answer from the third member: Lyon is the capital (wrong).",
}
SYNTH_TEXT = "Paris is the capital of France; the Lyon claim is wrong."
CONSENSUS_MARKER = "CONSENSUS-MARKER-7f3a: Paris is the capital"


MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


async def fusion_call(*, sync: bool = False, stream: bool = False, **kwargs: Any) -> Any:
    """One fusion call through LiteLLM; returns the response, or the list of chunks when streaming."""
    kwargs.setdefault("model", "fusion/test")
    kwargs.setdefault("messages", MESSAGES)
    if stream:
        kwargs.setdefault("stream_options", {"include_usage": True})
    if sync:

        def go() -> Any:
            response = litellm.completion(stream=stream, **kwargs)
            return list(response) if stream else response

        return await asyncio.to_thread(go)
    response = await litellm.acompletion(stream=stream, **kwargs)
    if stream:
        return [chunk async for chunk in response]
    return response


def upstream(model: str) -> str:
    """The model name the scripted server sees for a LiteLLM model id."""
    return model.removeprefix("openai/")


def judge_text(body: dict[str, Any]) -> str:
    """Script text for the judge: a valid analysis naming, by letter, every answer the judge was shown."""
    return scripted_analysis(
        answer_blocks(body),
        consensus=[CONSENSUS_MARKER],
        topic="which city is the capital",
        point="mentions the Seine",
        insight="a unique point",
        blind_spots=["nobody gave the population"],
    )


def closing_delimiters(prompt: str, nonce: str) -> int:
    """How many real closing delimiters (any letter, this request's nonce) a judge or synthesizer prompt holds."""
    return sum(prompt.count(prompts.ANSWER_CLOSE.format(letter=letter, nonce=nonce)) for letter in string.ascii_uppercase)


def outside_answers(prompt: str, nonce: str) -> str:
    """The prompt without its answer blocks: the part a model reads as instructions, not as quoted answers."""
    quoted = prompts.render_answers(answer_blocks(prompt, nonce=nonce), nonce)
    assert quoted in prompt, "the answer blocks are not where the writer puts them"
    return prompt.replace(quoted, "")


def default_scripts() -> dict[str, Script]:
    scripts: dict[str, Script] = {name: Script(text=text) for name, text in PANEL_TEXT.items()}
    scripts[upstream(JUDGE_MODEL)] = Script(text=judge_text)
    scripts[upstream(SYNTH_MODEL)] = Script(text=SYNTH_TEXT)
    return scripts


@pytest.fixture(scope="session")
def server():
    """One scripted OpenAI-compatible server for the whole session.

    Its thread is renamed: tests of ScriptedServer itself check that no thread named "ScriptedServer"
    outlives their own servers, and this long-lived one is not theirs.
    """
    before = set(threading.enumerate())
    srv = ScriptedServer().start()
    for thread in set(threading.enumerate()) - before:
        if thread.name == "ScriptedServer":
            thread.name = "ScriptedServer(session fixture)"
    yield srv
    srv.stop()


@pytest.fixture
def upstream_server(server: ScriptedServer) -> ScriptedServer:
    """The session server, with records cleared and the default scripts installed for this test."""
    server.wait_idle(5.0)
    for model, script in default_scripts().items():
        server.set_script(model, script)
    server.reset()
    return server


def member(server: ScriptedServer, model: str, **extra: Any) -> dict[str, Any]:
    """A member dict pointing at the scripted server with the upstream key."""
    return {"model": model, "api_base": server.base_url, "api_key": UPSTREAM_KEY, **extra}


@pytest.fixture
def spec(upstream_server: ScriptedServer) -> dict[str, Any]:
    """A full fusion spec: three panel members, a judge and a synthesizer, all on the scripted server."""
    return {
        "panel": [member(upstream_server, model) for model in PANEL_MODELS],
        "judge": member(upstream_server, JUDGE_MODEL),
        "synthesizer": member(upstream_server, SYNTH_MODEL),
    }


@pytest.fixture
def fusion_registered():
    """``litellm_fusion.register()`` with a fresh preset store; restores LiteLLM's provider map after."""
    saved_map = list(litellm.custom_provider_map)
    saved_presets = litellm_fusion.fusion_llm.presets
    litellm_fusion.fusion_llm.presets = PresetStore()
    try:
        yield litellm_fusion.register()
    finally:
        litellm_fusion.fusion_llm.presets = saved_presets
        litellm.custom_provider_map = saved_map
