"""Writing a shipped question set: the JSONL text its generator produces, and the write-or-check step every
generator in ``scripts/`` ends with (``--check`` is how the tests prove a data file is what its generator
writes). Standard library only, so a generator runs without loading LiteLLM."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["dumps_questions", "write_or_check"]


def dumps_questions(records: Sequence[dict[str, Any]]) -> str:
    """The JSONL text: one record per line, keys in the order the generator wrote them."""
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def write_or_check(text: str, out: Path, *, check: bool, regenerate: str) -> int:
    """Write ``text`` to ``out`` (exit code 0), or with ``check`` only compare: 0 when ``out`` holds exactly
    ``text``, else 1 with a message naming the ``regenerate`` command."""
    count = len(text.splitlines())
    if check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(f"{out} is out of date: run {regenerate}", file=sys.stderr)
            return 1
        print(f"{out}: up to date ({count} records)")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({count} records)")
    return 0
