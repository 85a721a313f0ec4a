"""A fake ``litellm.acompletion`` that replays a script and records every call.

Pass it as the ``complete`` seam of :func:`litellm_fusion.run_fusion` or :func:`~litellm_fusion.stream_fusion`
(or wherever code awaits ``litellm.acompletion(**kwargs)``): it takes the same keyword arguments and returns
LiteLLM's own types, a ``ModelResponse`` or, with ``stream=True``, an async iterator of
``ModelResponseStream`` chunks whose last carries the usage. As with httpx's ``MockTransport(handler)`` and
pydantic-ai's ``FunctionModel(function)``, the script is data or a function of what the call was.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import litellm
from litellm.types.utils import Delta, ModelResponse, ModelResponseStream, StreamingChoices

from litellm_fusion.testing._prompts import Stage, answer_blocks, stage_of

__all__ = ["CallInfo", "FakeCompletion", "Reply", "upstream_error"]

STREAM_CHUNK_CHARS = 4
"""Characters of content per streamed chunk: small, so a stream has several."""


@dataclass(frozen=True, kw_only=True)
class CallInfo:
    """One nested call as the fake received it: what a reply function is given (cf. pydantic-ai's ``AgentInfo``)."""

    model: str
    """The ``model`` argument, e.g. ``"openai/gpt-4o"``."""
    stage: Stage
    """Which fusion stage made the call (:func:`~litellm_fusion.testing.stage_of`)."""
    kwargs: Mapping[str, Any]
    """Every keyword argument of the call, as ``litellm.acompletion`` would get them."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The call's messages."""
        return list(self.kwargs.get("messages") or [])

    @property
    def answers(self) -> dict[str, str]:
        """The panel answers a judge or synthesizer call quotes, letter -> text (:func:`~litellm_fusion.testing.answer_blocks`)."""
        return answer_blocks(self.messages) if self.stage != "panel" else {}


@dataclass(frozen=True)
class Reply:
    """One scripted reply: its text (or a function of the :class:`CallInfo`), a delay, or an exception to raise."""

    text: str | Callable[[CallInfo], str] = "ok"
    """The answer's content, or a function returning it (e.g. a judge that reads the answers it was shown)."""
    delay: float = 0.0
    """Seconds before the reply; a cancelled call is recorded in :attr:`FakeCompletion.cancelled`."""
    error: BaseException | None = None
    """Raised after ``delay`` instead of replying (see :func:`upstream_error`)."""
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cost: float | None = 0.001
    """``_hidden_params["response_cost"]`` of the response; None for an unpriced model."""


ReplyScript = Mapping[str, Reply | str | Sequence[Reply]] | Callable[[CallInfo], Reply | str]
"""Replies by model or stage, or a function of the call (see :class:`FakeCompletion`)."""


@dataclass
class FakeCompletion:
    """Call it like ``litellm.acompletion``; each call's reply comes from ``script``.

    ``script`` maps a model name, or a stage (``"panel"``, ``"judge"``, ``"repair"``, ``"synthesizer"``), to a
    :class:`Reply` (or just its text) or a list of them, used in order with the last one repeating; the model's
    entry wins over its stage's, and ``default`` answers the rest. Or ``script`` is a function of the
    :class:`CallInfo` returning a :class:`Reply` or the text.
    """

    script: ReplyScript = field(default_factory=dict)
    default: Reply = field(default_factory=Reply)
    calls: list[dict[str, Any]] = field(default_factory=list)
    """The keyword arguments of every call, in the order they arrived."""
    cancelled: list[str] = field(default_factory=list)
    """The model of every call cancelled while it waited for its reply."""
    in_flight: int = 0
    """Calls waiting for their reply now."""

    def __post_init__(self) -> None:
        if isinstance(self.script, Mapping):  # a private copy: lists are consumed as calls arrive
            self.script = {key: entry if isinstance(entry, (Reply, str)) else list(entry) for key, entry in self.script.items()}

    def models_called(self) -> list[str]:
        """The model of every call, in order."""
        return [call["model"] for call in self.calls]

    def calls_for(self, key: str) -> list[dict[str, Any]]:
        """The calls to one model, or of one stage (``"judge"``, ...), in order."""
        return [call for call in self.calls if key in (call["model"], stage_of(call))]

    def _reply(self, info: CallInfo) -> Reply:
        if callable(self.script):
            entry = self.script(info)
        else:
            entry = self.script.get(info.model, self.script.get(info.stage, self.default))
            if isinstance(entry, list):
                entry = entry.pop(0) if len(entry) > 1 else entry[0]
        return entry if isinstance(entry, Reply) else Reply(entry)

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        info = CallInfo(model=kwargs["model"], stage=stage_of(kwargs), kwargs=kwargs)
        reply = self._reply(info)
        self.in_flight += 1
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
        except asyncio.CancelledError:
            self.cancelled.append(info.model)
            raise
        finally:
            self.in_flight -= 1
        if reply.error is not None:
            raise reply.error
        text = reply.text(info) if callable(reply.text) else reply.text
        if kwargs.get("stream"):
            return _stream(text, reply)
        response = ModelResponse(
            model=info.model,
            choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            usage=_usage(reply),
        )
        response._hidden_params["response_cost"] = reply.cost
        return response


def _usage(reply: Reply) -> litellm.Usage:
    return litellm.Usage(
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        total_tokens=reply.prompt_tokens + reply.completion_tokens,
    )


async def _stream(text: str, reply: Reply) -> AsyncIterator[ModelResponseStream]:
    for start in range(0, len(text), STREAM_CHUNK_CHARS):
        delta = Delta(content=text[start : start + STREAM_CHUNK_CHARS])
        yield ModelResponseStream(choices=[StreamingChoices(index=0, delta=delta)])
    final = ModelResponseStream(choices=[StreamingChoices(index=0, delta=Delta(), finish_reason="stop")])
    final.usage = _usage(reply)  # as LiteLLM reports it with stream_options.include_usage
    yield final


def upstream_error(cls: type[Exception] = litellm.InternalServerError, message: str = "boom", status: int | None = None) -> Exception:
    """A LiteLLM exception as a failing nested call raises it, for :attr:`Reply.error`."""
    if cls is litellm.APIError:
        return cls(status_code=status or 500, message=message, llm_provider="openai", model="m")
    return cls(message=message, llm_provider="openai", model="m")
