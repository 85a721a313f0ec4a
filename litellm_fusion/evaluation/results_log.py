"""The eval's resumable results log: one JSON line per graded result, appended as it finishes.

Each line carries fingerprints of its configuration (as described, keys redacted) and of its question, so a
rerun reuses a result only while both are unchanged. The runner appends (:func:`append_result`) and reads the
log back before asking anything (:func:`load_results_log`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from litellm_fusion.evaluation.configs import EvalConfig
from litellm_fusion.evaluation.results import Question, QuestionResult

__all__ = ["load_results_log", "append_result"]


def _fingerprint(value: Any) -> str:
    # Short and stable across runs: sorted keys, anything JSON cannot hold as its str().
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _question_fingerprint(question: Question) -> str:
    return _fingerprint([question.question, question.answer, question.grader, question.pattern, question.tolerance])


def load_results_log(
    path: str | os.PathLike[str], configs: Sequence[EvalConfig], questions: Sequence[Question], *, retry_errors: bool = False
) -> dict[tuple[str, str], tuple[QuestionResult, bool]]:
    """The results of an earlier run that still apply: (configuration, question id) → (result, unpriced).

    A line counts only when its configuration (as described, keys redacted) and its question (text, answer,
    grader) are unchanged, so editing either asks again. A torn last line (the run was killed mid-write) is
    skipped. With ``retry_errors``, results whose call failed (a connection error, a timeout: no answer to
    grade) are left out, so they are asked again; a later line for the same pair replaces an earlier one.
    """
    file = os.fspath(path)
    if not os.path.exists(file):
        return {}
    wanted_configs = {c.name: _fingerprint(c.describe()) for c in configs}
    wanted_questions = {q.id: _question_fingerprint(q) for q in questions}
    done: dict[tuple[str, str], tuple[QuestionResult, bool]] = {}
    with open(file, encoding="utf-8") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
                result = QuestionResult(**entry["result"])
            except (ValueError, TypeError, KeyError):
                continue
            if wanted_configs.get(result.config) == entry.get("config_fingerprint") and wanted_questions.get(result.id) == entry.get(
                "question_fingerprint"
            ):
                if retry_errors and (result.error or {}).get("stage") == "call":
                    done.pop((result.config, result.id), None)
                    continue
                done[(result.config, result.id)] = (result, bool(entry.get("unpriced")))
    return done


def append_result(path: str | os.PathLike[str], config: EvalConfig, question: Question, result: QuestionResult, unpriced: bool) -> None:
    """Append one graded result to the log, with the fingerprints :func:`load_results_log` matches it by."""
    entry = {
        "config_fingerprint": _fingerprint(config.describe()),
        "question_fingerprint": _question_fingerprint(question),
        "unpriced": unpriced,
        "result": asdict(result),
    }
    # One write of one line, flushed at once: a kill loses at most the line being written.
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry, default=str) + "\n")
