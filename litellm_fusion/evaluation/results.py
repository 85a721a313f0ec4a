"""What an eval reads and writes: the questions, each graded result, each configuration's summary and the
whole report. Plain data; ``runner`` fills it, ``report`` renders it (:func:`~.report.markdown_report`)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from litellm_fusion.evaluation import graders
from litellm_fusion.evaluation.configs import ConfigError, resolve_data_path

__all__ = ["Question", "QuestionResult", "ConfigSummary", "EvalReport", "load_questions"]


@dataclass(frozen=True)
class Question:
    """One line of a question file."""

    id: str
    question: str
    answer: Any
    grader: str = "numeric"
    pattern: str | None = None
    tolerance: float | None = None


def _question(record: Any, where: str) -> Question:
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: each line must be a JSON object")
    missing = [k for k in ("id", "question", "answer") if record.get(k) in (None, "")]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    grader = record.get("grader", "numeric")
    if grader not in graders.GRADERS:
        raise ConfigError(f"{where}: grader must be one of {', '.join(graders.GRADERS)}, got {grader!r}")
    pattern, tolerance = record.get("pattern"), record.get("tolerance")
    if grader == "numeric":
        try:
            graders.parse_number(record["answer"])
        except ValueError as exc:
            raise ConfigError(f"{where}: numeric answer: {exc}") from None
    if grader == "regex":
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{where}: a regex question needs a `pattern`")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: bad pattern {pattern!r}: {exc}") from None
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0):
        raise ConfigError(f"{where}: tolerance must be a number >= 0, got {tolerance!r}")
    return Question(
        id=str(record["id"]),
        question=str(record["question"]),
        answer=record["answer"],
        grader=grader,
        pattern=pattern,
        tolerance=None if tolerance is None else float(tolerance),
    )


def load_questions(path: str | os.PathLike[str], limit: int | None = None) -> list[Question]:
    """Read a JSONL question file (blank lines and ``#`` lines skipped); the first ``limit`` questions."""
    file = resolve_data_path(path, (".jsonl",))
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{file}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc}") from None
        question = _question(record, where)
        if question.id in seen:
            raise ConfigError(f"{where}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
        if limit is not None and len(questions) >= limit:
            break
    if not questions:
        raise ConfigError(f"{file}: no questions")
    return questions


@dataclass
class QuestionResult:
    """One configuration's answer to one question, graded."""

    config: str
    id: str
    grader: str
    expected: Any
    correct: bool
    answer: str | None = None
    extracted: Any = None
    error: dict[str, Any] | None = None
    """``{stage: call | grader, type, status_code, message}`` when the call or the grading failed."""
    latency_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    """USD; None when the model has no known price."""
    grader_usage: dict[str, Any] | None = None
    """Tokens and cost of the judge grader's call (not counted in the configuration's totals)."""
    fusion: dict[str, Any] | None = None
    """For fusion configurations: what each stage did (panel answers graded too, judge status, fallbacks),
    the panel's vote (``vote``) and what the fusion did with it (``outcome``, see ``stats.fusion_outcome``)."""
    trace: dict[str, Any] | None = None
    """For fusion configurations: the whole trace (panel, letters, analysis, aggregation, every call)."""


@dataclass
class ConfigSummary:
    """One row of the report."""

    name: str
    kind: str
    model: str
    n: int
    correct: int
    accuracy: float
    errors: int
    error_list: list[dict[str, Any]]
    total_tokens: int
    mean_tokens: float | None
    """Mean tokens per answered question (failed calls excluded)."""
    total_cost: float
    """USD over every call, failed fusion calls' recorded spend included."""
    unpriced: bool
    """Some call had no known price, so ``total_cost`` undercounts."""
    p50_latency_ms: float | None
    mean_latency_ms: float | None
    """Latency over answered questions."""
    grader_tokens: int = 0
    grader_cost: float = 0.0
    fusion_stats: dict[str, Any] | None = None
    """For fusions: ``panel_any_correct`` (the oracle), ``vote_correct`` and ``vote_tied`` (the panel's majority
    vote), the ``outcomes`` counts (kept/lost a right majority, rescued a right minority, ...), judge failures,
    ``judge_read`` (votes that counted a claim from the judge's record), ``judge_checks`` (its verdicts
    against the grader) and ``by_recommendation`` (how often the fusion was right after each one)."""
    ci_low: float = 0.0
    ci_high: float = 1.0
    """The accuracy's Wilson 95 % interval."""
    vs_best_solo: dict[str, Any] | None = None
    """For fusions: the paired comparison against the most accurate solo configuration (``stats.Paired``)."""


@dataclass
class EvalReport:
    """Everything one run measured; ``summaries`` in configuration order, ``results`` grouped likewise."""

    questions_path: str
    n_questions: int
    configs: list[dict[str, Any]]
    summaries: list[ConfigSummary]
    results: list[QuestionResult]
    concurrency: int
    timeout: float
    started_at: str
    duration_s: float
    grader: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    resumed: int = 0
    """Results reused from the results log rather than asked again."""

    def summary(self, name: str) -> ConfigSummary:
        """The summary of the named configuration."""
        for s in self.summaries:
            if s.name == name:
                return s
        raise KeyError(name)

    def results_for(self, name: str) -> list[QuestionResult]:
        """The named configuration's results, in question order."""
        return [r for r in self.results if r.config == name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: settings, summaries and every per-question result."""
        return asdict(self)

    @property
    def best_solo(self) -> str | None:
        """The most accurate solo configuration (the first listed on a tie), the fusions' paired baseline."""
        solos = [s for s in self.summaries if s.kind == "solo"]
        return max(solos, key=lambda s: (s.accuracy, -solos.index(s))).name if solos else None
