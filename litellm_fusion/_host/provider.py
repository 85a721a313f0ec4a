"""The thin LiteLLM adapter: ``FusionLLM``, the ``fusion_llm`` instance the proxy loads, and ``register()``.

All the work happens in :mod:`litellm_fusion._engine.pipeline`; this module only translates LiteLLM's handler
arguments into a :class:`~litellm_fusion._engine.run.FusionRequest` and the result back into the
``model_response`` LiteLLM handed in (never a nested response object, whose stamped cost LiteLLM would reuse).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import Choices, Delta, GenericStreamingChunk, Message, ModelResponse, ModelResponseStream, StreamingChoices

from litellm_fusion._core.errors import FusionConfigError, FusionError
from litellm_fusion._core.nested import CompleteFn
from litellm_fusion._engine.invocation import with_depth
from litellm_fusion._engine.pipeline import FusionDone, FusionRequest, FusionResult, run_fusion, stream_fusion
from litellm_fusion._engine.progress import ProgressEvent, current_listener
from litellm_fusion._engine.progress_text import progress_text
from litellm_fusion._host.clients import exposed_trace
from litellm_fusion._host.request import build_request
from litellm_fusion._host.routing import proxy_router, routed_complete
from litellm_fusion._host.sync import iterate_sync, run_sync
from litellm_fusion._host.tenancy import SpendGuard, admit, charge_failure, record_spend
from litellm_fusion._spec.config import PresetStore
from litellm_fusion._web.tools import FetcherFactory

__all__ = ["FusionLLM", "fusion_llm", "register"]

# Set while a fusion call runs: a nested call that reaches fusion again (a proxy model_name that is
# itself a fusion deployment, say) is refused instead of fanning out recursively.
_INSIDE_FUSION: contextvars.ContextVar[bool] = contextvars.ContextVar("litellm_fusion_inside", default=False)


def _copy_choices(source: Any) -> list[Choices]:
    choices = []
    for choice in source.choices:
        message = choice.message
        choices.append(
            Choices(
                index=choice.index,
                finish_reason=choice.finish_reason,
                message=Message(
                    role="assistant",
                    content=message.content,
                    tool_calls=getattr(message, "tool_calls", None),
                    function_call=getattr(message, "function_call", None),
                ),
            )
        )
    return choices


def fill_response(model_response: ModelResponse, result: FusionResult, model: str, expose: str = "full") -> ModelResponse:
    """Copy the synthesizer's choices into LiteLLM's response and stamp summed usage, cost and trace.

    ``_hidden_params["fusion"]`` always holds the full trace (server-side callbacks and SDK callers);
    the top-level ``fusion`` field, which the proxy returns to its client, follows ``expose``.
    """
    model_response.choices = _copy_choices(result.response)
    model_response.model = model
    usage = result.ledger.to_usage()
    model_response.usage = usage
    # usage.cost is what LiteLLM >= 1.109 bills; older versions read only the stamped hidden param.
    model_response._hidden_params["response_cost"] = usage.cost
    model_response._hidden_params["fusion"] = result.trace
    visible = exposed_trace(result.trace, expose)
    if visible is not None:
        model_response.fusion = visible
    return model_response


def _generic_chunks(chunk: Any) -> list[GenericStreamingChunk]:
    """One synthesizer chunk as LiteLLM's generic chunks (one tool-call delta per chunk, as LiteLLM wants)."""
    out: list[GenericStreamingChunk] = []
    for choice in getattr(chunk, "choices", None) or []:
        delta = choice.delta
        text = getattr(delta, "content", None) or ""
        tool_calls = getattr(delta, "tool_calls", None) or []
        finish = choice.finish_reason or ""
        if text or not tool_calls:
            out.append(GenericStreamingChunk(text=text, is_finished=False, finish_reason=finish, usage=None, index=0, tool_use=None))
        for call in tool_calls:
            data = call.model_dump() if hasattr(call, "model_dump") else dict(call)
            out.append(GenericStreamingChunk(text="", is_finished=False, finish_reason=finish, usage=None, index=0, tool_use=data))
        break  # LiteLLM ignores the choice index of generic chunks, so only choice 0 streams
    return out


def _reasoning_chunk(text: str, stream_id: str, model: str) -> ModelResponseStream:
    """A progress line as a ``delta.reasoning_content`` chunk. LiteLLM passes a custom provider's
    ``ModelResponseStream`` through unchanged (a generic chunk has no reasoning field); the shared ``id``
    becomes the whole stream's id, since LiteLLM adopts the id of the last chunk that had one."""
    delta = Delta(role="assistant", content=None, reasoning_content=text)
    return ModelResponseStream(id=stream_id, model=model, choices=[StreamingChoices(index=0, delta=delta, finish_reason=None)])


