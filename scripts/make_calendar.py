#!/usr/bin/env python3
"""Generate the calendar-reasoning question set used by ``litellm-fusion eval`` (``calendar``).

A second kind of question beside ``arithmetic``: dates and clock times, where the steps are month lengths,
leap years, weekdays modulo 7 and times past midnight. Every problem is drawn from a seeded
``random.Random`` (byte-for-byte deterministic output) and every answer is COMPUTED here with
``datetime``, never typed. Each record keeps its ``template`` and ``params`` so anyone can recompute the
answer (``compute``) and re-render the question (``render``); the tests recompute every answer by a second,
independent method (day counting by hand, Zeller's congruence).

Answers are numbers (``numeric`` grader), weekday names or ISO dates (``exact`` grader); each question says
which form its final ``Answer:`` line must take.

Usage::

    python scripts/make_calendar.py                 # writes litellm_fusion/data/calendar.jsonl
    python scripts/make_calendar.py --check         # exit 1 if that file is not what the generator writes
    python scripts/make_calendar.py --count 96 --seed 7 --out /tmp/more.jsonl
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litellm_fusion.evaluation.question_files import dumps_questions, write_or_check

DEFAULT_SEED = 20261201
DEFAULT_COUNT = 48
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "litellm_fusion" / "data" / "calendar.jsonl"
_STEPS = " Work it out step by step, then end your reply with a final line of the form "
SUFFIX = {
    "number": _STEPS + '"Answer: <number>" (the number only).',
    "weekday": _STEPS + '"Answer: <day of the week>" (the day\'s name only).',
    "date": _STEPS + '"Answer: YYYY-MM-DD" (the date only).',
}
NAMES = ["Ava", "Ben", "Chloe", "Diego", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ORDINALS = {3: "3rd", 4: "4th", 5: "5th", 6: "6th", 7: "7th", 8: "8th"}


def long_date(iso: str) -> str:
    """``2026-03-04`` → ``March 4, 2026`` (how the questions state dates)."""
    day = dt.date.fromisoformat(iso)
    return f"{day:%B} {day.day}, {day.year}"


def _random_date(rng: random.Random, first_year: int, last_year: int) -> dt.date:
    start, end = dt.date(first_year, 1, 1).toordinal(), dt.date(last_year, 12, 31).toordinal()
    return dt.date.fromordinal(rng.randint(start, end))


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _duration(minutes: int) -> str:
    return f"{minutes // 60} h {minutes % 60} min"


@dataclass(frozen=True)
class Template:
    """One kind of problem: how to draw its parameters, state it, and compute its answer."""

    kind: str
    """``number``, ``weekday`` or ``date``: the answer's form (and so its grader and suffix)."""
    steps: int
    sample: Callable[[random.Random], dict[str, Any]]
    render: Callable[[dict[str, Any]], str]
    compute: Callable[[dict[str, Any]], Any]


def _days_between(rng: random.Random) -> dict[str, Any]:
    first = _random_date(rng, 2023, 2028)
    return {"start": first.isoformat(), "end": (first + dt.timedelta(days=rng.randint(40, 400))).isoformat()}


def _weekday_after(rng: random.Random) -> dict[str, Any]:
    return {"start": _random_date(rng, 2024, 2029).isoformat(), "days": rng.randint(20, 500)}


def _due_date(rng: random.Random) -> dict[str, Any]:
    return {"name": rng.choice(NAMES), "start": _random_date(rng, 2024, 2029).isoformat(), "days": rng.choice([30, 45, 60, 75, 90, 100, 120])}


def _age(rng: random.Random) -> dict[str, Any]:
    birth = _random_date(rng, 1950, 2010)
    on = _random_date(rng, 2025, 2027)
    if rng.random() < 0.5:  # half the time the birthday is within a few weeks of the date: the step that trips
        try:
            on = birth.replace(year=on.year) + dt.timedelta(days=rng.choice([-9, -3, -1, 1, 4, 12]))
        except ValueError:  # born on February 29
            pass
    return {"name": rng.choice(NAMES), "birth": birth.isoformat(), "on": on.isoformat()}


def _meeting(rng: random.Random) -> dict[str, Any]:
    return {"first": _random_date(rng, 2024, 2029).isoformat(), "every": rng.randint(6, 16), "nth": rng.randint(3, 8)}


