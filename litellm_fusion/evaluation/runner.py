"""Run a question set through configurations, grade every reply, and summarise per configuration.

Work is interleaved question by question (question 1 through every configuration, then question 2, ...),
with at most ``concurrency`` calls in flight, so a run stopped early still gives every configuration the
same questions: paired comparisons at a smaller n. Every call is a ``litellm.acompletion`` with a per-call
timeout that is also enforced by the wall clock. A failed call (an error status, a timeout, a fusion 503)
is a wrong answer AND an entry under ``errors``: never dropped. Its spend, when the error carries a fusion
trace, still counts in the totals.

With ``results_log``, each graded result is appended to a JSONL file as it finishes, and a rerun reuses
the results already there (same configuration, same question) instead of asking again: long runs resume
where they stopped.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

import litellm

from litellm_fusion._core.nested import CallError
from litellm_fusion._core.usage import Usage, cost_of, usage_of
from litellm_fusion._host.sync import run_sync
from litellm_fusion.evaluation import graders, stats
from litellm_fusion.evaluation.configs import DEFAULT_TIMEOUT, ConfigError, EvalConfig, parse_config, parse_configs, resolve_data_path
from litellm_fusion.evaluation.results import ConfigSummary, EvalReport, Question, QuestionResult, load_questions
from litellm_fusion.evaluation.results_log import append_result, load_results_log

__all__ = ["arun_eval", "run_eval"]


def _spent_before_failing(exc: BaseException) -> tuple[int, int, float | None, bool]:
    """(prompt, completion, cost, unpriced) a failed fusion call had already spent (its ``.trace``)."""
    trace = getattr(exc, "trace", None)
    if not isinstance(trace, dict):
        return 0, 0, None, False
    usage = trace.get("usage") or {}
    cost = trace.get("cost")
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), cost, bool(trace.get("unpriced_models"))


def _error(exc: BaseException, stage: str, secrets: tuple[str, ...], timeout: float) -> dict[str, Any]:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) and not str(exc):
        return {"stage": stage, "type": "Timeout", "status_code": 408, "message": f"no answer within the per-call timeout ({timeout:g} s)"}
    return {"stage": stage, **CallError.from_exception(exc, secrets=secrets).as_dict()}


def _grade(question: Question, reply: str) -> graders.Grade:
    if question.grader == "exact":
        return graders.grade_exact(reply, question.answer)
    if question.grader == "numeric":
        return graders.grade_numeric(reply, question.answer, question.tolerance)
    if question.grader == "regex":
        return graders.grade_regex(reply, question.pattern or "")
    raise ValueError("judge grading is asynchronous")


def _fusion_summary(trace: dict[str, Any], question: Question) -> dict[str, Any]:
    """The parts of a fusion trace the report needs; panel answers graded with the question's grader."""
    aggregation = trace.get("aggregation") or {}
    judge_ran = (trace.get("judge") or {}).get("status") == "ok"
    # The judge's check of each answer, by the name the trace gives it (letters map to names).
    verdicts = {a.get("answer"): a.get("verdict") for a in aggregation.get("answers") or []} if judge_ran else {}
    letters = trace.get("letters") or {}
    panel = []
    for m in trace.get("panel") or []:
        entry = {
            "model": m.get("model"),
            "status": m.get("status"),
            "latency_ms": m.get("latency_ms"),
            "total_tokens": (m.get("usage") or {}).get("total_tokens"),
            "content": m.get("content"),
            "verdict": verdicts.get(letters.get(m.get("letter"))),
        }
        if question.grader != "judge" and m.get("status") == "ok" and isinstance(m.get("content"), str):
            grade = _grade(question, m["content"])
            # ``key``: what the grader read, as text, so the vote groups equal answers (also after a resume).
            entry["correct"], entry["key"] = grade.correct, None if grade.extracted is None else str(grade.extracted)
        panel.append(entry)
    judge, synth = trace.get("judge") or {}, trace.get("synthesizer") or {}
    return {
        "panel": panel,
        "judge": {k: judge.get(k) for k in ("model", "status", "failed_reason", "structured_output", "calls", "latency_ms")},
        "judge_failed": trace.get("judge_failed"),
        "aggregation": {
            **{k: aggregation.get(k) for k in ("mechanism", "recommendation", "majority", "trusted")},
            **_judge_read(aggregation),
        },
        "synthesizer": {k: synth.get(k) for k in ("model", "status", "latency_ms", "errors")},
        "degraded": trace.get("degraded"),
        "short_circuit": trace.get("short_circuit"),
        "failed_models": trace.get("failed_models"),
        "trace_latency_ms": trace.get("latency_ms"),
        "invocation": {k: (trace.get("invocation") or {}).get(k) for k in ("mode", "invoked", "reason")},
    }


