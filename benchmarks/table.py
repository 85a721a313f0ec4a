"""The run's markdown table: one row per case, each measurement contributing its own rows."""

from __future__ import annotations

from typing import Any

__all__ = ["Row", "row", "ms", "signed", "render"]

Row = tuple[str, str, str, str, str, str, str]
"""(section, case, n, p50 ms, p99 ms, reference (ms), result), already formatted."""

HEAD = ("§", "case", "n", "p50 ms", "p99 ms", "reference (ms)", "result")


def ms(value: Any) -> str:
    """A duration in ms: no decimals from 100 up, one below; "–" for None."""
    return "–" if value is None else f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def signed(value: Any) -> str:
    """Like :func:`ms`, with a sign."""
    return "–" if value is None else f"{value:+,.0f}" if abs(value) >= 100 else f"{value:+,.1f}"


def row(section: str, case: str, n: Any, p50: Any, p99: Any, reference: str, result: str) -> Row:
    """One formatted row; ``p50`` and ``p99`` in ms (None shows as "–")."""
    return (section, case, str(n), ms(p50), ms(p99), reference, result)


def render(meta: dict[str, Any], rows: list[Row]) -> str:
    """The machine line, then the table."""
    lines = [
        f"Machine: nproc={meta['nproc']}, loadavg {meta['loadavg_at_start']} → {meta.get('loadavg_at_end')}, Python {meta['python']}, "
        f"LiteLLM {meta['litellm']}, commit {meta['git_commit']}, {'--quick' if meta['quick'] else 'full'} run, "
        f"latency scale {meta['latency_scale']}, upstream: ScriptedServer in a separate **{meta['server_mode']}**"
        + (
            " (benchmarks/upstream.py child process, own GIL and event loop)"
            if meta["server_mode"] == "process"
            else " (thread of the driver process)"
        ),
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "|".join("---" for _ in HEAD) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
    return "\n".join(lines)
