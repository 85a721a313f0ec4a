"""The vote: each answer's final claim, which answers agree, and what the synthesizer should trust.

Published evidence on closed-form questions: a majority vote over independent answers (self-consistency) is
a strong baseline that most "debate" gains reduce to (arXiv 2508.17536); an aggregator that re-derives
everything anchors on noise or on the majority, while one that *verifies* recovers right minority answers
(AggLM, arXiv 2509.06870); peer agreement misleads right answers more easily than it corrects wrong ones
(arXiv 2606.01637). So the vote is counted here, in code, and the judge's per-answer verdicts only decide
when a checked minority may overturn it:

- ``trust_majority``: a strict majority shares one final claim and the judge did not reject all of it;
- ``checked_minority``: the judge rejected every majority answer and accepted minority answers of one claim;
- ``checked_minorities``: it rejected every majority answer and accepted answers of two or more other claims;
- ``checked_answer``: no majority, and the answers the judge accepted all share one claim;
- ``no_majority``: no majority and no single checked claim: the synthesizer weighs the analysis;
- ``recheck``: the judge rejected the majority and accepted nothing else: the synthesizer works it out.

A final claim is read from the answer's own text first (the line after its last ``Answer:`` marker, else
its last ``\\boxed{...}``, the convention math-tuned models use), and from the judge's record (read the same
way) only when the answer has neither: the vote must count what the panel said, not what the judge thought
it said.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = ["Verdict", "Recommendation", "Vote", "final_claim", "claim_key", "count_vote"]

Verdict = Literal["correct", "wrong", "unsure"]
Recommendation = Literal["trust_majority", "checked_minority", "checked_minorities", "checked_answer", "no_majority", "recheck"]

# "Answer:", "**Answer:**", "Final answer:"; the last one in the text counts (as the eval's graders read it).
_MARKER = re.compile(r"(?i)\banswer\b[*_\s]*[:：]")
_NUMBER = re.compile(r"[-−]?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s?/\s?\d+)?")
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NOISE = re.compile(r"[*_`\"'“”‘’]|[\s.!。,;:]+$")


def final_claim(text: str) -> str | None:
    """The first non-empty line after the answer's last ``Answer:`` marker, else the content of its last
    ``\\boxed{...}``, else None."""
    markers = list(_MARKER.finditer(text or ""))
    if markers:
        for line in text[markers[-1].end() :].splitlines():
            cleaned = _NOISE.sub("", line).strip()
            if cleaned:
                return cleaned[:200]
    boxed = _BOXED.findall(text or "")
    if boxed:
        cleaned = _NOISE.sub("", boxed[-1].replace("\\$", "$")).strip()
        return cleaned[:200] or None
    return None


# Words that may follow (or precede) the one number of a claim without changing what it claims: percent and
# dollar markers, and a few units. One unit per quantity, so two ignorable words never name different scales
# of one quantity ("80 km" and "80 miles" keep their units and differ); any other word is part of the claim.
_IGNORABLE_UNITS = frozenset({"%", "percent", "per cent", "pct", "usd", "dollar", "dollars", "us", "km/h", "kph", "kmh"})
_LETTER = re.compile(r"[^\W\d_]")


def _number_key(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    if len(numbers) != 1:  # "2024-03-15" or "3 h 20 min" is not one number: compare it as text
        return None
    if "/" in numbers[0]:
        return " ".join(numbers[0].split())
    raw = numbers[0].replace("−", "-").replace("$", "").replace(",", "").replace(" ", "")
    try:
        # 57.240, 57.24 and 57.2400 are one claim; so are 80 and 80.0.
        return format(Decimal(raw).normalize(), "f")
    except InvalidOperation:
        return None


def _text_key(text: str) -> str:
    return " ".join(_NOISE.sub("", text).split())


def claim_key(claim: str) -> str:
    """What two claims must share to count as agreeing, modulo case, Unicode form, whitespace and markdown.

    A short claim holding exactly one number is keyed by the number alone when the rest of it is no word or
    only an ignorable unit (so ``$57.24`` and ``57.240`` agree, and ``80`` and ``80.0 km/h``); else by its
    text with the number normalised (``March 15`` and ``April 15`` differ, ``3 apples`` and ``3.0 apples``
    agree)."""
    text = unicodedata.normalize("NFKC", claim).casefold().strip()
    if len(text) <= 40:
        match = _NUMBER.search(text)
        number = _number_key(text)
        if number is not None and match is not None:
            before, after = text[: match.start()], text[match.end() :]
            rest = _text_key(f"{before} {after}")
            if not _LETTER.search(rest) or rest in _IGNORABLE_UNITS:
                return number
            return _text_key(f"{before} {number} {after}")
    return _text_key(text)


@dataclass(frozen=True, kw_only=True)
class Vote:
    """The counted vote over the panel's answers (letters, as the judge and synthesizer see them)."""

    claims: dict[str, str | None]
    """Letter → the answer's final claim (None: no claim found)."""
    sources: dict[str, str]
    """Letter → where the claim came from: ``answer`` (its own Answer: line), ``judge`` (the judge's record) or ``none``."""
    groups: list[tuple[str, tuple[str, ...]]]
    """(claim, letters) for each distinct claim, largest group first."""
    verdicts: dict[str, Verdict]
    """Letter → the judge's check of that answer (``unsure`` when the judge gave none)."""
    majority: str | None
    """The claim a strict majority of answers share, if any."""
    recommendation: Recommendation
    trusted: str | None
    """The claim the recommendation points at (None for ``checked_minorities``, ``no_majority`` and ``recheck``)."""

    def as_dict(self, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The vote as data; with ``names``, letters are replaced by model names (for the trace)."""

        def who(letter: str) -> str:
            return (names or {}).get(letter, letter)

        return {
            "mechanism": "vote",
            "answers": [
                {"answer": who(letter), "claim": self.claims[letter], "source": self.sources[letter], "verdict": self.verdicts[letter]}
                for letter in sorted(self.claims)
            ],
            "groups": [{"claim": claim, "answers": [who(x) for x in letters], "count": len(letters)} for claim, letters in self.groups],
            "majority": self.majority,
            "recommendation": self.recommendation,
            "trusted": self.trusted,
        }


def _verdict(value: Any) -> Verdict:
    text = str(value or "").strip().casefold()
    if text in {"correct", "right", "valid", "true", "yes"}:
        return "correct"
    if text in {"wrong", "incorrect", "invalid", "false", "no"}:
        return "wrong"
    return "unsure"


def _recorded_claim(value: Any) -> str | None:
    """The judge's record of an answer's claim, read as an answer's own text is: judges often copy the
    marker too (``Answer: 2025-11-17``), which must agree with an answer that says ``2025-11-17``."""
    text = str(value or "").strip()
    return (final_claim(text) or _NOISE.sub("", text).strip() or None) if text else None


def count_vote(answers: Mapping[str, str], judged: Mapping[str, Mapping[str, Any]] | None = None) -> Vote:
    """Count the vote over ``answers`` (letter → text); ``judged`` is the judge's record per letter
    (``{"final": claim, "verdict": correct|wrong|unsure}``), or None when the judge gave none."""
    judged = judged or {}
    claims: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for letter, text in answers.items():
        own = final_claim(text)
        recorded = _recorded_claim((judged.get(letter) or {}).get("final"))
        claims[letter], sources[letter] = (own, "answer") if own else (recorded, "judge") if recorded else (None, "none")
    verdicts = {letter: _verdict((judged.get(letter) or {}).get("verdict")) for letter in answers}
    by_key: dict[str, list[str]] = {}
    shown: dict[str, str] = {}
    for letter in sorted(answers):
        claim = claims[letter]
        if claim is None:
            continue
        key = claim_key(claim)
        by_key.setdefault(key, []).append(letter)
        shown.setdefault(key, claim)
    groups = sorted(((shown[k], tuple(v)) for k, v in by_key.items()), key=lambda g: (-len(g[1]), g[1]))
    majority_group = groups[0] if groups and len(groups[0][1]) * 2 > len(answers) else None
    majority = majority_group[0] if majority_group else None

    accepted = {claim_key(claims[x]) for x in answers if verdicts[x] == "correct" and claims[x] is not None}
    recommendation: Recommendation
    trusted: str | None = None
    if majority_group is not None:
        majority_letters = majority_group[1]
        minority_accepted = accepted - {claim_key(majority)} if majority else accepted
        if all(verdicts[x] == "wrong" for x in majority_letters):
            if len(minority_accepted) == 1:
                recommendation, trusted = "checked_minority", shown[next(iter(minority_accepted))]
            elif minority_accepted:
                recommendation = "checked_minorities"
            else:
                recommendation = "recheck"
        else:
            recommendation, trusted = "trust_majority", majority
    elif len(accepted) == 1:
        recommendation, trusted = "checked_answer", shown[next(iter(accepted))]
    else:
        recommendation = "no_majority"
    return Vote(
        claims=claims,
        sources=sources,
        groups=groups,
        verdicts=verdicts,
        majority=majority,
        recommendation=recommendation,
        trusted=trusted,
    )