def _judge_read(aggregation: dict[str, Any]) -> dict[str, Any]:
    """How many of the vote's claims came from the judge's reading of an answer with no final line
    (``source: judge``), and whether one of them was in the majority the vote found."""
    read = {a.get("answer") for a in aggregation.get("answers") or [] if a.get("source") == "judge"}
    majority = next((g for g in aggregation.get("groups") or [] if g.get("claim") == aggregation.get("majority")), {})
    return {"judge_read": len(read), "judge_read_in_majority": bool(read & set(majority.get("answers") or []))}


async def _call(config: EvalConfig, messages: list[dict[str, Any]], timeout: float) -> tuple[Any, float]:
    kwargs = config.call_kwargs(messages, timeout)
    limit = kwargs["timeout"]
    # LiteLLM's own timeout bounds single reads; the wall clock bounds the call. Fusion enforces its own
    # deadline (a typed 408), so it gets a little slack to report first.
    grace = 2.0 if config.kind == "fusion" else 0.0
    started = time.perf_counter()
    response = await asyncio.wait_for(litellm.acompletion(**kwargs), limit + grace)
    return response, (time.perf_counter() - started) * 1000


def _call_cost(config: EvalConfig, response: Any, prompt: int, completion: int) -> tuple[float | None, bool]:
    """(USD, unpriced) of a successful call."""
    hidden = getattr(response, "_hidden_params", None) or {}
    if config.kind == "fusion":
        trace = hidden.get("fusion") or {}
        cost = hidden.get("response_cost")
        return (float(cost) if isinstance(cost, (int, float)) else trace.get("cost")), bool(trace.get("unpriced_models"))
    member = config.member
    assert member is not None
    cost = cost_of(
        response,
        model=member.model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        prices=(member.input_cost_per_token, member.output_cost_per_token),
    )
    return cost, cost is None


async def _ask_and_grade(
    config: EvalConfig, question: Question, *, timeout: float, grader: EvalConfig | None
) -> tuple[QuestionResult, bool]:
    """One question through one configuration, graded; also whether its cost is unknown."""
    result = QuestionResult(config=config.name, id=question.id, grader=question.grader, expected=question.answer, correct=False)
    messages = [{"role": "user", "content": question.question}]
    try:
        response, latency_ms = await _call(config, messages, timeout)
    except Exception as exc:  # noqa: BLE001 - any failure is a wrong answer with its error listed
        prompt, completion, cost, unpriced = _spent_before_failing(exc)
        result.error = _error(exc, "call", config.secrets(), config.timeout or timeout)
        result.prompt_tokens, result.completion_tokens, result.total_tokens, result.cost = prompt, completion, prompt + completion, cost
        trace = getattr(exc, "trace", None)
        if isinstance(trace, dict):  # no answer to grade; the panel's answers still are
            result.fusion, result.trace = _fusion_summary(trace, question), trace
            _vote_outcome(result)
        return result, unpriced
    prompt, completion = usage_of(response)
    cost, unpriced = _call_cost(config, response, prompt, completion)
    reply = (response.choices[0].message.content if response.choices else None) or ""
    result.answer, result.latency_ms = reply, round(latency_ms, 1)
    result.prompt_tokens, result.completion_tokens, result.total_tokens, result.cost = prompt, completion, prompt + completion, cost
    trace = (getattr(response, "_hidden_params", None) or {}).get("fusion")
    result.trace = trace if config.kind == "fusion" and isinstance(trace, dict) else None
    if question.grader != "judge":
        return _graded(result, question), unpriced
    result.fusion = _fusion_summary(result.trace, question) if result.trace is not None else None
    assert grader is not None  # checked before the run
    try:
        verdict_response, _ = await _call(grader, graders.judge_messages(question.question, question.answer, reply), timeout)
    except Exception as exc:  # noqa: BLE001
        result.error = _error(exc, "grader", grader.secrets(), grader.timeout or timeout)
        return result, unpriced
    g_prompt, g_completion = usage_of(verdict_response)
    g_cost, _ = _call_cost(grader, verdict_response, g_prompt, g_completion)
    result.grader_usage = {"model": grader.model, "total_tokens": g_prompt + g_completion, "cost": g_cost}
    verdict = graders.parse_verdict(verdict_response.choices[0].message.content if verdict_response.choices else None)
    result.correct, result.extracted = verdict.correct, verdict.extracted
    if verdict.detail:
        result.error = {"stage": "grader", "type": "NoVerdict", "status_code": None, "message": verdict.detail}
    return result, unpriced


