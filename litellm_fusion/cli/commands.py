"""The ``litellm-fusion`` command: ``demo`` (offline: local models when set up, else a scripted panel),
``ask`` (real providers), ``presets``, ``local`` (set up and serve the local models), ``eval`` and ``report``
(a saved trace as an HTML page).

Reports go to stdout, progress notes to stderr. A fusion or LiteLLM error prints ``error: <message>`` and
exits 1 (``LITELLM_FUSION_RAISE=1`` re-raises it); missing provider keys exit 2 before any call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from typing import Any

from litellm_fusion.cli.demo import DEMO_QUESTION

__all__ = ["main"]


def _missing_keys(spec: Any) -> list[str]:
    """Provider env vars the spec's members need and the environment lacks (explicit api_key skips the check)."""
    import litellm

    missing: list[str] = []
    for member in [*spec.panel, spec.judge, spec.synthesizer_or_judge]:
        key = member.api_key
        if key:  # an explicit key, or `os.environ/NAME`
            name = key.removeprefix("os.environ/")
            names = [name] if key.startswith("os.environ/") and name not in os.environ else []
        else:
            result = litellm.validate_environment(model=member.model, api_base=member.api_base)
            names = [] if result.get("keys_in_environment") else result.get("missing_keys") or []
        label = " or ".join(names)  # e.g. gemini accepts GOOGLE_API_KEY or GEMINI_API_KEY
        if label and label not in missing:
            missing.append(label)
    return missing


def _secs(ms: Any) -> str:
    return f"{ms / 1000:.2f} s" if isinstance(ms, (int, float)) else "-"


def _usd(cost: Any) -> str:
    return f"${cost:.6f}" if isinstance(cost, (int, float)) else "unpriced"


def _block(text: str, indent: str = "    ") -> str:
    lines = []
    for line in (text or "").strip().splitlines() or [""]:
        lines.extend(textwrap.wrap(line, 100, initial_indent=indent, subsequent_indent=indent) or [""])
    return "\n".join(lines)


def _report(question: str, answer: str | None, trace: dict[str, Any], wall: float, *, answer_shown: bool) -> str:
    letter_of = {model: letter for letter, model in (trace.get("letters") or {}).items()}
    who = lambda model: f"{letter_of[model]} ({model})" if model in letter_of else str(model)  # noqa: E731
    out = [f"Question\n{_block(question)}", f"\nPanel ({len(trace['panel'])} models, answers lettered as the judge saw them)"]
    width = max((len(m["model"]) for m in trace["panel"]), default=0)
    for m in trace["panel"]:
        tokens = (m.get("usage") or {}).get("total_tokens", "-")
        out.append(
            f"  [{m.get('letter') or '-'}] {m['model']:<{width}}  {m['status']:<7} {_secs(m['latency_ms']):>7}  "
            f"{tokens:>5} tokens  {_usd(m['cost'])}"
        )
        text = m.get("content") if m["status"] == "ok" else (m.get("error") or {}).get("message")
        out.append(_block(text or "(answer not exposed)", "      "))
    judge, synth, analysis = trace.get("judge") or {}, trace.get("synthesizer") or {}, trace.get("analysis")
    out.append(f"\nAnalysis (judge {judge.get('model', '-')})")
    if analysis is None:
        out.append(f"  the judge failed ({trace.get('judge_failed')}); the answer was written from the raw answers")
    else:
        sections = [
            ("Consensus", [f"- {p}" for p in analysis["consensus"]]),
            (
                "Contradictions",
                [
                    f"- {c['topic']}\n" + "\n".join(f"      {who(s['model'])}: {s['stance']}" for s in c["stances"])
                    for c in analysis["contradictions"]
                ],
            ),
            ("Partial coverage", [f"- {', '.join(map(who, p['models']))}: {p['point']}" for p in analysis["partial_coverage"]]),
            ("Unique insights", [f"- {who(u['model'])}: {u['insight']}" for u in analysis["unique_insights"]]),
            ("Blind spots", [f"- {b}" for b in analysis["blind_spots"]]),
        ]
        for title, items in sections:
            out.append(f"  {title}:" + ("" if items else " (none)"))
            out.extend(f"    {item}" for item in items)
    if not answer_shown:
        out.append(f"\nFinal answer (synthesizer {synth.get('model', '-')})\n{(answer or '').strip()}")  # verbatim
    usage, unpriced = trace.get("usage") or {}, trace.get("unpriced_models")
    panel_ms = max((m["latency_ms"] for m in trace["panel"]), default=None)
    stages = f"panel {_secs(panel_ms)}, judge {_secs(judge.get('latency_ms'))}, synthesizer {_secs(synth.get('latency_ms'))}"
    out += [
        "\nTotals",
        f"  tokens: {usage.get('total_tokens', 0)} "
        f"(prompt {usage.get('prompt_tokens', 0)}, completion {usage.get('completion_tokens', 0)})",
        f"  cost:   {trace.get('cost', 0.0):.6f} USD" + (f" (unpriced: {', '.join(unpriced)})" if unpriced else ""),
        f"  wall:   {wall:.2f} s ({stages})",
    ]
    if trace.get("degraded"):
        out.append(f"  degraded: failed models {trace.get('failed_models')}, judge_failed={trace.get('judge_failed')}")
    return "\n".join(out)