async def generic_stream(
    events: AsyncIterator[Any], expose: str = "full", progress: str = "none", model: str = "fusion"
) -> AsyncIterator[GenericStreamingChunk | ModelResponseStream]:
    """Forward content and tool-call deltas as they arrive; the last one carries the summed usage with
    cost and, in ``provider_specific_fields["fusion"]``, the trace. With ``progress="reasoning"`` (and a
    trace the caller may see at all), progress events before the first content become reasoning chunks.

    The first chunk goes out at once (time to first token); after it, one chunk is held back so that
    usage and trace ride on the last chunk with content. (A stream of a single chunk ends with an empty
    chunk carrying them, which LiteLLM accepts for generic chunks.) LiteLLM then emits the finish reason
    on a trailing empty chunk of its own, and the usage again on a ``choices: []`` chunk when
    ``include_usage`` is asked.
    """
    held: GenericStreamingChunk | None = None
    sent_first = False
    finish_reason = "stop"
    show_progress = progress == "reasoning" and expose != "none"
    stream_id = f"chatcmpl-fusion-{uuid.uuid4().hex}"
    async for event in events:
        if isinstance(event, ProgressEvent):
            # Never after content: the Messages API would open a second thinking block after the text.
            text = progress_text(event) if show_progress and not sent_first else None
            if text:
                yield _reasoning_chunk(text, stream_id, model)
            continue
        if isinstance(event, FusionDone):
            last = held or GenericStreamingChunk(text="", is_finished=False, finish_reason="", usage=None, index=0, tool_use=None)
            last.update(
                is_finished=True,
                finish_reason=finish_reason,
                usage=event.ledger.usage_dict(),
            )
            visible = exposed_trace(event.trace, expose)
            if visible is not None:
                last["provider_specific_fields"] = {"fusion": visible}
            yield last
            return
        for chunk in _generic_chunks(event):
            if chunk["finish_reason"]:
                finish_reason = chunk["finish_reason"]
                chunk["finish_reason"] = ""
            if not chunk["text"] and chunk.get("tool_use") is None:
                continue
            if not sent_first:
                sent_first = True
                yield chunk
                continue
            if held is not None:
                yield held
            held = chunk


async def _spend_recorded(events: AsyncIterator[Any], litellm_params: dict[str, Any] | None) -> AsyncIterator[Any]:
    async for event in events:
        if isinstance(event, FusionDone):
            record_spend(litellm_params, event.ledger)
        yield event


