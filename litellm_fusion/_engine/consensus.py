"""The consensus short-circuit: when the panel already agrees, skip the stages that would only repeat it."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from litellm_fusion._engine.vote import claim_key, final_claim

__all__ = ["normalise_answer", "agreed_answer", "agreed_claim", "judge_found_full_consensus", "SHORT_CIRCUIT_BLOCKERS"]

SHORT_CIRCUIT_BLOCKERS = frozenset({"tools", "tool_choice", "functions", "function_call", "response_format", "n"})
"""Client parameters the panel never saw: with any of them, only the synthesizer can answer."""

_TRAILING = re.compile(r"[\s.!。]+$")


def normalise_answer(text: str) -> str:
    """Compare answers modulo case, Unicode form, runs of whitespace and trailing full stops."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _TRAILING.sub("", " ".join(text.split()))


def agreed_answer(answers: list[str]) -> str | None:
    """The first answer when there are at least two and all are equal after normalisation, else None."""
    if len(answers) < 2:
        return None
    first = normalise_answer(answers[0])
    return answers[0] if first and all(normalise_answer(a) == first for a in answers[1:]) else None


def agreed_claim(answers: list[str]) -> str | None:
    """The first answer when there are at least two and each states the same final claim (its last
    ``Answer:`` line, else its last ``\\boxed{}``: ``vote.final_claim``; ``$57.24`` and ``57.240`` agree), else
    None: a unanimous vote, which a judge could only confirm."""
    if len(answers) < 2:
        return None
    claims = [final_claim(a) for a in answers]
    if any(c is None for c in claims):
        return None
    return answers[0] if len({claim_key(c) for c in claims if c is not None}) == 1 else None


def judge_found_full_consensus(analysis: dict[str, Any] | None) -> bool:
    """True when the judge reports agreement and no contradictions, partial coverage or blind spots."""
    if not analysis:
        return False
    return bool(analysis.get("consensus")) and not any(analysis.get(key) for key in ("contradictions", "partial_coverage", "blind_spots"))
