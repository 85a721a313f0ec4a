"""Whether a request runs the panel: ``invocation: always | auto | required``, the fusion tool, the depth guard.

With ``auto`` the synthesizer model first answers the client's conversation with one extra function tool,
:data:`FUSION_TOOL_NAME` ("consult the panel", with an optional focused question). A direct answer (or a call
of the client's own tools) is the response: one call's cost and latency. A call of the fusion tool runs the
panel, the judge and the synthesis as ``always`` does. ``required`` forces the tool.

Across proxies, every nested call carries :data:`DEPTH_HEADER` (set by us, never forwarded from a client): a
fusion request that arrives with depth >= 1 answers as a single call of its synthesizer model instead of
fanning out again, so proxy A -> proxy B -> fusion cannot loop or multiply cost.

OpenRouter's server-tool shape, ``tools: [{"type": "openrouter:fusion", "parameters": {...}}]``, is read here
too: it means ``invocation: auto`` (``required`` with ``tool_choice: "required"``) plus the same overrides as
OpenRouter's ``plugins`` shape.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._core.nested import CallError, CompleteFn, timed_call
from litellm_fusion._core.usage import CallRecord, UsageLedger
from litellm_fusion._engine.synthesis import stream_synthesis
from litellm_fusion._spec.call_kwargs import member_kwargs
from litellm_fusion._spec.config import FusionSpec, MemberSpec, map_openrouter_fields

__all__ = [
    "FUSION_TOOL_NAME",
    "DEPTH_HEADER",
    "SERVER_TOOL_TYPE",
    "Decision",
    "ServerTool",
    "fusion_tool",
    "effective_mode",
    "incoming_depth",
    "with_depth",
    "check_client_tools",
    "split_server_tool",
    "decide",
    "stream_decision",
    "focused_messages",
    "always_trace",
]

FUSION_TOOL_NAME = "litellm_fusion_consult_panel"
"""The function tool offered to the outer model; a client tool of this name is refused (400)."""

DEPTH_HEADER = "x-litellm-fusion-depth"
"""How many fusion fan-outs a request has already passed through (sent on every nested call)."""

SERVER_TOOL_TYPE = "openrouter:fusion"

_SERVER_TOOL_PARAMETERS = frozenset({"analysis_models", "model", "temperature", "max_completion_tokens", "max_tool_calls"})

_OPENERS = ("<tool_call>", "```json", "```")
_CALL_HEAD = '{"name":"' + FUSION_TOOL_NAME + '"'


def _may_be_text_call(text: str) -> bool:
    """Whether streamed text so far could still be a fusion tool call written as text (then it is held back)."""
    squeezed = re.sub(r"\s+", "", text)
    for opener in _OPENERS:
        if opener.startswith(squeezed):
            return True
        if squeezed.startswith(opener):
            squeezed = squeezed[len(opener) :]
            break
    return _CALL_HEAD.startswith(squeezed) or squeezed.startswith(_CALL_HEAD)


def fusion_tool() -> dict[str, Any]:
    """The OpenAI function tool that means "consult the panel"."""
    return {
        "type": "function",
        "function": {
            "name": FUSION_TOOL_NAME,
            "description": (
                "Consult a panel of independent expert models, compare their answers and write the answer from them. "
                "Slow and costly: call it only for hard, high-stakes or multi-step questions (research, analysis, "
                "multi-step calculations, decisions) where one answer may well be wrong. Answer simple questions directly."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "question": {
                        "type": "string",
                        "description": "The question the panel should answer, stated completely (optional; default: the conversation).",
                    }
                },
                "required": [],
            },
        },
    }


def effective_mode(spec: FusionSpec, depth: int) -> str:
    """``always``, ``auto`` or ``required`` as configured, or ``single`` for a request already inside a fusion."""
    return "single" if depth >= 1 else spec.invocation


def always_trace(depth: int) -> dict[str, Any]:
    """The trace's ``invocation`` entry when the panel runs without an outer decision."""
    return {"mode": "always", "invoked": True, "reason": "invocation: always", "question": None, "outer": None, "depth": depth}


# ----- the depth guard ---------------------------------------------------------------------------------------


