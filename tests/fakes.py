"""A scripted fake of the completion seam (``litellm.acompletion``) that records every call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import litellm
from litellm.types.utils import Delta, ModelResponse, ModelResponseStream, StreamingChoices


@dataclass
class Reply:
    """One scripted reply: text (or a callable of the kwargs), a delay, or an exception to raise."""

    text: str | Callable[[dict[str, Any]], str] = "ok"
    delay: float = 0.0
    error: BaseException | None = None
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cost: float | None = 0.001


@dataclass
class FakeCompletion:
    """Call it like ``litellm.acompletion``; replies come from ``script[model]`` (a Reply or a list, consumed in order)."""

    script: dict[str, Reply | list[Reply]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    in_flight: int = 0

    def models_called(self) -> list[str]:
        return [c["model"] for c in self.calls]

    def _next(self, model: str) -> Reply:
        entry = self.script.get(model, Reply())
        if isinstance(entry, list):
            return entry.pop(0) if len(entry) > 1 else entry[0]
        return entry

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        reply = self._next(kwargs["model"])
        self.in_flight += 1
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
        except asyncio.CancelledError:
            self.cancelled.append(kwargs["model"])
            raise
        finally:
            self.in_flight -= 1
        if reply.error is not None:
            raise reply.error
        text = reply.text(kwargs) if callable(reply.text) else reply.text
        if kwargs.get("stream"):
            return self._stream(text, reply)
        response = ModelResponse(
            model=kwargs["model"],
            choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            usage={
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        )
        response._hidden_params["response_cost"] = reply.cost
        return response

    async def _stream(self, text: str, reply: Reply) -> Any:
        for i in range(0, len(text), 4):
            yield ModelResponseStream(choices=[StreamingChoices(index=0, delta=Delta(content=text[i : i + 4]))])
        final = ModelResponseStream(choices=[StreamingChoices(index=0, delta=Delta(), finish_reason="stop")])
        final.usage = litellm.Usage(
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            total_tokens=reply.prompt_tokens + reply.completion_tokens,
        )
        yield final


def error(cls: type[Exception] = litellm.InternalServerError, message: str = "boom", status: int | None = None) -> Exception:
    """A LiteLLM exception as a nested call would raise it."""
    if cls is litellm.APIError:
        return cls(status_code=status or 500, message=message, llm_provider="openai", model="m")
    return cls(message=message, llm_provider="openai", model="m")
