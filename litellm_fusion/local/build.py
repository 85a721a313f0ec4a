"""Build llama.cpp's own ``llama-server`` from the sources that the llama-cpp-python sdist vendors.

llama-cpp-python's server runs one request at a time and samples in Python; ``llama-server`` (C++, in
``vendor/llama.cpp/tools/server`` of the same sdist) serves parallel slots with continuous batching. Using
the sdist of the llama-cpp-python version installed here (else the one ``constraints.txt`` pins) means the
same llama.cpp, from the same registry, with no other download: ``-DLLAMA_USE_PREBUILT_UI=OFF`` keeps the
build from fetching its web UI archive. Only the ``llama-server`` target is built, statically linked, so
the result is one file: ``~/.cache/litellm-fusion/bin/llama-server`` (``$LITELLM_FUSION_BIN`` moves it),
beside a JSON stamp recording the version, the CMake flags and how long the build took. A binary whose
stamp matches is not built again.

The work tree (``<cache>/build/llama.cpp-<version>``) survives a failed build, so running it again resumes
where CMake stopped; it is deleted once the binary is in place. Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from litellm_fusion.local.models import LocalModelError

__all__ = [
    "BIN_ENV",
    "BINARY_ENV",
    "BUILD_HINT",
    "CMAKE_FLAGS",
    "PINNED_LLAMA_CPP_PYTHON",
    "BuildResult",
    "bin_dir",
    "build_llama_server",
    "built_binary",
    "find_llama_server",
    "llama_cpp_python_version",
    "missing_build_tools",
]

BIN_ENV = "LITELLM_FUSION_BIN"
BINARY_ENV = "LITELLM_FUSION_LLAMA_SERVER"
BUILD_HINT = "litellm-fusion local build-server"
PINNED_LLAMA_CPP_PYTHON = "0.3.36"
"""The llama-cpp-python version ``constraints.txt`` pins (a test keeps them equal); used when it is not installed."""
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained file to cache; the router starts copies of itself
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # otherwise the build downloads the web UI archive
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_OPENSSL=OFF",  # it only serves 127.0.0.1 and downloads nothing: no libssl-dev needed
    "-DGGML_CCACHE=OFF",
)


@dataclass(frozen=True)
class BuildResult:
    """Where the binary is, and whether this call built it (``seconds``: that build, else the recorded one)."""

    path: Path
    built: bool
    seconds: float
    version: str


def bin_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the built binary lives: ``directory``, else ``$LITELLM_FUSION_BIN``, else ``~/.cache/litellm-fusion/bin``."""
    chosen = directory or os.environ.get(BIN_ENV) or Path.home() / ".cache" / "litellm-fusion" / "bin"
    return Path(chosen).expanduser()


def llama_cpp_python_version() -> str:
    """The installed llama-cpp-python's version, else the pinned one: the sdist the binary is built from."""
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return PINNED_LLAMA_CPP_PYTHON


def _stamp_path(binary: Path) -> Path:
    return binary.with_name(binary.name + ".json")


def _wanted_stamp(version: str) -> dict[str, object]:
    return {"llama_cpp_python": version, "cmake_flags": list(CMAKE_FLAGS)}