def incoming_depth(litellm_params: dict[str, Any] | None) -> int:
    """The :data:`DEPTH_HEADER` of the proxy request being served (0 outside the proxy or without it).

    The proxy hands the incoming headers (credentials redacted) to the handler in
    ``litellm_params["proxy_server_request"]["headers"]``.
    """
    request = (litellm_params or {}).get("proxy_server_request") or {}
    headers = request.get("headers") if isinstance(request, dict) else None
    if not isinstance(headers, dict):
        return 0
    value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == DEPTH_HEADER), None)
    if value is None:
        return 0
    try:
        depth = int(str(value).strip())
    except ValueError:
        depth = -1
    if depth < 0:
        raise FusionConfigError(f"header {DEPTH_HEADER}: must be a non-negative integer, got {value!r}; remove it or send 0")
    return depth


def with_depth(complete: CompleteFn, depth: int) -> CompleteFn:
    """``complete`` with :data:`DEPTH_HEADER` = ``depth`` on every call (merged into its ``extra_headers``)."""

    async def call(**kwargs: Any) -> Any:
        headers = {**(kwargs.get("extra_headers") or {}), DEPTH_HEADER: str(depth)}
        return await complete(**{**kwargs, "extra_headers": headers})

    return call


# ----- request validation ------------------------------------------------------------------------------------


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        name = tool["function"].get("name")
        return name if isinstance(name, str) else None
    return None


def check_client_tools(tools: Any) -> None:
    """A client tool may not use the fusion tool's reserved name (the outer call could not tell them apart)."""
    for i, tool in enumerate(tools or [] if isinstance(tools, list) else []):
        if _tool_name(tool) == FUSION_TOOL_NAME:
            raise FusionConfigError(f"tools[{i}].function.name: '{FUSION_TOOL_NAME}' is reserved by litellm-fusion; rename your tool")


@dataclass(frozen=True)
class ServerTool:
    """What an ``openrouter:fusion`` entry in ``tools`` asks for."""

    overrides: dict[str, Any]
    """Spec overrides (``invocation`` and the ``plugins``-style fields); empty when there is no such tool."""
    tools: list[Any] | None
    """The client's other tools (None when none are left)."""
    tool_choice: Any
    """The client's ``tool_choice``, None when it only applied to the server tool."""


def split_server_tool(tools: Any, tool_choice: Any) -> ServerTool:
    """Take ``{"type": "openrouter:fusion", "parameters": {...}}`` out of ``tools``; 400 on unknown parameters."""
    if not isinstance(tools, list):
        return ServerTool({}, tools, tool_choice)
    found = [(i, t) for i, t in enumerate(tools) if isinstance(t, dict) and t.get("type") == SERVER_TOOL_TYPE]
    if not found:
        return ServerTool({}, tools, tool_choice)
    if len(found) > 1:
        raise FusionConfigError(f"tools: at most one '{SERVER_TOOL_TYPE}' tool per request, got {len(found)}")
    index, tool = found[0]
    unknown = set(tool) - {"type", "parameters"}
    if unknown:
        raise FusionConfigError(f"tools[{index}].{sorted(unknown)[0]}: unknown field; a '{SERVER_TOOL_TYPE}' tool has only `parameters`")
    parameters = tool.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise FusionConfigError(f"tools[{index}].parameters: must be an object like {{'analysis_models': [...], 'model': '...'}}")
    for key in parameters:
        if key not in _SERVER_TOOL_PARAMETERS:
            raise FusionConfigError(
                f"tools[{index}].parameters.{key}: unknown parameter; allowed: {', '.join(sorted(_SERVER_TOOL_PARAMETERS))}"
            )
    rest = [t for i, t in enumerate(tools) if i != index]
    # OpenRouter: `tool_choice: "required"` with the fusion tool forces it; with other tools too it means "some tool".
    forced = tool_choice == "required" and not rest
    overrides = {**map_openrouter_fields(parameters), "invocation": "required" if forced else "auto"}
    return ServerTool(overrides, rest or None, None if forced or not rest else tool_choice)