def _graded(result: QuestionResult, question: Question) -> QuestionResult:
    """``result`` graded with the question's (deterministic) grader: its answer, when it has one, and for a
    fusion its trace's panel answers, the panel's vote and what the fusion did with it. Used when a result is
    first made and again when it is read back from the log, so a grader fix (a reply's ``\\boxed{Sunday}`` read
    as Sunday) reaches a resumed run and its report. A judge grader's verdict is a model call: a logged one
    is kept."""
    if question.grader == "judge":
        return result
    if result.answer is not None:
        grade = _grade(question, result.answer)
        result.correct, result.extracted = grade.correct, grade.extracted
    if isinstance(result.trace, dict):
        result.fusion = _fusion_summary(result.trace, question)
        _vote_outcome(result)
    return result


def _vote_outcome(result: QuestionResult) -> None:
    """The panel's vote on this question and what the fusion did with it, into ``result.fusion``."""
    if result.fusion is not None:
        vote = stats.panel_vote(result.fusion.get("panel") or [])
        result.fusion["vote"], result.fusion["outcome"] = vote, stats.fusion_outcome(result.correct, vote)


def _summarise(config: EvalConfig, results: list[QuestionResult], unpriced: bool) -> ConfigSummary:
    spent = Usage.total(Usage(prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens, cost=r.cost) for r in results)
    answered = [r for r in results if r.latency_ms is not None]
    latencies = [r.latency_ms for r in answered if r.latency_ms is not None]
    correct = sum(r.correct for r in results)
    fusion_stats = None
    if config.kind == "fusion":
        traced = [r.fusion for r in results if r.fusion]
        fusion_stats = {
            "judge_failed": sum(1 for f in traced if f.get("judge_failed")),
            "degraded": sum(1 for f in traced if f.get("degraded")),
            "short_circuit": sum(1 for f in traced if f.get("short_circuit")),
            # How often the panel ran (always: every call; auto: when the outer model called it).
            "panel_called": sum(1 for f in traced if (f.get("invocation") or {}).get("invoked")),
            # Fusions whose vote counted a claim the judge read from an answer with no final line, and of
            # those, the ones where such a claim made (part of) the majority.
            "judge_read": sum(1 for f in traced if (f.get("aggregation") or {}).get("judge_read")),
            "judge_read_in_majority": sum(1 for f in traced if (f.get("aggregation") or {}).get("judge_read_in_majority")),
            **_panel_stats(traced),
            "by_recommendation": _by_recommendation(results),
            "aggregation": sorted({(f.get("aggregation") or {}).get("mechanism") or "none" for f in traced}),
        }
    ci_low, ci_high = stats.wilson(correct, len(results))
    return ConfigSummary(
        name=config.name,
        kind=config.kind,
        model=config.model,
        n=len(results),
        correct=correct,
        accuracy=correct / len(results) if results else 0.0,
        errors=sum(1 for r in results if r.error),
        error_list=[{"id": r.id, **(r.error or {})} for r in results if r.error],
        total_tokens=spent.total_tokens,
        mean_tokens=statistics.fmean(r.total_tokens for r in answered) if answered else None,
        total_cost=spent.cost or 0.0,
        unpriced=unpriced,
        p50_latency_ms=round(statistics.median(latencies), 1) if latencies else None,
        mean_latency_ms=round(statistics.fmean(latencies), 1) if latencies else None,
        grader_tokens=sum((r.grader_usage or {}).get("total_tokens") or 0 for r in results),
        grader_cost=sum((r.grader_usage or {}).get("cost") or 0.0 for r in results),
        fusion_stats=fusion_stats,
        ci_low=ci_low,
        ci_high=ci_high,
    )


