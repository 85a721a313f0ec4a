"""Reading the prompts fusion sends upstream: which stage a call is, and the answers it quotes.

A fake upstream (a :class:`~litellm_fusion.testing.Script` text function, or a
:class:`~litellm_fusion.testing.FakeCompletion` reply) sees every nested call of a fusion and often needs to
know which one it is. The format is written by ``litellm_fusion._engine.prompts``; this module parses it with
the parts that module exposes (``ANSWER_OPEN``, ``ANSWER_CLOSE``, ``STAGE_SYSTEMS``), so a change to the
format there is a change here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from litellm_fusion._engine import prompts

__all__ = ["Stage", "stage_of", "answer_blocks", "nonce_of", "scripted_analysis"]

Stage = Literal["panel", "judge", "repair", "synthesizer"]
"""The stage a nested call belongs to: a panel member's answer, the judge's analysis, the judge's repair of
an analysis that was not valid JSON, or the final answer (the synthesizer, or the judge's model writing in
its place)."""


def _opening(template: str) -> str:
    # The text before the first format field is the same in every rendering of the template.
    return template.split("{", 1)[0]


_OPENINGS = [(stage, _opening(template)) for stage, templates in prompts.STAGE_SYSTEMS.items() for template in templates]


def _as_regex(template: str, **groups: str) -> str:
    """The template as a regex matching it literally, with each format field replaced by its group."""
    pattern = re.escape(template)
    for name, group in groups.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), group)
    return pattern


def _block_pattern() -> re.Pattern[str]:
    opening = _as_regex(prompts.ANSWER_OPEN, letter=r"(?P<letter>[A-Z])", nonce=r"(?P<nonce>\w+)")
    closing = _as_regex(prompts.ANSWER_CLOSE, letter=r"(?P=letter)", nonce=r"(?P=nonce)")
    # The writer puts each answer on its own lines between the two delimiters.
    return re.compile(f"{opening}\n(?P<text>.*?)\n{closing}", re.S)


_BLOCK = _block_pattern()


def _messages(request: Any) -> list[dict[str, Any]]:
    """The messages of a RecordedRequest, a request body or call kwargs (a mapping), or a message list."""
    body = getattr(request, "body", request)  # a RecordedRequest carries the parsed body
    messages = (body.get("messages") or []) if isinstance(body, Mapping) else body
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        raise TypeError(
            f"expected a request (a RecordedRequest, a body or call kwargs with 'messages') or a message list, got {type(request).__name__}"
        )
    return [m for m in messages if isinstance(m, Mapping)]


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(prompts.content_text(m.get("content")) for m in _messages(prompt))


def stage_of(request: Any) -> Stage:
    """Which stage sent this nested call: ``"panel"``, ``"judge"``, ``"repair"`` or ``"synthesizer"``.

    ``request`` is a :class:`~litellm_fusion.testing.RecordedRequest`, a request body or the keyword arguments
    of a completion call (a mapping with ``messages``), or the message list itself. The judge, its repair and
    the synthesizer open with fusion's own system message; anything else is a panel member's call.
    """
    messages = _messages(request)
    first = messages[0] if messages else {}
    if first.get("role") == "system":
        system = prompts.content_text(first.get("content"))
        for stage, opening in _OPENINGS:
            if system.startswith(opening):
                return stage  # type: ignore[return-value]  # the keys of STAGE_SYSTEMS
    return "panel"


def answer_blocks(prompt: Any, *, nonce: str | None = None) -> dict[str, str]:
    """The panel answers quoted in a judge or synthesizer prompt: letter -> the answer's text, in letter order.

    ``prompt`` is the prompt text or a request (as for :func:`stage_of`; then every message is read). Only
    blocks marked with ``nonce`` count; without it, the nonce of the first block found. Text inside an answer
    that imitates a delimiter stays part of that answer, as the judge sees it. A panel call quotes none: ``{}``.
    """
    text = _prompt_text(prompt)
    blocks: dict[str, str] = {}
    for match in _BLOCK.finditer(text):
        nonce = nonce or match["nonce"]
        if match["nonce"] == nonce:
            blocks.setdefault(match["letter"], match["text"])
    return dict(sorted(blocks.items()))


def nonce_of(prompt: Any) -> str | None:
    """The per-request delimiter nonce of a judge or synthesizer prompt (as for :func:`answer_blocks`), or None."""
    match = _BLOCK.search(_prompt_text(prompt))
    return match["nonce"] if match else None


def scripted_analysis(
    letters: Iterable[str],
    *,
    consensus: Sequence[str] = ("the answers agree",),
    topic: str = "detail",
    point: str = "a point",
    insight: str = "an insight",
    blind_spots: Sequence[str] = ("none",),
) -> str:
    """A valid judge analysis (the JSON text a judge replies with) that names every answer by its letter.

    ``letters`` are the answers' letters, e.g. ``answer_blocks(request)`` for the answers the judge was shown
    (``"A"`` when there are none). The analysis has ``consensus``; one contradiction on ``topic`` with a
    stance ``"stance <letter>"`` per answer; ``point`` made by the first two answers only; ``insight`` from
    the first answer; and ``blind_spots``.
    """
    found = sorted(letters) or ["A"]
    return json.dumps(
        {
            "consensus": list(consensus),
            "contradictions": [{"topic": topic, "stances": [{"model": x, "stance": f"stance {x}"} for x in found]}],
            "partial_coverage": [{"models": found[:2], "point": point}],
            "unique_insights": [{"model": found[0], "insight": insight}],
            "blind_spots": list(blind_spots),
        }
    )