# ----- the outer decision ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the outer call decided."""

    mode: str
    invoked: bool
    """True when the panel runs."""
    reason: str
    question: str | None = None
    """The focused question the outer model gave the panel, if any."""
    response: Any = None
    """The outer call's response, when it is the answer (not invoked, non-streaming)."""
    record: CallRecord | None = None
    error: CallError | None = None
    model: str | None = None
    depth: int = 0

    def trace(self) -> dict[str, Any]:
        """The trace's ``invocation`` entry."""
        record = self.record
        outer = {
            "model": self.model,
            "status": "error" if self.error else "ok",
            "latency_ms": round(record.latency_ms, 1) if record else None,
            "usage": record.usage.tokens_dict() if record else None,
            "cost": record.cost if record else None,
            "error": self.error.as_dict() if self.error else None,
            "start_ms": record.start_ms if record else None,
        }
        return {
            "mode": self.mode,
            "invoked": self.invoked,
            "reason": self.reason,
            "question": self.question,
            "outer": outer,
            "depth": self.depth,
        }


def _outer_params(mode: str, final_params: dict[str, Any]) -> dict[str, Any]:
    """The client's final-answer parameters plus the fusion tool (none at depth >= 1)."""
    params = dict(final_params)
    if mode == "single":
        return params
    params["tools"] = [*(final_params.get("tools") or []), fusion_tool()]
    if mode == "required":
        params["tool_choice"] = {"type": "function", "function": {"name": FUSION_TOOL_NAME}}
    else:
        params.setdefault("tool_choice", "auto")
    return params


def _question_from(arguments: Any) -> str | None:
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        return None
    question = parsed.get("question") if isinstance(parsed, dict) else None
    return question.strip() if isinstance(question, str) and question.strip() else None


def _text_tool_call(content: str | None) -> tuple[bool, str | None]:
    """(called, question) for a reply that opens with a fusion tool call written as text:
    ``{"name": ..., "arguments": ...}``, bare, in a code fence or in ``<tool_call>`` tags.

    Why: servers that render tools into a chat template but do not parse calls back (llama-cpp-python with a
    GGUF's own template, Qwen/Hermes style) return the call as content; the name is ours, so it is unambiguous.
    Text after the call (a small model sometimes goes on to invent the tool's result) is dropped, as tool-call
    parsers do.
    """
    text = (content or "").lstrip()
    for opener in _OPENERS:
        if text.startswith(opener):
            text = text[len(opener) :].lstrip()
            break
    try:
        call, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return False, None
    if not isinstance(call, dict) or call.get("name") != FUSION_TOOL_NAME:
        return False, None
    return True, _question_from(call.get("arguments") or call.get("parameters") or {})


def _read_choice(response: Any) -> tuple[bool, str | None, bool]:
    """(fusion tool called, its question, client tools called) of a non-streaming outer response."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        return False, None, False
    message = choices[0].message
    calls = getattr(message, "tool_calls", None) or []
    ours = [c for c in calls if getattr(c.function, "name", None) == FUSION_TOOL_NAME]
    if ours:
        return True, _question_from(ours[0].function.arguments), False
    called, question = _text_tool_call(getattr(message, "content", None))
    return called, question, bool(calls)


def _verdict(mode: str, called: bool, client_tools: bool) -> tuple[bool, str]:
    if mode == "single":
        return False, f"the request arrived from another fusion ({DEPTH_HEADER} >= 1): answered as a single call, no second fan-out"
    if called:
        return True, "the outer model called the panel tool"
    if mode == "required":
        return True, "invocation: required (the outer model did not call the tool; the panel runs anyway)"
    if client_tools:
        return False, "the outer model called the client's tools"
    return False, "the outer model answered directly"


def _failed(mode: str, writer: MemberSpec, exc: BaseException, secrets: tuple[str, ...], depth: int) -> Decision:
    """An outer call that failed: the panel runs as with ``always``; a single call (depth >= 1) has no fallback."""
    error = CallError.from_exception(exc, secrets=secrets)
    if mode == "single":
        return Decision(mode, False, f"the single call failed ({error.type})", error=error, model=writer.model, depth=depth)
    return Decision(mode, True, f"the outer call failed ({error.type}); the panel runs", error=error, model=writer.model, depth=depth)


async def decide(
    *,
    mode: str,
    writer: MemberSpec,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    final_params: dict[str, Any],
    complete: CompleteFn,
    ledger: UsageLedger,
    secrets: tuple[str, ...] = (),
    depth: int = 0,
) -> Decision:
    """Make the outer call (non-streaming) and say whether the panel runs; its deadline is the request's."""
    kwargs = member_kwargs(writer, spec, messages, extra=_outer_params(mode, final_params))
    try:
        response, record = await timed_call(complete, kwargs, role="outer", member=writer, ledger=ledger)
    except Exception as exc:  # the panel is the fallback, and the trace says why
        return _failed(mode, writer, exc, secrets, depth)
    called, question, client_tools = _read_choice(response)
    invoked, reason = _verdict(mode, called, client_tools)
    return Decision(mode, invoked, reason, question, None if invoked else response, record, model=writer.model, depth=depth)