def _panel_stats(traced: list[dict[str, Any]]) -> dict[str, Any]:
    """The oracle, the panel's vote, the outcome counts and the judge's checks against the grader, over
    graded panels; all None when no panel was graded (a judge grader grades only the final answer), so a
    report shows them as unknown, not as 0."""
    if not any(f.get("vote") is not None for f in traced):
        return dict.fromkeys(("panel_any_correct", "vote_correct", "vote_tied", "outcomes", "judge_checks"))
    return {
        # How often at least one panel member was right (what a perfect judge could have reached).
        "panel_any_correct": sum(1 for f in traced if any(m.get("correct") for m in f.get("panel") or [])),
        # The free baseline: the panel's own majority vote, no judge, no synthesizer.
        "vote_correct": sum(1 for f in traced if (f.get("vote") or {}).get("correct")),
        # Votes with no single most common answer, decided by the first-listed member.
        "vote_tied": sum(1 for f in traced if (f.get("vote") or {}).get("tied")),
        "outcomes": {name: sum(1 for f in traced if f.get("outcome") == name) for name in stats.OUTCOMES},
        "judge_checks": _judge_checks(traced),
    }


def _by_recommendation(results: list[QuestionResult]) -> dict[str, dict[str, int]]:
    """How often the fusion was right, by what the vote told the synthesizer (``short_circuit`` when the
    vote answered alone): ``{recommendation: {"n": fusions, "right": right ones}}``."""
    counts: dict[str, dict[str, int]] = {}
    for r in results:
        if not r.fusion:
            continue
        key = "short_circuit" if r.fusion.get("short_circuit") else (r.fusion.get("aggregation") or {}).get("recommendation") or "none"
        entry = counts.setdefault(key, {"n": 0, "right": 0})
        entry["n"] += 1
        entry["right"] += bool(r.correct)
    return counts


def _judge_checks(traced: list[dict[str, Any]]) -> dict[str, int]:
    """The judge's checks against the grader, over graded answers the judge checked: how many wrong answers
    it accepted (``correct``) and how many right ones it rejected (``wrong``)."""
    checked = [m for f in traced for m in f.get("panel") or [] if "correct" in m and m.get("verdict")]
    wrong = [m for m in checked if not m["correct"]]
    right = [m for m in checked if m["correct"]]
    return {
        "wrong_answers": len(wrong),
        "wrong_accepted": sum(1 for m in wrong if m["verdict"] == "correct"),
        "right_answers": len(right),
        "right_rejected": sum(1 for m in right if m["verdict"] == "wrong"),
    }


def _compare(summaries: list[ConfigSummary], results: list[QuestionResult], best: str | None) -> None:
    """Each fusion against the best solo configuration, question by question."""
    if best is None:
        return
    by_config: dict[str, dict[str, bool]] = {}
    for r in results:
        by_config.setdefault(r.config, {})[r.id] = r.correct
    for s in summaries:
        if s.kind == "fusion":
            s.vs_best_solo = asdict(stats.paired(s.name, best, by_config.get(s.name, {}), by_config.get(best, {})))