def _run(model: str, question: str, fusion: dict[str, Any], *, stream: bool, as_json: bool, html: str | None = None) -> None:
    """One fusion call through ``litellm.completion``; prints the answer (streamed if asked) and the report,
    after a live progress board on stderr when that is a terminal (not with ``--json``)."""
    import litellm

    from litellm_fusion.cli.progress_board import live_progress

    litellm.suppress_debug_info = True  # LiteLLM's "Give Feedback" banners would land in stdout
    messages = [{"role": "user", "content": question}]
    started = time.perf_counter()
    with live_progress(enabled=not as_json and sys.stderr.isatty()) as stop_board:
        answer, trace = _call(model, messages, fusion, stream=stream, as_json=as_json, stop_board=stop_board)
    if stream and trace is None:  # the spec's `expose: none` keeps the trace out of responses
        no_report = ", so no HTML report" if html else ""
        print(f"note: this stream carried no fusion trace (the spec sets expose: none){no_report}", file=sys.stderr)
        if as_json:
            print(json.dumps({"answer": answer}, indent=2))
        return
    wall = time.perf_counter() - started
    if as_json:
        print(json.dumps({**trace, "question": question, "answer": answer}, indent=2, default=str))
    else:
        print(_report(question, answer, trace, wall, answer_shown=stream))
    if html:
        from litellm_fusion.report.cli import write_trace_report

        write_trace_report(html, trace, question=question, answer=answer)


def _call(
    model: str, messages: list[dict[str, Any]], fusion: dict[str, Any], *, stream: bool, as_json: bool, stop_board: Any
) -> tuple[Any, Any]:
    """The answer and the trace (None when a stream carried none); a streamed answer is printed as it comes."""
    import litellm

    if not stream:
        response = litellm.completion(model=model, messages=messages, fusion=fusion)
        return response.choices[0].message.content, response._hidden_params["fusion"]
    parts, trace = [], None
    for chunk in litellm.completion(model=model, messages=messages, fusion=fusion, stream=True):
        delta = chunk.choices[0].delta if chunk.choices else None
        text = getattr(delta, "content", None) or ""
        if text and not as_json:
            if not parts:
                stop_board()  # the answer streams to the same terminal: the board must not redraw over it
                print(f"Final answer (streaming from {model})", flush=True)
            sys.stdout.write(text)
            sys.stdout.flush()
        if text:
            parts.append(text)
        # The trace rides on the last content chunk: as chunk.fusion and in delta.provider_specific_fields.
        found = getattr(chunk, "fusion", None) or (getattr(delta, "provider_specific_fields", None) or {}).get("fusion")
        trace = found or trace
    if not as_json:
        print("\n")
    return "".join(parts), trace


def _demo_command(args: argparse.Namespace) -> int:
    from litellm_fusion import local

    use_local = args.local or (not args.scripted and local.local_models_available())
    if use_local:
        return _local_demo(args)
    if not args.scripted:
        print(
            f"demo: the local models are not set up, so this panel is scripted; for a real fusion on local models run "
            f"`make local` (or `{local.INSTALL_HINT}` and `{local.SETUP_HINT}`)",
            file=sys.stderr,
        )
    return _scripted_demo(args)


def _local_demo(args: argparse.Namespace) -> int:
    """A real fusion on the local llama.cpp models (the ``local`` preset), on a server started for it or already running."""
    import logging

    import litellm_fusion
    from litellm_fusion import local

    # One warning per call that the zero prices are custom; the report shows the cost anyway.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    try:
        with local.running_local_server() as server:
            started = "already running there" if server.process is None else f"started in {server.started_in:.1f} s"
            how = "the panel in parallel slots" if server.backend == local.LLAMA_SERVER else "one call at a time"
            print(
                f"demo: real fusion/local on {server.backend or 'llama.cpp'} at {server.base_url} ({started}): 3 panel answers, "
                f"a judge, a synthesis, {how} on this CPU (minutes on 2 cores)",
                file=sys.stderr,
                flush=True,
            )
            litellm_fusion.register()
            # The preset reads the same base URL (the env variable, else the default) as the server was found at.
            _run("fusion/local", args.question or DEMO_QUESTION, {}, stream=args.stream, as_json=args.json, html=args.html)
    except local.LocalModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _scripted_demo(args: argparse.Namespace) -> int:
    import litellm_fusion
    from litellm_fusion.cli.demo import demo_scripts, demo_spec
    from litellm_fusion.testing import ScriptedServer

    question = args.question or DEMO_QUESTION
    if args.question:
        print("note: the demo panel is scripted; its answers are for the default question", file=sys.stderr)
    with ScriptedServer(demo_scripts()) as server:
        print(f"demo: scripted OpenAI-compatible server at {server.base_url}; real LiteLLM calls, real prices", file=sys.stderr)
        litellm_fusion.register()
        _run("fusion/demo", question, demo_spec(server.base_url), stream=args.stream, as_json=args.json, html=args.html)
    return 0