def built_binary(directory: str | os.PathLike[str] | None = None, version: str | None = None) -> tuple[Path, dict] | None:
    """The cached binary and its stamp when both are there and match ``version`` and the flags, else None."""
    binary = bin_dir(directory) / "llama-server"
    try:
        stamp = json.loads(_stamp_path(binary).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wanted = _wanted_stamp(version or llama_cpp_python_version())
    if not os.access(binary, os.X_OK) or any(stamp.get(k) != v for k, v in wanted.items()):
        return None
    return binary, stamp


def find_llama_server(directory: str | os.PathLike[str] | None = None) -> Path | None:
    """The ``llama-server`` to run: ``$LITELLM_FUSION_LLAMA_SERVER`` (must be executable), else the built one, else None."""
    given = os.environ.get(BINARY_ENV)
    if given:
        path = Path(given).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LocalModelError(
                f"${BINARY_ENV} is {given!r}, which is not an executable file: fix it, or unset it to use `{BUILD_HINT}`'s"
            )
        return path.resolve()
    found = built_binary(directory)
    return found[0] if found else None


def missing_build_tools() -> list[str]:
    """What the build needs and this machine lacks: ``cmake`` and a C++ compiler (``$CXX``, ``c++``, ``g++`` or ``clang++``)."""
    missing = [] if shutil.which("cmake") else ["cmake"]
    compilers = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    if not any(shutil.which(c) for c in compilers):
        missing.append("a C++ compiler")
    return missing


def _run(command: list[str], log_file: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    with open(log_file, "ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        result = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise LocalModelError(
            f"`{' '.join(command[:3])} ...` failed (exit {result.returncode}); run `{BUILD_HINT}` again to resume. "
            f"Log {log_file} ends:\n{tail}"
        )


def _source_tree(work: Path, version: str, log_file: Path) -> Path:
    """``vendor/llama.cpp`` of the llama-cpp-python sdist, downloaded with pip and unpacked under ``work``."""
    source = work / "src" / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if (source / "tools" / "server" / "CMakeLists.txt").is_file():
        return source
    sdists = work / "sdist"
    archives = sorted(sdists.glob("llama_cpp_python-*.tar.gz"))
    if not archives:
        sdists.mkdir(parents=True, exist_ok=True)
        _run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "--disable-pip-version-check",
             "--progress-bar", "off", "-d", str(sdists), f"llama-cpp-python=={version}"],
            log_file,
        )  # fmt: skip
        archives = sorted(sdists.glob("llama_cpp_python-*.tar.gz"))
        if not archives:
            raise LocalModelError(f"pip downloaded no llama-cpp-python {version} sdist into {sdists}")
    with tarfile.open(archives[0]) as archive:
        archive.extractall(work / "src", filter="data")
    if not (source / "tools" / "server" / "CMakeLists.txt").is_file():
        raise LocalModelError(f"the llama-cpp-python {version} sdist has no vendor/llama.cpp/tools/server: build llama-server by hand")
    return source


def build_llama_server(
    directory: str | os.PathLike[str] | None = None,
    *,
    version: str | None = None,
    jobs: int | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build ``llama-server`` into :func:`bin_dir` unless a matching build is there (``force`` rebuilds).

    Raises :class:`LocalModelError` naming the fix when cmake or a compiler is missing or a step fails.
    """
    note = log or (lambda message: print(message, file=sys.stderr, flush=True))
    version = version or llama_cpp_python_version()
    target_dir = bin_dir(directory)
    found = None if force else built_binary(target_dir, version)
    if found:
        return BuildResult(path=found[0], built=False, seconds=float(found[1].get("build_seconds", 0.0)), version=version)
    missing = missing_build_tools()
    if missing:
        raise LocalModelError(
            f"cannot build llama-server: {' and '.join(missing)} not found (Debian: apt-get install -y cmake g++); "
            "until then `litellm-fusion local serve` uses llama-cpp-python's server"
        )
    started = time.perf_counter()
    work = target_dir.parent / "build" / f"llama.cpp-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log_file = work / "build.log"
    note(f"llama-server: building from the llama-cpp-python {version} sdist in {work} (log {log_file}); ~10 min on 2 cores")
    source = _source_tree(work, version, log_file)
    build = work / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") and not (build / "Makefile").exists() else []
    _run(["cmake", "-S", str(source), "-B", str(build), *generator, *CMAKE_FLAGS], log_file)
    parallel = str(jobs or os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or os.cpu_count() or 1)
    _run(["cmake", "--build", str(build), "--target", "llama-server", "--parallel", parallel], log_file)
    produced = build / "bin" / "llama-server"
    if not produced.is_file():
        raise LocalModelError(f"the build finished but {produced} is missing; log {log_file}")
    target_dir.mkdir(parents=True, exist_ok=True)
    binary = target_dir / "llama-server"
    partial = binary.with_name(binary.name + ".partial")
    shutil.copy2(produced, partial)
    _run([str(partial), "--version"], log_file)  # it runs on this machine before it replaces anything
    partial.replace(binary)
    seconds = time.perf_counter() - started
    stamp = {**_wanted_stamp(version), "build_seconds": round(seconds, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _stamp_path(binary).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        work.parent.rmdir()  # only when no other version's tree is left in it
    note(f"llama-server: built in {seconds:.0f} s: {binary}")
    return BuildResult(path=binary, built=True, seconds=seconds, version=version)