async def arun_eval(
    questions_path: str | os.PathLike[str] | Sequence[Question],
    configs: Mapping[str, Any] | Iterable[Any],
    *,
    concurrency: int = 2,
    limit: int | None = None,
    timeout: float | None = None,
    grader: Any = None,
    on_result: Callable[[QuestionResult], None] | None = None,
    results_log: str | os.PathLike[str] | None = None,
    retry_errors: bool = False,
) -> EvalReport:
    """Async :func:`run_eval`."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    per_call = float(timeout or DEFAULT_TIMEOUT)
    if isinstance(questions_path, (str, os.PathLike)):
        source = str(resolve_data_path(questions_path, (".jsonl",)))
        questions = load_questions(source, limit)
    else:
        source, questions = "<in memory>", list(questions_path)[:limit]
    parsed = parse_configs(configs)
    grader_config = parse_config(grader, "grader") if grader is not None else None
    if grader_config is not None and grader_config.kind != "solo":
        raise ConfigError("the judge grader must be a solo model")
    if grader_config is None and any(q.grader == "judge" for q in questions):
        raise ConfigError("some questions use grader: judge, but no grader model is configured (grader: {model: ...})")
    if any(c.kind == "fusion" for c in parsed):
        from litellm_fusion._host.provider import register

        register()
    started_at, started = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
    done = load_results_log(results_log, parsed, questions, retry_errors=retry_errors) if results_log is not None else {}
    by_id = {q.id: q for q in questions}
    done = {key: (_graded(result, by_id[key[1]]), unpriced) for key, (result, unpriced) in done.items()}
    slots = asyncio.Semaphore(concurrency)

    async def one(question: Question, config: EvalConfig) -> tuple[QuestionResult, bool]:
        async with slots:
            outcome = await _ask_and_grade(config, question, timeout=per_call, grader=grader_config)
        if results_log is not None:
            append_result(results_log, config, question, *outcome)
        if on_result is not None:
            on_result(outcome[0])
        return outcome

    # Question-major order: the semaphore admits waiters first come, first served, so a run cut short has
    # the same questions answered by every configuration.
    pending = [(q, c) for q in questions for c in parsed if (c.name, q.id) not in done]
    finished = await asyncio.gather(*(one(q, c) for q, c in pending))
    outcomes = {**done, **{(r.config, r.id): (r, u) for r, u in finished}}
    results: list[QuestionResult] = []
    summaries: list[ConfigSummary] = []
    for config in parsed:
        mine = [outcomes[(config.name, q.id)] for q in questions]
        config_results = [r for r, _ in mine]
        results.extend(config_results)
        summaries.append(_summarise(config, config_results, any(u for _, u in mine)))
    report = EvalReport(
        questions_path=source,
        n_questions=len(questions),
        configs=[c.describe() for c in parsed],
        summaries=summaries,
        results=results,
        concurrency=concurrency,
        timeout=per_call,
        started_at=started_at,
        duration_s=round(time.perf_counter() - started, 3),
        grader=grader_config.describe() if grader_config else None,
        meta={"litellm_version": getattr(litellm, "version", None) or _litellm_version()},
        resumed=len(done),
    )
    _compare(summaries, results, report.best_solo)
    return report


def _litellm_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("litellm")
    except Exception:  # noqa: BLE001
        return None


def run_eval(
    questions_path: str | os.PathLike[str] | Sequence[Question],
    configs: Mapping[str, Any] | Iterable[Any],
    *,
    concurrency: int = 2,
    limit: int | None = None,
    timeout: float | None = None,
    grader: Any = None,
    on_result: Callable[[QuestionResult], None] | None = None,
    results_log: str | os.PathLike[str] | None = None,
    retry_errors: bool = False,
) -> EvalReport:
    """Run every question of a JSONL file through each configuration, grade it, and summarise.

    Args:
        questions_path: a JSONL file (``{"id", "question", "answer", "grader", "pattern"?, "tolerance"?}``
            per line), the name of a shipped one (``"arithmetic"``), or a list of :class:`Question`.
        configs: a mapping of name -> configuration, or a list of configurations (dicts with an optional
            ``name``, or :class:`EvalConfig`): ``{"model": "fusion/<preset>", "fusion": {...}}`` or a
            solo member dict (``model``, ``api_base``, ``api_key``, ``temperature``, ...).
        concurrency: calls in flight (questions are taken in order, each through every configuration).
        limit: only the first ``limit`` questions.
        timeout: seconds per call (default 300); a configuration's own ``timeout`` wins.
        grader: the solo model that grades ``grader: judge`` questions (PASS/FAIL).
        on_result: called with each :class:`QuestionResult` as it is graded (progress).
        results_log: a JSONL file each result is appended to as it finishes; results already in it (same
            configuration, same question) are reused, so a stopped run resumes (see :func:`~.results_log.load_results_log`).
        retry_errors: with ``results_log``, ask again the questions whose call failed there.

    A synchronous call; inside an event loop use ``await arun_eval(...)``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_eval() blocks; inside an event loop use `await arun_eval(...)`")
    # LiteLLM's async clients are cached per loop: run on the provider's long-lived loop, not a fresh one.
    return run_sync(
        arun_eval(
            questions_path,
            configs,
            concurrency=concurrency,
            limit=limit,
            timeout=timeout,
            grader=grader,
            on_result=on_result,
            results_log=results_log,
            retry_errors=retry_errors,
        )
    )
