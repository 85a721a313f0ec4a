#!/usr/bin/env python3
"""Generate the multi-step arithmetic question set used by ``litellm-fusion eval``.

Every problem is drawn from a seeded ``random.Random``, so the output is byte-for-byte deterministic, and
every answer is COMPUTED here with exact rational arithmetic (``fractions.Fraction``), never typed. Each
record keeps the ``template`` and the ``params`` it was drawn from, so anyone can recompute the answer
(``compute(template, params)``) and re-render the question (``render(template, params)``); the tests do.

Parameters are re-drawn until the exact answer is an integer or has at most two decimals, so no rounding
convention can make a correct answer look wrong.

Usage::

    python scripts/make_arithmetic.py                 # writes litellm_fusion/data/arithmetic.jsonl
    python scripts/make_arithmetic.py --check         # exit 1 if that file is not what the generator writes
    python scripts/make_arithmetic.py --count 96 --seed 7 --out /tmp/more.jsonl
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from litellm_fusion.evaluation.question_files import dumps_questions, write_or_check

DEFAULT_SEED = 20250611
DEFAULT_COUNT = 64
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "litellm_fusion" / "data" / "arithmetic.jsonl"
SUFFIX = ' Work it out step by step, then end your reply with a final line of the form "Answer: <number>" (the number only, no units).'

NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Diego",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Priya",
    "Omar",
]


# ----- number formatting (used by the question text only; answers stay exact) ---------------------------


def q(value: Any) -> Fraction:
    """An exact rational from an int or a decimal string ("12.25")."""
    return Fraction(value)


def fmt(value: Any) -> str:
    """A number as a person writes it: 12, 12.5, 0.75 (exact; at most a few decimals)."""
    x = Fraction(value)
    if x.denominator == 1:
        return str(x.numerator)
    for places in range(1, 7):
        scaled = x * 10**places
        if scaled.denominator == 1:
            return f"{float(x):.{places}f}"
    raise ValueError(f"{value} has no short decimal form")


def money(value: Any) -> str:
    """Dollars with cents: $12.50."""
    x = Fraction(value)
    if (x * 100).denominator != 1:
        raise ValueError(f"{value} is not a whole number of cents")
    return f"${float(x):,.2f}"


def is_answer(x: Fraction) -> bool:
    """Integer, or exact with at most two decimals."""
    return (x * 100).denominator == 1


def as_json_number(x: Fraction) -> int | float:
    """The answer as it goes into the JSONL file: an int, or a float with at most two decimals."""
    if x.denominator == 1:
        return x.numerator
    return round(float(x), 2)


# ----- templates ------------------------------------------------------------------------------------------
# Each template: sample(rng) -> params (JSON-safe: ints and decimal strings), compute(params) -> Fraction,
# render(params) -> question text. compute and render read only params, so a record alone recomputes.


@dataclass(frozen=True)
class Template:
    name: str
    sample: Callable[[random.Random, str], dict[str, Any]]
    compute: Callable[[dict[str, Any]], Fraction]
    render: Callable[[dict[str, Any]], str]
    variants: dict[str, int]
    """Variant name -> the number of arithmetic steps it takes (2-4); variants are used in turn."""


def _cents(rng: random.Random, low: int, high: int, step: int = 25) -> str:
    """A price between low and high cents, on a multiple of ``step`` cents, as a decimal string."""
    cents = rng.randrange(low, high + 1, step)
    return f"{cents // 100}.{cents % 100:02d}"


# 1. Shopping: two items, a percent discount on the whole purchase, an optional coupon, then sales tax.
SHOP_ITEMS = [("notebooks", "pens"), ("shirts", "socks"), ("mugs", "teabags"), ("books", "bookmarks"), ("plants", "pots")]


def shop_sample(rng: random.Random, variant: str) -> dict[str, Any]:
    item1, item2 = rng.choice(SHOP_ITEMS)
    return {
        "variant": variant,
        "name": rng.choice(NAMES),
        "item1": item1,
        "qty1": rng.randint(2, 6),
        "price1": _cents(rng, 200, 2500),
        "item2": item2,
        "qty2": rng.randint(2, 12),
        "price2": _cents(rng, 50, 900),
        "discount_pct": rng.choice([10, 15, 20, 25, 30]),
        "tax_pct": rng.choice([4, 5, 6, 8, 10]),
        **({"coupon": rng.choice([2, 5, 10])} if variant == "coupon" else {}),
    }


def shop_compute(p: dict[str, Any]) -> Fraction:
    subtotal = p["qty1"] * q(p["price1"]) + p["qty2"] * q(p["price2"])
    discounted = subtotal * (100 - p["discount_pct"]) / 100 - p.get("coupon", 0)
    return discounted * (100 + p["tax_pct"]) / 100


def shop_render(p: dict[str, Any]) -> str:
    coupon = f" After the discount, {p['name']} uses a {money(p['coupon'])} coupon." if p.get("coupon") else ""
    return (
        f"{p['name']} buys {p['qty1']} {p['item1']} at {money(p['price1'])} each and {p['qty2']} {p['item2']} at "
        f"{money(p['price2'])} each. The store takes {p['discount_pct']}% off the whole purchase.{coupon} Then "
        f"{p['tax_pct']}% sales tax is added to the amount due. How much does {p['name']} pay in total, in dollars?"
    )


# 2. Rates, time and distance.
def travel_sample(rng: random.Random, variant: str) -> dict[str, Any]:
    if variant == "average_speed":
        return {"variant": variant, "vehicle": rng.choice(["train", "bus", "car"]), "d1": rng.randrange(30, 241, 10),
                "v1": rng.choice([40, 50, 60, 75, 80, 90, 100, 120]), "d2": rng.randrange(30, 241, 10),
                "v2": rng.choice([40, 50, 60, 75, 80, 90, 100, 120])}  # fmt: skip
    if variant == "total_distance":
        return {"variant": variant, "name": rng.choice(NAMES), "h1": rng.choice(["1", "1.5", "2", "2.5", "3"]),
                "v1": rng.randrange(12, 31), "m2": rng.choice([15, 20, 30, 40, 45, 50]), "v2": rng.randrange(6, 19)}  # fmt: skip
    return {"variant": variant, "name": rng.choice(NAMES), "d": rng.randrange(20, 301, 5), "v": rng.choice([40, 48, 50, 60, 64, 75, 80, 96, 100]),
            "stop": rng.choice([10, 15, 20, 25, 30])}  # fmt: skip


def travel_compute(p: dict[str, Any]) -> Fraction:
    if p["variant"] == "average_speed":
        hours = Fraction(p["d1"], p["v1"]) + Fraction(p["d2"], p["v2"])
        return (p["d1"] + p["d2"]) / hours
    if p["variant"] == "total_distance":
        return q(p["h1"]) * p["v1"] + Fraction(p["m2"], 60) * p["v2"]
    return Fraction(p["d"], p["v"]) * 60 + p["stop"]


def travel_render(p: dict[str, Any]) -> str:
    if p["variant"] == "average_speed":
        return (
            f"A {p['vehicle']} travels {p['d1']} km at {p['v1']} km/h, then another {p['d2']} km at {p['v2']} km/h. "
            f"What is its average speed over the whole trip, in km/h?"
        )
    if p["variant"] == "total_distance":
        return (
            f"{p['name']} cycles for {fmt(p['h1'])} hours at {p['v1']} km/h, then walks the bike for {p['m2']} minutes "
            f"at {p['v2']} km/h. How many kilometers does {p['name']} cover in total?"
        )
    return (
        f"{p['name']} drives {p['d']} km at a steady {p['v']} km/h and stops once for a {p['stop']}-minute break. "
        f"How many minutes does the whole trip take, break included?"
    )


# 3. Recipe scaling.
DISHES = ["pancakes", "muffins", "cookies", "bread rolls", "waffles"]


def recipe_sample(rng: random.Random, variant: str) -> dict[str, Any]:
    base = rng.choice([4, 6, 8, 10, 12])
    params = {"variant": variant, "name": rng.choice(NAMES), "dish": rng.choice(DISHES), "base": base,
              "target": rng.choice([n for n in (3, 5, 9, 10, 15, 18, 20, 25, 30, 36) if n != base]),
              "flour": rng.randrange(150, 601, 25), "butter": rng.randrange(40, 201, 10)}  # fmt: skip
    if variant == "leftover":
        params.update(bag=rng.choice([500, 1000]), bags=rng.randint(2, 4))
    return params


def recipe_compute(p: dict[str, Any]) -> Fraction:
    scale = Fraction(p["target"], p["base"])
    if p["variant"] == "combined":
        return (p["flour"] + p["butter"]) * scale
    return p["bags"] * p["bag"] - p["flour"] * scale


def recipe_render(p: dict[str, Any]) -> str:
    head = (
        f"A recipe for {p['base']} {p['dish']} uses {p['flour']} grams of flour and {p['butter']} grams of butter. "
        f"{p['name']} wants to make {p['target']} {p['dish']}, scaling every ingredient in proportion."
    )
    if p["variant"] == "combined":
        return head + " How many grams of flour and butter together does that take?"
    return head + f" {p['name']} has {p['bags']} full {p['bag']}-gram bags of flour. How many grams of flour are left afterwards?"


# 4. Ages.
def ages_sample(rng: random.Random, variant: str) -> dict[str, Any]:
    a, b = rng.sample(NAMES, 2)
    if variant == "times_and_difference":
        k = rng.randint(2, 5)
        difference = (k - 1) * rng.randint(3, 16)  # the younger one's age times (k - 1): whole ages
        return {"variant": variant, "a": a, "b": b, "k": k, "difference": difference, "years": rng.randint(2, 15)}
    return {"variant": variant, "a": a, "b": b, "gap": rng.randint(4, 30), "ago": rng.randint(1, 12)}


def ages_compute(p: dict[str, Any]) -> Fraction:
    if p["variant"] == "times_and_difference":
        # old = k * young and old - young = difference, so young = difference / (k - 1); the sum in `years` years.
        young = Fraction(p["difference"], p["k"] - 1)
        return young + p["k"] * young + 2 * p["years"]
    # a = b + gap and a - ago = 2 (b - ago)  =>  b = gap + ago; the answer is a's age now.
    b = p["gap"] + p["ago"]
    return Fraction(b + p["gap"])


def ages_render(p: dict[str, Any]) -> str:
    if p["variant"] == "times_and_difference":
        return (
            f"{p['a']} is {p['k']} times as old as {p['b']}, and {p['a']} is {p['difference']} years older than {p['b']}. "
            f"What will the sum of their ages be in {p['years']} years?"
        )
    return (
        f"{p['a']} is {p['gap']} years older than {p['b']}. {p['ago']} years ago, {p['a']} was exactly twice as old as "
        f"{p['b']}. How old is {p['a']} now?"
    )


# 5. Percentages of percentages.
def percent_sample(rng: random.Random, variant: str) -> dict[str, Any]:
    if variant == "nested_counts":
        return {"variant": variant, "total": rng.randrange(400, 5001, 100), "p1": rng.choice([20, 25, 30, 40, 45, 60, 75, 80]),
                "p2": rng.choice([10, 20, 25, 40, 50, 60]), "p3": rng.choice([10, 20, 25, 50, 75])}  # fmt: skip
    if variant == "successive_price":
        return {"variant": variant, "item": rng.choice(["jacket", "bicycle", "lamp", "printer"]), "price": _cents(rng, 2000, 30000, 100),
                "up": rng.choice([5, 10, 15, 20, 25, 40]), "down": rng.choice([5, 10, 20, 25, 30, 40])}  # fmt: skip
    return {"variant": variant, "up": rng.choice([10, 15, 20, 25, 30]), "down": rng.choice([15, 20, 25, 30, 40])}  # mostly a net decrease


def percent_compute(p: dict[str, Any]) -> Fraction:
    if p["variant"] == "nested_counts":
        return Fraction(p["total"]) * p["p1"] / 100 * p["p2"] / 100 * p["p3"] / 100
    factor = Fraction(100 + p["up"], 100) * Fraction(100 - p["down"], 100)
    if p["variant"] == "successive_price":
        return q(p["price"]) * factor
    return (factor - 1) * 100


def percent_render(p: dict[str, Any]) -> str:
    if p["variant"] == "nested_counts":
        return (
            f"A town has {p['total']} households. {p['p1']}% of them have a garden. Of the households with a garden, "
            f"{p['p2']}% grow vegetables, and of those, {p['p3']}% also keep chickens. How many households keep chickens?"
        )
    if p["variant"] == "successive_price":
        return (
            f"A {p['item']} costs {money(p['price'])}. Its price is raised by {p['up']}%, and later the new price is cut "
            f"by {p['down']}%. What is the final price, in dollars?"
        )
    return (
        f"A share price rises by {p['up']}% on Monday and then falls by {p['down']}% on Tuesday. What is the overall "
        f"percentage change over the two days (negative for a decrease)?"
    )


# 6. Unit conversions (the conversion factor is always given in the question).
def units_sample(rng: random.Random, variant: str) -> dict[str, Any]:
    if variant == "laps_km":
        return {"variant": variant, "name": rng.choice(NAMES), "laps": rng.randint(3, 12), "track": rng.choice([200, 250, 400, 500]),
                "days": rng.randint(3, 14)}  # fmt: skip
    if variant == "tank_minutes":
        return {"variant": variant, "gallons": rng.randrange(20, 201, 10), "rate": rng.choice([5, 8, 10, 20, 25, 50])}
    return {"variant": variant, "miles": rng.randrange(10, 201, 5), "speed": rng.choice([40, 50, 60, 80, 100, 120])}


def units_compute(p: dict[str, Any]) -> Fraction:
    if p["variant"] == "laps_km":
        return Fraction(p["laps"] * p["track"] * p["days"], 1000)
    if p["variant"] == "tank_minutes":
        return p["gallons"] * q("3.785") / p["rate"]
    return p["miles"] * q("1.6") / p["speed"] * 60


def units_render(p: dict[str, Any]) -> str:
    if p["variant"] == "laps_km":
        return (
            f"{p['name']} runs {p['laps']} laps of a {p['track']}-meter track every day for {p['days']} days. "
            f"How many kilometers does {p['name']} run in total?"
        )
    if p["variant"] == "tank_minutes":
        return (
            f"An empty tank holds {p['gallons']} gallons, and one gallon is 3.785 liters. A pump moves {p['rate']} liters "
            f"per minute. How many minutes does the pump take to fill the tank?"
        )
    return (
        f"A road is {p['miles']} miles long; take one mile to be 1.6 km. A car drives its whole length at {p['speed']} km/h. "
        f"How many minutes does that take?"
    )


# 7. Averages.
def averages_sample(rng: random.Random, variant: str) -> dict[str, Any]:
    if variant == "next_score":
        k = rng.randint(3, 5)
        return {
            "variant": variant,
            "name": rng.choice(NAMES),
            "scores": [rng.randint(55, 98) for _ in range(k)],
            "target": rng.randint(70, 90),
        }
    if variant == "combined_classes":
        return {
            "variant": variant,
            "n1": rng.randint(12, 35),
            "m1": rng.randint(55, 95),
            "n2": rng.randint(12, 35),
            "m2": rng.randint(55, 95),
        }
    return {"variant": variant, "count": rng.choice([5, 6, 8, 10]), "mean": rng.randint(12, 80), "removed": rng.randint(1, 99)}


def averages_compute(p: dict[str, Any]) -> Fraction:
    if p["variant"] == "next_score":
        return Fraction(p["target"] * (len(p["scores"]) + 1) - sum(p["scores"]))
    if p["variant"] == "combined_classes":
        return Fraction(p["n1"] * p["m1"] + p["n2"] * p["m2"], p["n1"] + p["n2"])
    return Fraction(p["count"] * p["mean"] - p["removed"], p["count"] - 1)


def averages_render(p: dict[str, Any]) -> str:
    if p["variant"] == "next_score":
        scores = ", ".join(map(str, p["scores"][:-1])) + f" and {p['scores'][-1]}"
        n = len(p["scores"])
        return (
            f"{p['name']} scored {scores} on the first {n} tests. What score does {p['name']} need on test {n + 1} "
            f"for the average of all {n + 1} tests to be exactly {p['target']}?"
        )
    if p["variant"] == "combined_classes":
        return (
            f"One class of {p['n1']} students averaged {p['m1']} points on an exam, and another class of {p['n2']} "
            f"students averaged {p['m2']} points. What is the average score of all the students together?"
        )
    return (
        f"The average of {p['count']} numbers is {p['mean']}. One of the numbers, {p['removed']}, is removed. "
        f"What is the average of the remaining numbers?"
    )


# 8. Work split.
def work_sample(rng: random.Random, variant: str) -> dict[str, Any]:
    a, b, c = rng.sample(NAMES, 3)
    if variant == "together":
        return {"variant": variant, "a": a, "b": b, "ta": rng.randint(2, 12), "tb": rng.randint(2, 15), "task": rng.choice(["paint a fence", "clean the house", "mow the lawn"])}  # fmt: skip
    if variant == "pay_share":
        return {"variant": variant, "a": a, "b": b, "c": c, "pay": rng.randrange(300, 3001, 50),
                "hours": [rng.randint(3, 20) for _ in range(3)]}  # fmt: skip
    fill = rng.randint(2, 10)
    return {"variant": variant, "fill": fill, "drain": rng.randint(fill + 1, 24)}  # the drain is slower than the pipe


def work_compute(p: dict[str, Any]) -> Fraction:
    if p["variant"] == "together":
        return 1 / (Fraction(1, p["ta"]) + Fraction(1, p["tb"]))
    if p["variant"] == "pay_share":
        return Fraction(p["pay"] * p["hours"][1], sum(p["hours"]))
    return 1 / (Fraction(1, p["fill"]) - Fraction(1, p["drain"]))


def work_render(p: dict[str, Any]) -> str:
    if p["variant"] == "together":
        return (
            f"{p['a']} can {p['task']} alone in {p['ta']} hours, and {p['b']} can do it alone in {p['tb']} hours. "
            f"Working together at those rates, how many hours do they take?"
        )
    if p["variant"] == "pay_share":
        h1, h2, h3 = p["hours"]
        return (
            f"{p['a']}, {p['b']} and {p['c']} share a payment of ${p['pay']} in proportion to the hours they worked: "
            f"{h1}, {h2} and {h3} hours respectively. How many dollars does {p['b']} receive?"
        )
    return (
        f"A pipe fills an empty pool in {p['fill']} hours, and a drain empties a full pool in {p['drain']} hours. "
        f"With the pipe and the drain both open, how many hours does it take to fill the empty pool?"
    )


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template("shopping", shop_sample, shop_compute, shop_render, {"discount_tax": 3, "coupon": 4}),
        Template("travel", travel_sample, travel_compute, travel_render, {"average_speed": 4, "total_distance": 3, "trip_minutes": 3}),
        Template("recipe", recipe_sample, recipe_compute, recipe_render, {"combined": 2, "leftover": 3}),
        Template("ages", ages_sample, ages_compute, ages_render, {"times_and_difference": 4, "twice_ago": 3}),
        Template(
            "percentages", percent_sample, percent_compute, percent_render, {"nested_counts": 3, "successive_price": 2, "net_change": 3}
        ),
        Template("units", units_sample, units_compute, units_render, {"laps_km": 2, "tank_minutes": 2, "miles_minutes": 3}),
        Template("averages", averages_sample, averages_compute, averages_render, {"next_score": 3, "combined_classes": 3, "remove_one": 3}),
        Template("work", work_sample, work_compute, work_render, {"together": 3, "pay_share": 3, "fill_and_drain": 3}),
    ]
}


def compute(template: str, params: dict[str, Any]) -> Fraction:
    """The exact answer of a record (its template's compute path)."""
    return TEMPLATES[template].compute(params)


def render(template: str, params: dict[str, Any]) -> str:
    """The question text of a record, instruction suffix included."""
    return TEMPLATES[template].render(params) + SUFFIX


def _acceptable(params: dict[str, Any], answer: Fraction) -> bool:
    """Integer or two decimals, not zero, of a sensible size; negative only where a decrease is asked for."""
    if not is_answer(answer) or answer == 0 or abs(answer) >= 100_000:
        return False
    if params["variant"] == "next_score" and answer > 100:  # a test score above 100 is not a real question
        return False
    return answer > 0 or params["variant"] == "net_change"


def generate(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """``count`` problems, templates in turn (so any prefix covers every template), answers computed exactly."""
    rng = random.Random(seed)
    names = list(TEMPLATES)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index in range(count):
        template = TEMPLATES[names[index % len(names)]]
        round_ = index // len(names)  # the template's variants are used in turn, round after round
        variant = list(template.variants)[round_ % len(template.variants)]
        for _ in range(10_000):
            params = template.sample(rng, variant)
            answer = template.compute(params)
            text = render(template.name, params)
            if text not in seen and _acceptable(params, answer):
                break
        else:  # pragma: no cover - the parameter ranges make this unreachable
            raise RuntimeError(f"template {template.name}: no parameters with an exact answer after 10000 draws")
        seen.add(text)
        records.append(
            {
                "id": f"arith-{index + 1:03d}",
                "question": text,
                "answer": as_json_number(answer),
                "grader": "numeric",
                "template": template.name,
                "steps": template.variants[variant],
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
    return write_or_check(text, args.out, check=args.check, regenerate="python scripts/make_arithmetic.py")


if __name__ == "__main__":
    sys.exit(main())
