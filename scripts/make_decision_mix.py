#!/usr/bin/env python3
"""Generate the easy-and-hard question mix for measuring ``invocation: auto`` (``litellm-fusion eval``).

Hard: the first ``--hard`` questions of the shipped multi-step ``arithmetic`` set (one per template, in file
order). Easy: one-step questions (one addition, subtraction, multiplication or exact division of small
integers) drawn from a seeded ``random.Random``; every answer is COMPUTED here, never typed, and each record
keeps ``op`` and ``params`` so a test can recompute it. Hard and easy alternate, so ``--limit N`` keeps the mix.

Usage::

    python scripts/make_decision_mix.py            # writes litellm_fusion/data/decision_mix.jsonl
    python scripts/make_decision_mix.py --check    # exit 1 if that file is not what the generator writes
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from litellm_fusion.evaluation.question_files import dumps_questions, write_or_check

DATA = Path(__file__).resolve().parent.parent / "litellm_fusion" / "data"
DEFAULT_OUT = DATA / "decision_mix.jsonl"
DEFAULT_SEED = 1313
SUFFIX = ' End your reply with a final line of the form "Answer: <number>" (the number only).'
OPS = ("add", "subtract", "multiply", "divide")


def compute(op: str, a: int, b: int) -> int:
    """The exact answer of one easy question."""
    if op == "add":
        return a + b
    if op == "subtract":
        return a - b
    if op == "multiply":
        return a * b
    if op == "divide":
        if a % b:
            raise ValueError(f"{a} / {b} is not exact")
        return a // b
    raise ValueError(f"unknown op {op!r}")


def render(op: str, a: int, b: int) -> str:
    """The question text."""
    sign = {"add": "+", "subtract": "-", "multiply": "×", "divide": "÷"}[op]
    return f"What is {a} {sign} {b}?{SUFFIX}"


def easy_question(rng: random.Random, index: int) -> dict[str, Any]:
    op = OPS[index % len(OPS)]
    if op == "divide":
        b = rng.randint(2, 12)
        a = b * rng.randint(2, 12)
    elif op == "multiply":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
    elif op == "subtract":
        a = rng.randint(20, 99)
        b = rng.randint(1, a - 1)
    else:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
    return {
        "id": f"easy-{index + 1:03d}",
        "question": render(op, a, b),
        "answer": compute(op, a, b),
        "grader": "numeric",
        "kind": "easy",
        "op": op,
        "params": {"a": a, "b": b},
    }


def build(hard: int, easy: int, seed: int) -> list[dict[str, Any]]:
    """The mix: hard and easy questions alternating (hard first), then the rest of the longer list."""
    arithmetic = [json.loads(line) for line in (DATA / "arithmetic.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    hard_questions = [{**record, "kind": "hard"} for record in arithmetic[:hard]]
    rng = random.Random(seed)
    easy_questions = [easy_question(rng, i) for i in range(easy)]
    mixed: list[dict[str, Any]] = []
    for i in range(max(len(hard_questions), len(easy_questions))):
        mixed += hard_questions[i : i + 1] + easy_questions[i : i + 1]
    return mixed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hard", type=int, default=8, help="multi-step questions from arithmetic.jsonl (default 8)")
    parser.add_argument("--easy", type=int, default=8, help="one-step questions (default 8)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    text = dumps_questions(build(args.hard, args.easy, args.seed))
    return write_or_check(text, args.out, check=args.check, regenerate="python scripts/make_decision_mix.py")


if __name__ == "__main__":
    sys.exit(main())
