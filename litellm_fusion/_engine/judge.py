"""The judge: reads the anonymised answers and returns a structured analysis, or a typed failure.

The judge never sinks a request: if its call fails or its JSON is unusable after one repair attempt, the
pipeline synthesizes from the raw answers and the trace says ``judge_failed`` with one of
``not_valid_json``, ``schema_mismatch``, ``upstream_error``, ``empty``, ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import litellm
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from litellm_fusion._core.capabilities import supports
from litellm_fusion._core.nested import CallError, CompleteFn, timed_call
from litellm_fusion._core.usage import CallRecord, UsageLedger
from litellm_fusion._engine import prompts
from litellm_fusion._engine.vote import Vote, count_vote
from litellm_fusion._spec.call_kwargs import member_kwargs
from litellm_fusion._spec.config import FusionSpec

__all__ = ["Analysis", "JudgeOutcome", "analyse", "parse_analysis", "analysis_schema", "ANALYSIS_SCHEMA"]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Stance(_Loose):
    """One answer's position on a contested point."""

    model: str = Field(description="Answer letter (in the trace: the real model name).")
    stance: str = Field(description="What that answer claims, and whether it holds up.")


class Contradiction(_Loose):
    """A point the answers disagree on."""

    topic: str = Field(description="The contested point.")
    stances: list[Stance] = Field(description="Each answer's position.")


class PartialCoverage(_Loose):
    """A point only some answers made."""

    models: list[str] = Field(description="The answers that made it.")
    point: str = Field(description="The point.")


class UniqueInsight(_Loose):
    """A point exactly one answer made."""

    model: str = Field(description="The answer that made it.")
    insight: str = Field(description="The point.")


class AnswerCheck(_Loose):
    """The judge's record of one answer (``aggregation: vote``): its final claim and whether it holds."""

    answer: str = Field(description="Answer letter (in the trace: the real model name).")
    final: str = Field("", description="The answer's final claim as it states it (closed-form: the value).")
    verdict: str = Field("unsure", description="correct | wrong | unsure: whether its steps hold up.")
    check: str = Field("", description="The step checked, or the first wrong one.")

    @field_validator("final", "verdict", "check", mode="before")
    @classmethod
    def _scalar_to_text(cls, value: Any) -> Any:
        # Small models write 57.24 (a number) or null where a string was asked for.
        return "" if value is None else str(value) if isinstance(value, (int, float)) else value


class Analysis(_Loose):
    """The judge's structured analysis of the panel's answers."""

    answers: list[AnswerCheck] = Field(default_factory=list, description="Per answer: final claim and check (vote only).")
    consensus: list[str] = Field(description="Points the answers agree on and that hold up.")
    contradictions: list[Contradiction] = Field(description="Points of disagreement.")
    partial_coverage: list[PartialCoverage] = Field(description="Points only some answers covered.")
    unique_insights: list[UniqueInsight] = Field(description="Points only one answer made.")
    blind_spots: list[str] = Field(description="What every answer missed.")

    @field_validator("consensus", "blind_spots", mode="before")
    @classmethod
    def _string_to_list(cls, value: Any) -> Any:
        # Small models often write one string where a list of strings was asked for.
        return [value] if isinstance(value, str) and value.strip() else ([] if value == "" else value)


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(schema), "properties": schema}


_STR = {"type": "string"}
_ANSWER_CHECKS = {
    "type": "array",
    "items": _strict({"answer": _STR, "final": _STR, "verdict": {"type": "string", "enum": ["correct", "wrong", "unsure"]}, "check": _STR}),
}
ANALYSIS_SCHEMA: dict[str, Any] = _strict(
    {
        "consensus": {"type": "array", "items": _STR},
        "contradictions": {
            "type": "array",
            "items": _strict({"topic": _STR, "stances": {"type": "array", "items": _strict({"model": _STR, "stance": _STR})}}),
        },
        "partial_coverage": {"type": "array", "items": _strict({"models": {"type": "array", "items": _STR}, "point": _STR})},
        "unique_insights": {"type": "array", "items": _strict({"model": _STR, "insight": _STR})},
        "blind_spots": {"type": "array", "items": _STR},
    }
)
"""JSON schema sent as ``response_format`` to judges that support structured output (``aggregation: off``)."""