def _trip(rng: random.Random) -> dict[str, Any]:
    depart = rng.randint(19 * 60, 23 * 60 + 55) // 5 * 5
    ride = rng.randint(max(150, 24 * 60 - depart + 5), 600) // 5 * 5  # past midnight, as the question says
    return {
        "depart": _clock(depart),
        "arrive": _clock((depart + ride) % (24 * 60)),
        "wait": rng.randint(10, 70) // 5 * 5,
        "bus": rng.randint(40, 200) // 5 * 5,
    }


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _trip_total(p: dict[str, Any]) -> int:
    ride = (_minutes(p["arrive"]) - _minutes(p["depart"])) % (24 * 60)
    return ride + p["wait"] + p["bus"]


def _age_on(p: dict[str, Any]) -> int:
    birth, on = dt.date.fromisoformat(p["birth"]), dt.date.fromisoformat(p["on"])
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


TEMPLATES: dict[str, Template] = {
    "days_between": Template(
        "number",
        2,
        _days_between,
        lambda p: f"How many days are there from {long_date(p['start'])} to {long_date(p['end'])}? Count the way a "
        "calendar does: from January 1 to January 3 is 2 days.",
        lambda p: (dt.date.fromisoformat(p["end"]) - dt.date.fromisoformat(p["start"])).days,
    ),
    "weekday_after": Template(
        "weekday",
        2,
        _weekday_after,
        lambda p: f"{long_date(p['start'])} is a {WEEKDAYS[dt.date.fromisoformat(p['start']).weekday()]}. "
        f"What day of the week is it {p['days']} days later?",
        lambda p: WEEKDAYS[(dt.date.fromisoformat(p["start"]) + dt.timedelta(days=p["days"])).weekday()],
    ),
    "due_date": Template(
        "date",
        3,
        _due_date,
        lambda p: f"{p['name']} receives an invoice dated {long_date(p['start'])} that is due {p['days']} days after "
        "its date. On what date is it due?",
        lambda p: (dt.date.fromisoformat(p["start"]) + dt.timedelta(days=p["days"])).isoformat(),
    ),
    "age": Template(
        "number",
        2,
        _age,
        lambda p: f"{p['name']} was born on {long_date(p['birth'])}. How old is {p['name']}, in whole years, on "
        f"{long_date(p['on'])}?",
        _age_on,
    ),
    "meeting": Template(
        "date",
        3,
        _meeting,
        lambda p: f"A club meets every {p['every']} days. Its first meeting is on {long_date(p['first'])}. On what "
        f"date is its {ORDINALS[p['nth']]} meeting?",
        lambda p: (dt.date.fromisoformat(p["first"]) + dt.timedelta(days=p["every"] * (p["nth"] - 1))).isoformat(),
    ),
    "trip": Template(
        "number",
        4,
        _trip,
        lambda p: f"A night train leaves at {p['depart']} and arrives at {p['arrive']} (24-hour clock; it arrives the "
        f"next day). The connecting bus leaves {p['wait']} minutes after the train arrives, and the bus ride takes "
        f"{_duration(p['bus'])}. How many minutes pass from the train's departure to the bus's arrival?",
        _trip_total,
    ),
}


def compute(template: str, params: dict[str, Any]) -> Any:
    """The answer of a record (its template's compute path)."""
    return TEMPLATES[template].compute(params)


def render(template: str, params: dict[str, Any]) -> str:
    """The question text of a record, instruction suffix included."""
    t = TEMPLATES[template]
    return t.render(params) + SUFFIX[t.kind]


def grader_of(template: str) -> str:
    """``numeric`` for number answers, ``exact`` for weekday names and ISO dates."""
    return "numeric" if TEMPLATES[template].kind == "number" else "exact"


def generate(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """``count`` problems, templates in turn (so any prefix covers every template), answers computed."""
    rng = random.Random(seed)
    names = list(TEMPLATES)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index in range(count):
        name = names[index % len(names)]
        for _ in range(1000):
            params = TEMPLATES[name].sample(rng)
            question = render(name, params)
            if question not in seen:
                break
        seen.add(question)
        records.append(
            {
                "id": f"cal-{index + 1:03d}",
                "question": question,
                "answer": compute(name, params),
                "grader": grader_of(name),
                "template": name,
                "steps": TEMPLATES[name].steps,
                "params": params,
            }
        )
    return records



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"number of problems (default {DEFAULT_COUNT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSONL path (default: the packaged data file)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if --out differs from what would be written")
    args = parser.parse_args(argv)
    text = dumps_questions(generate(args.count, args.seed))
    return write_or_check(text, args.out, check=args.check, regenerate="python scripts/make_calendar.py")


if __name__ == "__main__":
    sys.exit(main())
