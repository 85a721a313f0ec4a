"""What the local llama.cpp server does with the judge's structured-output requests.

Sends one chat request per ``response_format`` variant (json_schema, json_object + schema, json_object,
none) to the real server, directly with httpx and through ``litellm.acompletion``, and prints per request:
accepted or rejected (status and error text), whether the reply parses as JSON, and whether it fits the
judge's analysis schema. Starts the server itself unless ``--base-url`` points at a running one.

    python scripts/probe_structured_output.py [--base-url http://127.0.0.1:8765/v1] [--model qwen2.5-coder-1.5b] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402

from litellm_fusion import local  # noqa: E402
from litellm_fusion._engine.judge import ANALYSIS_SCHEMA, parse_analysis  # noqa: E402

MESSAGES = [
    {
        "role": "system",
        "content": "Compare the answers. Reply with one JSON object with the keys consensus, contradictions, partial_coverage, "
        'unique_insights, blind_spots (lists; contradictions items are {"topic", "stances": [{"model", "stance"}]}, '
        'partial_coverage items {"models", "point"}, unique_insights items {"model", "insight"}).',
    },
    {
        "role": "user",
        "content": "Question: what is 12 * 13?\nAnswer A: 156.\nAnswer B: 12 * 13 = 146.\nAnswer C: 156, since 12 * 13 = 120 + 36.",
    },
]
VARIANTS: dict[str, dict[str, Any] | None] = {
    "json_schema": {"type": "json_schema", "json_schema": {"name": "fusion_analysis", "schema": ANALYSIS_SCHEMA, "strict": True}},
    "json_object+schema": {"type": "json_object", "schema": ANALYSIS_SCHEMA},
    "json_object": {"type": "json_object"},
    "none": None,
}


def _verdict(text: str) -> dict[str, Any]:
    try:
        json.loads(text)
        valid = True
    except ValueError:
        valid = False
    try:
        parse_analysis(text)
        fits = True
    except ValueError:
        fits = False
    return {"valid_json": valid, "fits_schema": fits, "chars": len(text), "head": text[:160]}


def probe_httpx(base_url: str, model: str, max_tokens: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(timeout=600, trust_env=False) as client:
        for name, fmt in VARIANTS.items():
            body: dict[str, Any] = {"model": model, "messages": MESSAGES, "temperature": 0, "max_tokens": max_tokens}
            if fmt is not None:
                body["response_format"] = fmt
            started = time.perf_counter()
            r = client.post(base_url + "/chat/completions", json=body, headers={"Authorization": "Bearer sk-local"})
            row: dict[str, Any] = {"status": r.status_code, "seconds": round(time.perf_counter() - started, 1)}
            if r.status_code == 200:
                data = r.json()
                row.update(_verdict(data["choices"][0]["message"]["content"] or ""))
                row["finish_reason"] = data["choices"][0].get("finish_reason")
                row["completion_tokens"] = (data.get("usage") or {}).get("completion_tokens")
            else:
                row["error"] = r.text[:600]
            out[name] = row
    return out


async def probe_litellm(base_url: str, model: str, max_tokens: int) -> dict[str, Any]:
    import litellm

    out: dict[str, Any] = {}
    for name, fmt in VARIANTS.items():
        kwargs: dict[str, Any] = {"model": f"openai/{model}", "api_base": base_url, "api_key": "sk-local", "messages": MESSAGES}
        kwargs.update(temperature=0, max_tokens=max_tokens, num_retries=0, max_retries=0)
        if fmt is not None:
            kwargs["response_format"] = fmt
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:  # report exactly what the caller sees
            out[name] = {
                "accepted": False,
                "exception": type(exc).__name__,
                "status": getattr(exc, "status_code", None),
                "error": " ".join(str(exc).split())[:600],
                "seconds": round(time.perf_counter() - started, 1),
            }
            continue
        row = {"accepted": True, "seconds": round(time.perf_counter() - started, 1), **_verdict(response.choices[0].message.content or "")}
        row["finish_reason"] = response.choices[0].finish_reason
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server (default: start one on a free port)")
    parser.add_argument("--model", default=local.LARGE)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    server = None
    if args.base_url:
        base = args.base_url.rstrip("/")
    else:
        server = local.serve([args.model], port=None)
        base = server.base_url
        print(f"server started in {server.started_in:.1f} s at {base}", file=sys.stderr)
    try:
        import llama_cpp

        results = {
            "llama_cpp_python": llama_cpp.__version__,
            "model": args.model,
            "httpx": probe_httpx(base, args.model, args.max_tokens),
            "litellm": asyncio.run(probe_litellm(base, args.model, args.max_tokens)),
        }
    finally:
        if server is not None:
            server.stop()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