class FusionLLM(CustomLLM):
    """LiteLLM custom provider for ``fusion/<preset>`` models.

    Args:
        presets: the preset store; defaults to the built-ins plus ``$LITELLM_FUSION_PRESETS``.
        complete: the nested-call seam (default ``litellm.acompletion``).
        router: a ``litellm.Router`` whose ``model_name``s members may use (the proxy's own is found by itself).
        fetcher_factory: builds the web fetcher from the fetch limits (default: public addresses only).
    """

    def __init__(
        self,
        presets: PresetStore | None = None,
        complete: CompleteFn | None = None,
        router: Any | None = None,
        fetcher_factory: FetcherFactory | None = None,
    ) -> None:
        super().__init__()
        self.presets = presets or PresetStore()
        self.complete = complete
        self.router = router
        self.fetcher_factory = fetcher_factory

    async def _prepare(
        self, model: str, messages: Any, optional_params: dict[str, Any], litellm_params: dict[str, Any] | None, timeout: Any
    ) -> tuple[FusionRequest, CompleteFn, SpendGuard]:
        if _INSIDE_FUSION.get():
            raise FusionConfigError(f"fusion/{model} was called from inside a fusion call; fusion models cannot be nested (recursion)")
        in_proxy = proxy_router()
        router = in_proxy or self.router
        from_proxy_client = in_proxy is not None and bool((litellm_params or {}).get("proxy_server_request"))
        request = build_request(
            model=model,
            messages=messages,
            optional_params=optional_params or {},
            litellm_params=litellm_params,
            timeout=timeout,
            presets=self.presets,
            router=router,
            from_proxy_client=from_proxy_client,
        )
        # The caller's key: model access and budgets, before any upstream call (tenancy.py).
        guard = await admit(
            request,
            optional_params=optional_params or {},
            litellm_params=litellm_params,
            router=router,
            from_proxy_client=from_proxy_client,
        )
        # Every nested call says how deep it is, so a fusion on another proxy does not fan out again.
        return request, guard.wrap(with_depth(routed_complete(router, self.complete), request.depth + 1)), guard

    async def acompletion(
        self,
        *,
        model: str,
        messages: Any,
        model_response: ModelResponse,
        optional_params: dict[str, Any],
        litellm_params: dict[str, Any] | None = None,
        timeout: Any = None,
        logging_obj: Any = None,
        **_: Any,
    ) -> ModelResponse:  # type: ignore[override]
        """Run a fusion call and fill ``model_response`` with the answer, summed usage and cost, and trace."""
        request, complete, guard = await self._prepare(model, messages, optional_params, litellm_params, timeout)
        token = _INSIDE_FUSION.set(True)
        try:
            result = await run_fusion(request, complete=complete, fetcher_factory=self.fetcher_factory, on_progress=current_listener())
        except FusionError as exc:
            charge_failure(logging_obj, exc.trace)
            guard.check(exc.trace, cause=exc)
            raise
        finally:
            _INSIDE_FUSION.reset(token)
        try:
            guard.check(result.trace)
        except FusionError:
            # Stopped mid-run yet answered (a short-circuit after a stopped member): still charged what it spent.
            charge_failure(logging_obj, result.trace)
            raise
        record_spend(litellm_params, result.ledger)
        return fill_response(model_response, result, request.model, request.spec.expose)

    async def astreaming(
        self,
        *,
        model: str,
        messages: Any,
        optional_params: dict[str, Any],
        litellm_params: dict[str, Any] | None = None,
        timeout: Any = None,
        logging_obj: Any = None,
        **_: Any,
    ) -> AsyncIterator[GenericStreamingChunk | ModelResponseStream]:  # type: ignore[override]
        """Stream the synthesizer's answer, after the panel's and the judge's progress as reasoning chunks
        (spec ``progress``); the panel and the judge finish before the first content chunk."""
        request, complete, guard = await self._prepare(model, messages, optional_params, litellm_params, timeout)
        async with contextlib.AsyncExitStack() as stack:
            # Each layer is closed explicitly, outermost first, when LiteLLM closes us (the caller stopped
            # reading), on cancellation and on error: an async generator that is closed does not close the one
            # it iterates, which would wait for the GC while holding the synthesizer's connection open.
            fusion = await stack.enter_async_context(
                contextlib.aclosing(stream_fusion(request, complete=complete, fetcher_factory=self.fetcher_factory, on_progress=current_listener()))
            )
            spent = await stack.enter_async_context(contextlib.aclosing(_spend_recorded(fusion, litellm_params)))
            bounded = await stack.enter_async_context(contextlib.aclosing(guard.bounded(spent)))
            events = await stack.enter_async_context(
                contextlib.aclosing(generic_stream(bounded, request.spec.expose, request.spec.progress, request.model))
            )
            while True:
                # Set and reset around each step: a generator's context must not leak into the consumer's.
                token = _INSIDE_FUSION.set(True)
                try:
                    chunk = await anext(events)
                except StopAsyncIteration:
                    return
                except FusionError as exc:
                    charge_failure(logging_obj, exc.trace)
                    guard.check(exc.trace, cause=exc)
                    raise
                finally:
                    _INSIDE_FUSION.reset(token)
                yield chunk

    def completion(self, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        """Sync twin of :meth:`acompletion`, run on the shared event loop thread (:mod:`~litellm_fusion._host.sync`)."""
        return run_sync(self.acompletion(**kwargs))

    def streaming(self, **kwargs: Any) -> Iterator[GenericStreamingChunk | ModelResponseStream]:  # type: ignore[override]
        """Sync twin of :meth:`astreaming`."""
        return iterate_sync(self.astreaming(**kwargs))


fusion_llm = FusionLLM()
"""The instance LiteLLM calls; the proxy loads it as ``litellm_fusion.fusion_llm``."""


def register(
    *,
    presets: dict[str, Any] | str | os.PathLike[str] | None = None,
    router: Any | None = None,
    provider: str = "fusion",
) -> FusionLLM:
    """Make ``fusion/<preset>`` models available to LiteLLM (idempotent) and return the handler.

    Args:
        presets: extra presets, as a dict of specs or a YAML file path; validated now.
        router: a ``litellm.Router``; members named after its ``model_name``s are called through it.
        provider: the model prefix (default ``fusion``).
    """
    if presets is not None:
        fusion_llm.presets.add(presets)
    if router is not None:
        fusion_llm.router = router
    entries = [item for item in litellm.custom_provider_map if item.get("provider") != provider]
    litellm.custom_provider_map = [*entries, {"provider": provider, "custom_handler": fusion_llm}]
    return fusion_llm
