"""The eval's statistics: Wilson intervals, the panel's vote, what a fusion did with it, paired comparisons.

Standard library only. The exact McNemar test is the two-sided binomial test on the discordant pairs
(questions one configuration got right and the other wrong), computed with integer binomial coefficients:
no normal approximation, so it is valid at the small n a CPU-bound eval reaches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["OUTCOMES", "wilson", "mcnemar_exact", "panel_vote", "fusion_outcome", "Paired", "paired"]

Z95 = 1.959963984540054
OUTCOMES = (
    "kept_right_majority",
    "lost_right_majority",
    "rescued_right_minority",
    "missed_right_minority",
    "right_when_none_were",
    "wrong_when_none_were",
    "ungraded",
)
"""What a fusion did with its panel's answers on one question (see :func:`fusion_outcome`)."""


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of ``correct`` out of ``n``; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(won: int, lost: int) -> float:
    """Two-sided exact McNemar p: the chance of a split at least this uneven among ``won + lost`` discordant
    questions if both configurations were equally good (each discordant question a fair coin)."""
    n = won + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(won, lost) + 1))
    return min(1.0, 2 * tail / 2**n)


def panel_vote(panel: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The panel's majority vote, a free baseline: the most common graded answer among the members that
    answered (``key``: what the grader read; ties go to the member listed first, and ``tied`` says there was
    one), and whether it is right. A member whose answer the grader could not read does not vote.

    ``panel`` entries are the eval's graded panel members (``status``, ``key``, ``correct``). None when no
    member has a graded answer. ``right_majority``: more than half of the panel (failed members included) was right.
    """
    graded = [m for m in panel if m.get("status") == "ok" and "correct" in m]
    if not graded:
        return None
    counts: dict[Any, int] = {}
    first: dict[Any, dict[str, Any]] = {}
    for member in graded:
        key = member.get("key")
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, member)
    right = sum(1 for m in graded if m["correct"])
    winner = max(counts, key=lambda k: (counts[k], -graded.index(first[k])), default=None)
    votes = counts.get(winner, 0)
    return {
        "answer": winner,
        "votes": votes,
        "tied": sum(1 for c in counts.values() if c == votes) > 1,
        "correct": winner is not None and bool(first[winner]["correct"]),
        "right_members": right,
        "right_majority": right * 2 > len(panel),
    }


def fusion_outcome(fusion_correct: bool, vote: dict[str, Any] | None) -> str:
    """What the fusion did with the panel: ``kept_right_majority``, ``lost_right_majority``,
    ``rescued_right_minority`` (right though at most half the panel was), ``missed_right_minority``,
    ``right_when_none_were`` or ``wrong_when_none_were``; ``ungraded`` without graded panel answers."""
    if vote is None:
        return "ungraded"
    if vote["right_majority"]:
        return "kept_right_majority" if fusion_correct else "lost_right_majority"
    if vote["right_members"]:
        return "rescued_right_minority" if fusion_correct else "missed_right_minority"
    return "right_when_none_were" if fusion_correct else "wrong_when_none_were"


@dataclass(frozen=True)
class Paired:
    """One configuration against another on the questions both answered."""

    config: str
    baseline: str
    n: int
    won: int
    """Questions ``config`` got right and ``baseline`` wrong."""
    lost: int
    tied: int
    p_value: float
    """Exact McNemar p (two-sided)."""


def paired(config: str, baseline: str, mine: dict[str, bool], theirs: dict[str, bool]) -> Paired:
    """Compare per-question correctness (question id → right) on the ids both have."""
    common = [qid for qid in mine if qid in theirs]
    won = sum(1 for q in common if mine[q] and not theirs[q])
    lost = sum(1 for q in common if theirs[q] and not mine[q])
    return Paired(
        config=config, baseline=baseline, n=len(common), won=won, lost=lost, tied=len(common) - won - lost, p_value=mcnemar_exact(won, lost)
    )