def analysis_schema(*, vote: bool) -> dict[str, Any]:
    """The analysis schema; with ``vote``, ``answers`` comes first, so a grammar-constrained judge checks each
    answer before it writes the rest."""
    if not vote:
        return ANALYSIS_SCHEMA
    return _strict({"answers": _ANSWER_CHECKS, **ANALYSIS_SCHEMA["properties"]})


def _response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    if mode == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "fusion_analysis", "schema": schema, "strict": True}}}
    if mode == "json_object":
        # llama.cpp-style servers refuse json_schema but constrain output with a schema under json_object.
        return {"response_format": {"type": "json_object", "schema": schema}}
    return {}


def output_modes(requested: str, supports_schema: bool) -> list[str]:
    """The structured-output modes to try in order; each refused one (:func:`refused_response_format`) falls through to the next."""
    chain = ["json_schema", "json_object", "prompt"]
    if requested == "auto":
        return chain if supports_schema else chain[1:]
    return chain[chain.index(requested) :]


def refused_response_format(exc: Exception) -> bool:
    """Whether a failed judge call means "not this ``response_format``": a 400 or a 422, or any error whose
    message names ``response_format`` (llama-cpp-python's server reports its request validation errors,
    e.g. ``json_schema`` not being an allowed type, as 500s)."""
    if isinstance(exc, (litellm.BadRequestError, litellm.UnprocessableEntityError)):
        return True
    return isinstance(exc, litellm.APIError | litellm.InternalServerError) and "response_format" in str(exc)


