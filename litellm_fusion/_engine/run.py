"""One fusion's request and its per-run state: what every stage reads and writes, and the trace is built from.

:class:`FusionRequest` is the validated input (built by the host adapter); :class:`FusionRun` is the state of
one run of it (ledger, clock, panel outcomes, letters, judge, writer), shared by the stages
(:mod:`~litellm_fusion._engine.stages`), the trace builder (:mod:`~litellm_fusion._engine.trace`) and both
call shapes (:mod:`~litellm_fusion._engine.pipeline`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from litellm_fusion._core.nested import CompleteFn
from litellm_fusion._core.usage import CallRecord, UsageLedger
from litellm_fusion._engine import prompts
from litellm_fusion._engine.invocation import focused_messages
from litellm_fusion._engine.judge import JudgeOutcome
from litellm_fusion._engine.panel import MemberOutcome
from litellm_fusion._engine.progress import CallFinished, Progress
from litellm_fusion._spec.call_kwargs import secrets_of
from litellm_fusion._spec.config import FusionSpec
from litellm_fusion._web.search import SearchFn
from litellm_fusion._web.tools import FetcherFactory

__all__ = ["FusionRequest", "FusionRun"]


@dataclass(frozen=True, kw_only=True)
class FusionRequest:
    """One validated fusion call."""

    name: str
    """The preset (or deployment) name, as in ``fusion/<name>``."""
    spec: FusionSpec
    messages: list[dict[str, Any]]
    final_params: dict[str, Any] = field(default_factory=dict)
    """Client parameters for the synthesizer only (tools, response_format, stop, n, sampling)."""
    timeout: float = 300.0
    """Seconds for the whole request."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Router ``model_name`` → the LiteLLM model behind it, for price and capability look-ups."""
    web_modes: tuple[str, ...] = ()
    """Each panel member's web path (``off`` when empty): see ``_web.member.member_web_mode``."""
    web_search: SearchFn | None = None
    """The client loop's search function, when a member may search client-side."""
    cost_estimate: float | None = None
    """The pre-flight worst-case cost, when ``max_cost`` is set."""
    depth: int = 0
    """Fusion fan-outs this request already passed through (``x-litellm-fusion-depth``); >= 1: a single call."""

    @property
    def model(self) -> str:
        """The caller-facing model name, ``fusion/<name>``, that errors carry."""
        return f"fusion/{self.name}"


@dataclass
class FusionRun:
    """Per-request state, shared by the stages and the trace."""

    request: FusionRequest
    complete: CompleteFn
    rng: random.Random
    fetcher_factory: FetcherFactory
    progress: Progress
    ledger: UsageLedger = field(default_factory=UsageLedger)
    started: float = field(default_factory=time.perf_counter)
    nonce: str = field(default_factory=prompts.new_nonce)
    panel: list[MemberOutcome] = field(default_factory=list)
    letters: dict[int, str] = field(default_factory=dict)
    judge: JudgeOutcome | None = None
    synthesizer: dict[str, Any] | None = None
    """The writer's trace entry, once a writer finished or every writer failed."""
    short_circuit: str | None = None
    """``exact``, ``vote`` or ``judge`` when the panel's agreement made later stages unnecessary."""
    agreed: str | None = None
    judge_started_ms: float | None = None
    """When the judge stage started (ms since the request started), for the trace's timeline."""
    invocation: dict[str, Any] | None = None
    """The outer decision's trace entry (``invocation.Decision.trace``)."""
    focus: str | None = None
    """The outer model's focused question for the panel."""
    secrets: tuple[str, ...] = field(init=False)
    """Every API key of the spec, resolved once per request, for redacting error messages."""

    def __post_init__(self) -> None:
        self.secrets = secrets_of(self.request.spec)
        # One zero for the events and the trace's start_ms; the ledger sees every nested call that returned.
        self.progress.started = self.ledger.origin
        self.ledger.on_record = self._report_call

    def _report_call(self, record: CallRecord) -> None:
        started_ms = record.start_ms if record.start_ms is not None else round(self.progress.now_ms() - record.latency_ms, 1)
        self.progress.emit(
            CallFinished, role=record.role, model=record.model, started_ms=started_ms,
            latency_ms=round(record.latency_ms, 1), tokens=record.total_tokens, cost=record.cost,
        )  # fmt: skip

    @property
    def spec(self) -> FusionSpec:
        """The request's validated spec."""
        return self.request.spec

    @property
    def panel_messages(self) -> list[dict[str, Any]]:
        """What the panel and the judge read: the conversation, plus the focused question when there is one."""
        return focused_messages(self.request.messages, self.focus)

    def remaining(self, stage_limit: float | None = None) -> float:
        """Seconds left of the request's deadline, at most ``stage_limit``."""
        left = max(0.001, self.request.timeout - (time.perf_counter() - self.started))
        return min(left, stage_limit) if stage_limit else left

    def answers(self) -> dict[str, str]:
        """Letter → answer text, with the sources that answer used listed under it."""
        return {letter: _with_sources(self.panel[i]) for i, letter in self.letters.items()}

    def names(self) -> dict[str, str]:
        """Letter → member name; a model listed twice in the panel is told apart as ``model#position``."""
        models = [m.model for m in self.spec.panel]
        return {letter: models[i] if models.count(models[i]) == 1 else f"{models[i]}#{i + 1}" for i, letter in self.letters.items()}

    def stage(self) -> str:
        """The stage the run has reached: ``panel``, ``judge`` or ``synthesizer``."""
        if not self.panel:
            return "panel"
        return "judge" if self.judge is None else "synthesizer"


def _with_sources(outcome: MemberOutcome) -> str:
    if not outcome.sources:
        return outcome.content or ""
    listed = "\n".join(f"- {s.title or s.url} <{s.url}>" for s in outcome.sources[:20])
    return f"{outcome.content or ''}\n\n[Web sources this answer used]\n{listed}"