def _chunk(content: str | None, tool_calls: list[Any] | None, finish_reason: str | None) -> ModelResponseStream:
    delta = Delta(content=content or None, tool_calls=tool_calls or None)
    return ModelResponseStream(choices=[StreamingChoices(index=0, delta=delta, finish_reason=finish_reason)])


async def stream_decision(
    *,
    mode: str,
    writer: MemberSpec,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    final_params: dict[str, Any],
    complete: CompleteFn,
    ledger: UsageLedger,
    price_model: str | None = None,
    secrets: tuple[str, ...] = (),
    depth: int = 0,
) -> AsyncIterator[Any]:
    """Stream the outer call: the client's deltas go out as they arrive, the fusion tool's never; the last
    item is the :class:`Decision`.

    Text that may be a fusion tool call written as content (``<tool_call>...``) is held until it is known not
    to be one. A failure before the first forwarded chunk falls back to the panel; after it, it propagates.
    """
    ours: set[int] = set()
    arguments = ""
    held = ""  # text that could still be the start of "<tool_call>"
    holding = mode != "single"
    sent = client_tools = False
    # closed here, not left to the async-generator finalizer, when our consumer closes us early
    async with contextlib.aclosing(
        stream_synthesis(
            writer=writer,
            spec=spec,
            messages=messages,
            final_params=_outer_params(mode, final_params),
            complete=complete,
            ledger=ledger,
            price_model=price_model,
            role="outer",
        )
    ) as chunks:
        try:
            async for chunk in chunks:
                for choice in (getattr(chunk, "choices", None) or [])[:1]:
                    delta = choice.delta
                    text = getattr(delta, "content", None) or ""
                    others = []
                    for call in getattr(delta, "tool_calls", None) or []:
                        function = getattr(call, "function", None)
                        if getattr(function, "name", None) == FUSION_TOOL_NAME:
                            ours.add(call.index)
                        if call.index in ours:
                            arguments += getattr(function, "arguments", None) or ""
                        else:
                            others.append(call)
                    client_tools = client_tools or bool(others)
                    if holding and text:
                        held += text
                        text = ""
                        if not _may_be_text_call(held):
                            text, held, holding = held, "", False
                    finish = None if ours or holding else choice.finish_reason
                    if text or others or finish:
                        sent = True
                        yield _chunk(text, others, finish)
        except Exception as exc:
            if sent:
                raise
            yield _failed(mode, writer, exc, secrets, depth)
            return
    record = next((r for r in reversed(ledger.records) if r.role == "outer"), None)
    question = _question_from(arguments) if ours else None
    called = bool(ours)
    if held:
        called, question = _text_tool_call(held)
        if not called:  # it was text after all: the client gets it now
            yield _chunk(held, None, "stop")
    invoked, reason = _verdict(mode, called, client_tools)
    yield Decision(mode, invoked, reason, question, None, record, model=writer.model, depth=depth)


def focused_messages(messages: list[dict[str, Any]], question: str | None) -> list[dict[str, Any]]:
    """The conversation the panel and the judge see: the client's, plus the outer model's focused question."""
    if not question:
        return messages
    return [*messages, {"role": "user", "content": f"The question to answer now, stated on its own:\n{question}"}]
