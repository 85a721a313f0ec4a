"""``litellm-fusion local setup | build-server | serve | status``: the local models from the command line.

``add_parser(commands)`` adds the ``local`` command to the main parser's subparsers; ``main(args)`` runs it
and returns the exit code (2: llama-cpp-python or a model is missing, with the fix on stderr).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from litellm_fusion.local import llama_server
from litellm_fusion.local.build import BUILD_HINT, build_llama_server, built_binary, find_llama_server, missing_build_tools
from litellm_fusion.local.models import (
    INSTALL_HINT,
    MODELS,
    LocalModelError,
    is_verified,
    model_path,
    models_dir,
    remove_model,
    setup_models,
)
from litellm_fusion.local.server import (
    BACKENDS,
    DEFAULT_N_CTX,
    DEFAULT_PORT,
    choose_backend,
    llama_cpp_available,
    local_base_url,
    serve,
    serving_backend,
)

__all__ = ["add_parser", "main"]


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``local`` command and its subcommands to ``commands`` (an argparse subparsers object)."""
    local = commands.add_parser("local", help="local llama.cpp models: setup, build-server, serve, status")
    sub = local.add_subparsers(dest="local_command", required=True)
    setup = sub.add_parser("setup", help="download the model part packages, assemble and verify the GGUFs")
    setup.add_argument("--cache-dir", help="where the GGUFs go (default $LITELLM_FUSION_MODELS or ~/.cache/litellm-fusion/models)")
    setup.add_argument("--force", action="store_true", help="delete and assemble again even when verified")
    setup.add_argument("models", nargs="*", metavar="MODEL", help=f"default: all ({', '.join(MODELS)})")
    build = sub.add_parser("build-server", help="build llama.cpp's llama-server (parallel slots) from the llama-cpp-python sdist, once")
    build.add_argument("--bin-dir", help="where the binary goes (default $LITELLM_FUSION_BIN or ~/.cache/litellm-fusion/bin)")
    build.add_argument("--jobs", type=int, help="parallel compile jobs (default: $CMAKE_BUILD_PARALLEL_LEVEL, else all cores)")
    build.add_argument("--force", action="store_true", help="build again even when a matching binary is there")
    run = sub.add_parser("serve", help="serve the local models on an OpenAI-compatible API (foreground; Ctrl-C stops it)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT} (the local preset's default base URL)")
    run.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX, help=f"context size per model (default {DEFAULT_N_CTX})")
    run.add_argument("--threads", type=int, help="CPU threads per model (default: $LITELLM_FUSION_LOCAL_THREADS, else all cores)")
    run.add_argument("--cache-dir", help="where the GGUFs are")
    run.add_argument(
        "--backend",
        choices=BACKENDS,
        help="llama-server (parallel), llama-cpp-python (one request at a time), or auto: llama-server when built "
        "(default: $LITELLM_FUSION_LOCAL_BACKEND, else auto)",
    )
    run.add_argument(
        "--slots",
        type=int,
        default=llama_server.DEFAULT_SLOTS,
        help=f"llama-server: parallel requests per model (default {llama_server.DEFAULT_SLOTS})",
    )
    run.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME|PATH|ALIAS=PATH",
        help="a known model, a GGUF path, or alias=path; repeatable (default: the known models)",
    )
    status = sub.add_parser("status", help="show which server would serve, what is serving, and whether the models are set up")
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


def _build(args: argparse.Namespace) -> int:
    missing = missing_build_tools()
    if missing and built_binary(args.bin_dir) is None:
        # Exit 2, not 1: `make local` goes on with the fallback server when the tools are missing, not when a build fails.
        print(f"llama-server: not built: {' and '.join(missing)} not found (Debian: apt-get install -y cmake g++);", file=sys.stderr)
        print(f"  `litellm-fusion local serve` falls back to llama-cpp-python's server ({INSTALL_HINT})", file=sys.stderr)
        return 2
    result = build_llama_server(args.bin_dir, jobs=args.jobs, force=args.force)
    how = f"built in {result.seconds:.0f} s" if result.built else f"already built (that build took {result.seconds:.0f} s)"
    print(f"llama-server\t{result.path}\t{how}\tllama-cpp-python {result.version} sdist")
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
        _models_arg(args.models),
        host=args.host,
        port=args.port,
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        cache_dir=args.cache_dir,
        backend=args.backend,
        slots=args.slots,
    )
    how = (
        f"llama-server, {args.slots} parallel slots per model"
        if server.backend == "llama-server"
        else "llama-cpp-python's server, one request at a time"
    )
    print(
        f"serving {', '.join(server.models)} at {server.base_url} ({how}; started in {server.started_in:.1f} s; Ctrl-C stops it)",
        flush=True,
    )
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
    binary = find_llama_server()
    print(f"llama-server: {binary if binary else f'not built ({BUILD_HINT}; needs cmake and a C++ compiler)'}")
    print(f"llama-cpp-python[server]: {'installed' if llama_cpp_available() else f'missing ({INSTALL_HINT})'}")
    try:
        backend, _ = choose_backend()
        print(f"local serve would use: {backend}" + (" (parallel slots)" if binary else " (fallback: one request at a time)"))
        ok = True
    except LocalModelError as exc:
        print(f"local serve would use: nothing: {exc}")
        ok = False
    base = local_base_url()
    found = serving_backend(base)
    if found is None:
        print(f"serving at {base}: nothing answers")
    else:
        print(f"serving at {base}: {found[0] or 'an unknown OpenAI-compatible server'} with {', '.join(found[1]) or 'no models'}")
    print(f"models in {models_dir(args.cache_dir)}:")
    for name, model in MODELS.items():
        ready = is_verified(name, args.cache_dir)
        ok = ok and ready
        print(
            f"  {name} ({model.description}): {'ready' if ready else 'missing (litellm-fusion local setup)'}  {model_path(name, args.cache_dir)}"
        )
    return 0 if ok else 2


def main(args: argparse.Namespace) -> int:
    """Run the parsed ``local`` subcommand; the exit code (2 with the fix on stderr when something is missing)."""
    try:
        return {"setup": _setup, "build-server": _build, "serve": _serve, "status": _status}[args.local_command](args)
    except LocalModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