def _ask_command(args: argparse.Namespace) -> int:
    import litellm_fusion

    overrides = json.loads(args.fusion) if args.fusion else {}
    handler = litellm_fusion.register()
    spec = handler.presets.resolve(args.preset, overrides)
    missing = _missing_keys(spec)
    if missing:
        print(f"missing API keys for fusion/{args.preset}: set {', '.join(missing)}", file=sys.stderr)
        return 2
    _run(f"fusion/{args.preset}", args.question, overrides, stream=args.stream, as_json=args.json, html=args.html)
    return 0


def _presets_command(args: argparse.Namespace) -> int:
    from litellm_fusion import FusionSpec, PresetStore

    store = PresetStore()
    for name in store.names():
        spec = FusionSpec.model_validate(store.get(name))
        writer = spec.synthesizer.model if spec.synthesizer else f"{spec.judge.model} (the judge)"
        panel = ", ".join(m.model for m in spec.panel)
        print(f"{name}\n  panel:       {panel}\n  judge:       {spec.judge.model}\n  synthesizer: {writer}")
    return 0


def _local_command(args: argparse.Namespace) -> int:
    from litellm_fusion.local.cli import main as local_main

    return local_main(args)


def _report_command(args: argparse.Namespace) -> int:
    from litellm_fusion.report.cli import report_command

    return report_command(args)


def _eval_command(args: argparse.Namespace) -> int:
    from litellm_fusion.evaluation.cli import eval_command

    return eval_command(args)


def _parser() -> argparse.ArgumentParser:
    from litellm_fusion.report.cli import HTML_HELP

    parser = argparse.ArgumentParser(prog="litellm-fusion", description="Multi-model ensemble (fusion) models for LiteLLM.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run an offline fusion: on the local models when set up, else on a scripted server")
    demo.add_argument("--question", help="the question to ask (the scripted answers fit the default one)")
    backend = demo.add_mutually_exclusive_group()
    backend.add_argument("--local", action="store_true", help="use the local llama.cpp models (an error naming the fix if not set up)")
    backend.add_argument("--scripted", action="store_true", help="use the scripted server (instant), even when the local models are set up")
    ask = commands.add_parser("ask", help="run a fusion with real providers (API keys from the environment)")
    ask.add_argument("question")
    ask.add_argument("--preset", default="budget", help="preset name (default: budget)")
    ask.add_argument("--fusion", help='JSON overrides merged over the preset, e.g. \'{"judge": "openai/gpt-5.4"}\'')
    for sub in (demo, ask):
        sub.add_argument("--stream", action="store_true", help="stream the final answer as it arrives")
        sub.add_argument("--json", action="store_true", help="print the full trace (plus the question and answer) as JSON")
        sub.add_argument("--html", metavar="FILE", help=HTML_HELP)
    commands.add_parser("presets", help="list the presets (built-ins plus $LITELLM_FUSION_PRESETS)")
    from litellm_fusion.evaluation.cli import add_arguments as add_eval_arguments
    from litellm_fusion.local.cli import add_parser as add_local_parser
    from litellm_fusion.report.cli import add_parser as add_report_parser

    add_report_parser(commands)
    add_local_parser(commands)
    add_eval_arguments(
        commands.add_parser(
            "eval",
            help="measure fusion configurations against solo models on a question set",
            description="Run a JSONL question set through each configuration; print a markdown table, write JSON and a PNG plot.",
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``litellm-fusion`` and ``python -m litellm_fusion``; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "ask" and args.fusion:
        try:
            if not isinstance(json.loads(args.fusion), dict):
                raise ValueError("not an object")
        except ValueError as exc:
            print(f"error: --fusion must be a JSON object: {exc}", file=sys.stderr)
            return 2
    if args.command in ("demo", "presets", "local", "eval"):
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: no price-map download
    try:
        commands = {
            "demo": _demo_command,
            "ask": _ask_command,
            "presets": _presets_command,
            "local": _local_command,
            "eval": _eval_command,
            "report": _report_command,
        }
        return commands[args.command](args)
    except Exception as exc:
        # FusionError subclasses LiteLLM's exceptions; matching by module also covers a FusionError raised
        # while importing litellm_fusion (a bad $LITELLM_FUSION_PRESETS file), before its class is at hand.
        ours = type(exc).__module__.split(".")[0] in ("litellm", "litellm_fusion", "openai")
        if os.environ.get("LITELLM_FUSION_RAISE") == "1" or not ours:
            raise
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        if getattr(args, "html", None) and isinstance(getattr(exc, "trace", None), dict):  # a failed run's page shows who failed how
            from litellm_fusion.report.cli import write_trace_report

            question = args.question or (DEMO_QUESTION if args.command == "demo" else None)
            write_trace_report(args.html, exc.trace, question=question, answer=None, error=" ".join(str(exc).split()))
        return 1
    except KeyboardInterrupt:
        return 130
