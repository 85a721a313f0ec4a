"""The shipped calendar question set: deterministic, and every answer recomputed by a second method."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from litellm_fusion.evaluation import grade_exact, grade_numeric, load_questions
from litellm_fusion.evaluation.configs import DATA_DIR
from litellm_fusion.evaluation.question_files import dumps_questions

ROOT = Path(__file__).resolve().parents[2]
CALENDAR = DATA_DIR / "calendar.jsonl"
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_calendar", ROOT / "scripts" / "make_calendar.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_calendar"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


# A second method, by hand, without datetime: month lengths, the Gregorian leap rule, Zeller's congruence.
def leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def month_days(year: int, month: int) -> int:
    return [31, 29 if leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]


def parse(iso: str) -> tuple[int, int, int]:
    y, m, d = iso.split("-")
    return int(y), int(m), int(d)


def add_days(iso: str, days: int) -> str:
    y, m, d = parse(iso)
    for _ in range(days):
        d += 1
        if d > month_days(y, m):
            d, m = 1, m + 1
            if m > 12:
                m, y = 1, y + 1
    return f"{y:04d}-{m:02d}-{d:02d}"


def days_from(start: str, end: str) -> int:
    count, day = 0, start
    while day != end:
        day, count = add_days(day, 1), count + 1
    return count


def zeller(iso: str) -> str:
    y, m, d = parse(iso)
    if m < 3:
        m, y = m + 12, y - 1
    h = (d + 13 * (m + 1) // 5 + y % 100 + (y % 100) // 4 + (y // 100) // 4 + 5 * (y // 100)) % 7  # 0 = Saturday
    return ["Saturday", "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday"][h]


def long_date(iso: str) -> str:
    y, m, d = parse(iso)
    return f"{MONTHS[m - 1]} {d}, {y}"


def independent_answer(template: str, p: dict) -> object:
    if template == "days_between":
        return days_from(p["start"], p["end"])
    if template == "weekday_after":
        return zeller(add_days(p["start"], p["days"]))
    if template == "due_date":
        return add_days(p["start"], p["days"])
    if template == "age":
        (by, bm, bd), (oy, om, od) = parse(p["birth"]), parse(p["on"])
        return oy - by - (1 if (om, od) < (bm, bd) else 0)
    if template == "meeting":
        return add_days(p["first"], p["every"] * (p["nth"] - 1))
    if template == "trip":
        (dh, dm), (ah, am) = (map(int, p["depart"].split(":"))), (map(int, p["arrive"].split(":")))
        return (24 * 60 - (dh * 60 + dm)) + ah * 60 + am + p["wait"] + p["bus"]
    raise AssertionError(f"unknown template {template}")


def test_generator_is_deterministic_and_matches_the_shipped_file() -> None:
    first = gen.generate()
    assert first == gen.generate()
    assert dumps_questions(first) == CALENDAR.read_text(encoding="utf-8"), "run: python scripts/make_calendar.py"
    assert gen.main(["--check", "--out", str(CALENDAR)]) == 0
    assert gen.generate(seed=1) != first
    assert gen.generate(count=12) == first[:12]


def test_every_answer_recomputes_by_a_second_method() -> None:
    records = [json.loads(line) for line in CALENDAR.read_text(encoding="utf-8").splitlines()]
    assert len(records) >= 32
    assert len({r["id"] for r in records}) == len(records) and len({r["question"] for r in records}) == len(records)
    per_template: dict[str, int] = {}
    for r in records:
        template, params = r["template"], r["params"]
        per_template[template] = per_template.get(template, 0) + 1
        assert gen.compute(template, params) == r["answer"], r["id"]
        assert independent_answer(template, params) == r["answer"], r["id"]
        assert gen.render(template, params) == r["question"], r["id"]
        for key, value in params.items():  # every parameter is stated in the question (dates in words)
            shown = long_date(value) if isinstance(value, str) and value.count("-") == 2 else str(value)
            if key != "bus":  # stated as hours and minutes
                assert shown in r["question"], (r["id"], key, shown)
        if template == "weekday_after":  # the weekday the question states is right
            assert f"is a {zeller(params['start'])}." in r["question"], r["id"]
        reply = f"Working...\nAnswer: {r['answer']}"
        if r["grader"] == "numeric":
            assert grade_numeric(reply, r["answer"]).correct
        else:
            assert r["grader"] == "exact" and grade_exact(reply, r["answer"]).correct
            assert not grade_exact("Working...\nAnswer: 1999-01-01", r["answer"]).correct
    assert set(per_template) == {"days_between", "weekday_after", "due_date", "age", "meeting", "trip"}
    assert min(per_template.values()) >= 6
    assert len(load_questions("calendar")) == len(records)
