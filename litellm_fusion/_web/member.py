"""One panel member's answer with the web: which path it takes, and running it.

``auto`` takes the provider's native web tools where it has them (table in ``native.py``), else the
client tool loop when the model can call functions, else one search up front as context ("pre-search").
A native call the provider refuses (a 400 about the tool) is retried once through the client loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litellm_fusion._core.capabilities import supports
from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._core.nested import CompleteFn, timed_call
from litellm_fusion._core.usage import CallRecord, UsageLedger
from litellm_fusion._spec.config import FusionSpec, MemberSpec
from litellm_fusion._web.loop import client_loop, presearch_call, web_note
from litellm_fusion._web.search import SearchFn
from litellm_fusion._web.tools import FetcherLike, MemberToolbox

if TYPE_CHECKING:
    from litellm_fusion._web.citations import Source
    from litellm_fusion._web.tools import ToolCallRecord

__all__ = ["WebAnswer", "member_web_mode", "answer_with_web"]


@dataclass(frozen=True, kw_only=True)
class WebAnswer:
    """A member's final response plus what the web part did."""

    response: Any
    records: tuple[CallRecord, ...]
    mode: str
    """``native``, ``client``, ``presearch``, or ``native→client`` after a refusal."""
    sources: tuple[Source, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def _plan(member: MemberSpec, spec: FusionSpec, aliases: dict[str, str]) -> Any:
    from litellm_fusion._web.native import native_plan

    plan = native_plan(member.model, max_uses=spec.web.max_tool_calls, aliases=aliases)
    # An OpenAI-compatible server at a custom api_base (vLLM, llama.cpp, a test server) has none of
    # OpenAI's hosted tools, and LiteLLM only bridges to the Responses API for OpenAI's own endpoint.
    if plan is not None and plan.provider == "openai" and member.api_base and "api.openai.com" not in member.api_base:
        return None
    return plan


def member_web_mode(member: MemberSpec, spec: FusionSpec, aliases: dict[str, str]) -> str:
    """``off``, ``native``, ``client`` or ``presearch`` for this member; a forced impossible mode is a 400."""
    mode = member.web or spec.web.mode
    if mode == "off":
        return "off"
    model = aliases.get(member.model, member.model)
    if mode in ("auto", "native") and _plan(member, spec, aliases) is not None:
        return "native"
    if mode == "native":
        raise FusionConfigError(f"web mode 'native' for '{member.model}': its provider has no native web tools; use web: auto or client")
    if mode == "client" or supports("function_calling", model):
        return "client"
    return "presearch"


async def answer_with_web(
    *,
    mode: str,
    member: MemberSpec,
    spec: FusionSpec,
    kwargs: dict[str, Any],
    complete: CompleteFn,
    ledger: UsageLedger,
    search: SearchFn | None,
    fetcher: FetcherLike | None,
    aliases: dict[str, str],
    on_tool_call: Callable[[ToolCallRecord], None] | None = None,
) -> WebAnswer:
    """Answer ``kwargs["messages"]`` with web access in ``mode`` (see :func:`member_web_mode`); each
    client-side tool call is reported to ``on_tool_call`` as it finishes."""
    from litellm_fusion._web.citations import sources_from_response
    from litellm_fusion._web.native import is_native_refusal

    toolbox = MemberToolbox(
        spec=spec.web, search=search, fetcher=fetcher, ledger=ledger, search_provider=spec.web.search.provider, on_call=on_tool_call
    )
    for message in kwargs["messages"]:
        if isinstance(message.get("content"), str):
            toolbox.remember(message["content"])

    def done(response: Any, records: list[CallRecord], used: str, notes: tuple[str, ...] = ()) -> WebAnswer:
        sources = {s.url: s for s in toolbox.sources.values()}
        for source in sources_from_response(response):
            sources.setdefault(source.url, source)
        return WebAnswer(
            response=response,
            records=tuple(records),
            mode=used,
            sources=tuple(sources.values()),
            tool_calls=tuple(toolbox.calls),
            notes=notes,
        )

    if mode == "native":
        # With aliases, a Router name stays the model (routable); providers needing a rewrite get no plan.
        plan = _plan(member, spec, aliases)
        assert plan is not None  # member_web_mode chose native only when a plan exists
        extra = dict(plan.extra)
        native_tools = extra.pop("tools", [])
        native_kwargs = {**kwargs, **extra, "model": plan.model}
        try:
            if plan.mixes_with_function_tools and not plan.has_fetch and fetcher is not None and spec.web.fetch.enabled:
                # Native search plus our guarded fetch as a function tool, in one loop.
                response, records = await client_loop(
                    complete=complete, kwargs=native_kwargs, member=member, toolbox=toolbox, ledger=ledger,
                    native_tools=native_tools, offer_search=False,
                )  # fmt: skip
                return done(response, records, "native")
            call = {**native_kwargs, "messages": [web_note(), *kwargs["messages"]], **({"tools": native_tools} if native_tools else {})}
            response, record = await timed_call(complete, call, role="panel", member=member, ledger=ledger)
            return done(response, [record], "native")
        except Exception as exc:
            if not is_native_refusal(exc) or search is None:
                raise
            refusal = f"native web tools refused ({type(exc).__name__}); retried with the client loop"
            response, records = await client_loop(complete=complete, kwargs=kwargs, member=member, toolbox=toolbox, ledger=ledger)
            return done(response, records, "native→client", (refusal,))
    if mode == "client":
        response, records = await client_loop(complete=complete, kwargs=kwargs, member=member, toolbox=toolbox, ledger=ledger)
        return done(response, records, "client")
    response, records = await presearch_call(complete=complete, kwargs=kwargs, member=member, toolbox=toolbox, ledger=ledger)
    return done(response, records, "presearch")
