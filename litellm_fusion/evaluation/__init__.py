"""``litellm-fusion eval``: measure fusion configurations against solo models on a question set.

::

    from litellm_fusion.evaluation import markdown_report, run_eval

    report = run_eval(
        "arithmetic",                                   # the shipped question set, or a JSONL path
        {"solo": {"model": "openai/gpt-5.4-mini"}, "budget": {"model": "fusion/budget"}},
        concurrency=2,
        limit=10,
    )
    print(markdown_report(report))                         # accuracy [95% CI], n, oracle, vote, paired, tokens, ...
    report.summary("budget").accuracy, report.results_for("solo")[0].answer

Modules: ``graders`` (exact, numeric, regex, judge), ``configs`` (configurations and their YAML file),
``results`` (questions, results, summaries, the report), ``runner`` (``run_eval``), ``results_log`` (the
resumable results log), ``stats`` (Wilson intervals, exact McNemar, the panel's vote), ``report`` (tables,
JSON, plot), ``decisions`` (the ``invocation`` decision table), ``question_files`` (the write-or-check step
of the question set generators), ``cli`` (the command). Names are imported lazily, so
``python -m litellm_fusion.evaluation`` can choose LiteLLM's settings before LiteLLM loads.
"""

from __future__ import annotations

from litellm_fusion import _lazy_exports

_EXPORTS = {
    "ConfigError": "configs",
    "EvalConfig": "configs",
    "EvalSettings": "configs",
    "load_configs": "configs",
    "parse_config": "configs",
    "parse_configs": "configs",
    "Grade": "graders",
    "extract_number": "graders",
    "grade_exact": "graders",
    "grade_numeric": "graders",
    "grade_regex": "graders",
    "parse_verdict": "graders",
    "Column": "report",
    "COLUMNS": "report",
    "PlotUnavailable": "report",
    "markdown_report": "report",
    "markdown_table": "report",
    "plot": "report",
    "write_outputs": "report",
    "ConfigSummary": "results",
    "EvalReport": "results",
    "Question": "results",
    "QuestionResult": "results",
    "arun_eval": "runner",
    "load_questions": "results",
    "load_results_log": "results_log",
    "Paired": "stats",
    "mcnemar_exact": "stats",
    "panel_vote": "stats",
    "wilson": "stats",
    "run_eval": "runner",
    "eval_command": "cli",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