class AnalysisParseError(ValueError):
    """The judge's text is not a usable analysis; ``reason`` is ``not_valid_json`` or ``schema_mismatch``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _json_candidate(text: str) -> str:
    text = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", text.strip())
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


def parse_analysis(text: str) -> Analysis:
    """Parse a judge reply tolerantly: code fences, prose around the object, raw control characters."""
    try:
        data = json.loads(_json_candidate(text), strict=False)
    except json.JSONDecodeError as exc:
        raise AnalysisParseError("not_valid_json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AnalysisParseError("schema_mismatch", f"expected a JSON object, got {type(data).__name__}")
    try:
        return Analysis.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise AnalysisParseError("schema_mismatch", f"wrong shape: {problems}") from None


@dataclass(frozen=True, kw_only=True)
class JudgeOutcome:
    """What the judge produced: an analysis (letters mapped to model names), or why not."""

    analysis: dict[str, Any] | None
    """For the trace: letters replaced with model names; None when the judge failed."""
    lettered: dict[str, Any] | None
    """For the synthesizer: the analysis as the judge wrote it, answers named by letter."""
    failed_reason: str | None
    error: CallError | None
    records: tuple[CallRecord, ...]
    structured_output: str
    """How the analysis was asked for: ``json_schema``, ``json_object`` or ``prompt`` (after any refusals)."""
    aggregation: str = "off"
    """The aggregation mechanism that ran: ``vote`` or ``off`` (the spec's ``aggregation``)."""
    vote: Vote | None = None
    """With ``aggregation: vote``: the counted vote (counted from the answers even when the judge failed)."""

    def vote_trace(self, names: dict[str, str]) -> dict[str, Any]:
        """What the trace shows of the aggregation: the mechanism, and the vote with model names."""
        return {"mechanism": "off"} if self.vote is None else self.vote.as_dict(names)


def _unletter(analysis: Analysis, names: dict[str, str]) -> dict[str, Any]:
    def name(ref: str) -> str:
        return names.get(prompts.answer_letter(ref), ref)

    data = analysis.model_dump()
    for item in data["contradictions"]:
        for stance in item["stances"]:
            stance["model"] = name(stance["model"])
    for item in data["partial_coverage"]:
        item["models"] = [name(ref) for ref in item["models"]]
    for item in data["unique_insights"]:
        item["model"] = name(item["model"])
    for item in data["answers"]:
        item["answer"] = name(item["answer"])
    if not analysis.answers:
        del data["answers"]  # aggregation: off asks for no per-answer checks; keep its analysis as it was
    return data



async def analyse(
    *,
    spec: FusionSpec,
    messages: list[dict[str, Any]],
    answers: dict[str, str],
    names: dict[str, str],
    nonce: str,
    complete: CompleteFn,
    ledger: UsageLedger,
    timeout: float,
    aliases: dict[str, str] | None = None,
) -> JudgeOutcome:
    """Ask the judge for the analysis of ``answers`` (letter → text); ``names`` maps letters to models.

    ``timeout`` bounds the judge and its repair call together, by the wall clock (LiteLLM's own timeout
    bounds single reads only). ``aliases`` maps Router model names to the models behind them, to decide
    whether the judge supports structured output.
    """
    judge = spec.judge
    voting = spec.aggregation == "vote"
    schema = analysis_schema(vote=voting)
    base = [
        {"role": "system", "content": prompts.judge_system(nonce, vote=voting)},
        {"role": "user", "content": prompts.judge_user_prompt(messages, answers, nonce)},
    ]
    records: list[CallRecord] = []
    modes = output_modes(spec.judge_output, supports("response_schema", (aliases or {}).get(judge.model, judge.model)))
    mode = modes[0]

    # Temperature 0 unless the judge sets its own: the analysis is a check, not a sample (as OpenRouter's).
    # Reasoning models (gpt-5.5, ...) accept only their default, and LiteLLM refuses 0 before any request:
    # then the judge runs at the model's default, once the refusal is seen.
    temperature: float | None = 0

    async def call(call_messages: list[dict[str, Any]], role: str, extra: dict[str, Any]) -> str:
        nonlocal temperature
        kwargs = member_kwargs(judge, spec, call_messages, default_temperature=temperature, extra=extra)
        try:
            response, record = await timed_call(complete, kwargs, role=role, member=judge, ledger=ledger)
        except litellm.UnsupportedParamsError as exc:
            if temperature is None or judge.temperature is not None or "temperature" not in str(exc):
                raise
            temperature = None
            kwargs = member_kwargs(judge, spec, call_messages, extra=extra)
            response, record = await timed_call(complete, kwargs, role=role, member=judge, ledger=ledger)
        records.append(record)
        return response.choices[0].message.content or ""

    def outcome(analysis: Analysis | None, reason: str | None = None, error: CallError | None = None) -> JudgeOutcome:
        lettered = analysis.model_dump() if analysis else None
        if lettered is not None and not analysis.answers:
            del lettered["answers"]
        vote = None
        if voting:
            judged = {prompts.answer_letter(check.answer): {"final": check.final, "verdict": check.verdict} for check in (analysis.answers if analysis else [])}
            vote = count_vote(answers, judged)
        return JudgeOutcome(
            analysis=_unletter(analysis, names) if analysis else None,
            lettered=lettered,
            failed_reason=reason,
            error=error,
            records=tuple(records),
            structured_output=mode,
            aggregation=spec.aggregation,
            vote=vote,
        )

    async def steps() -> JudgeOutcome:
        nonlocal mode
        for mode in modes:
            try:
                text = await call(base, "judge", _response_format(mode, schema))
                break
            except litellm.ContextWindowExceededError:
                raise
            except Exception as exc:
                # The backend refused this kind of structured output: try the next, down to the prompt.
                if mode == modes[-1] or not refused_response_format(exc):
                    raise
        if not text.strip():
            return outcome(None, "empty")
        try:
            return outcome(parse_analysis(text))
        except AnalysisParseError as first:
            repair = [
                {"role": "system", "content": prompts.REPAIR_SYSTEM},
                {"role": "user", "content": prompts.repair_user_prompt(text, str(first), vote=voting)},
            ]
            try:
                return outcome(parse_analysis(await call(repair, "judge_repair", {})))
            except AnalysisParseError as second:
                return outcome(None, second.reason, CallError(type="AnalysisParseError", status_code=None, message=str(second)))

    try:
        async with asyncio.timeout(timeout):
            return await steps()
    except (TimeoutError, litellm.Timeout) as exc:
        return outcome(None, "timeout", CallError.from_exception(exc))
    except Exception as exc:  # any upstream failure degrades to synthesis from raw answers
        return outcome(None, "upstream_error", CallError.from_exception(exc))
