"""Run a ScriptedServer in the foreground.

    python -m litellm_fusion.testing --port 8000 --scripts scripts.yaml

Prints the base URL on one line, then serves until SIGTERM or SIGINT. Without
``--scripts`` every model answers "ok".
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from litellm_fusion.testing.server import Script, ScriptedServer, load_scripts


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve until a termination signal arrives, return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m litellm_fusion.testing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (default 8000)")
    parser.add_argument("--scripts", help="YAML file: model name -> Script fields or a list of them; optional 'default'")
    args = parser.parse_args(argv)

    scripts, default = load_scripts(args.scripts) if args.scripts else ({}, Script())
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with ScriptedServer(scripts, default=default, host=args.host, port=args.port) as server:
        print(server.base_url, flush=True)  # one line, so wrappers can read the URL
        # Short timed waits keep the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
