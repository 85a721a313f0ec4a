"""Configurations for ``litellm-fusion eval``: what to measure, read from code or a YAML file.

A configuration is either

- a **fusion** model: ``{"model": "fusion/<preset>", "fusion": {...}}`` (a preset, optionally deep-merged
  with a spec, or any name plus a full spec), or
- a **solo** model: a member dict, exactly as a fusion panel member is written (``model``, ``api_base``,
  ``api_key``, ``temperature``, ``max_tokens``, ``input_cost_per_token``, ``extra_params``, ...).

Either may set ``timeout`` (seconds for the whole call; default: the file's, else 300) and a ``name``.

The YAML file::

    timeout: 600                 # optional: seconds per call (a configuration's own timeout wins)
    concurrency: 2               # optional: questions in flight per configuration (--concurrency wins)
    grader: {model: openai/gpt-5.4-mini}    # optional: the model that grades `grader: judge` questions
    configurations:              # a mapping of name -> configuration (or a list of them with `name:`)
      solo-mini: {model: openai/gpt-5.4-mini}
      fusion-budget: {model: fusion/budget}

String values may use ``${VAR}`` (an error when VAR is unset) and ``${VAR:-default}``; ``$$`` is a
literal ``$``. Top-level keys starting with ``x-`` are ignored, so they can hold YAML anchors
(``x-local: &local {...}``) that configurations reuse with ``<<: *local``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._core.nested import resolve_secret
from litellm_fusion._spec.config import MemberSpec

__all__ = [
    "ConfigError",
    "EvalConfig",
    "EvalSettings",
    "DATA_DIR",
    "DEFAULT_TIMEOUT",
    "expand_env",
    "parse_config",
    "parse_configs",
    "load_configs",
    "resolve_data_path",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_TIMEOUT = 300.0
_FUSION_KEYS = {"name", "model", "fusion", "timeout"}
_FILE_KEYS = {"configurations", "grader", "timeout", "concurrency"}
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """An unusable configuration or configurations file; the message names it and the fix."""


@dataclass(frozen=True)
class EvalConfig:
    """One configuration to measure."""

    name: str
    model: str
    member: MemberSpec | None = None
    """The solo model's member spec (None for fusion)."""
    fusion: dict[str, Any] | None = None
    """The fusion spec overrides (None for solo)."""
    timeout: float | None = None

    @property
    def kind(self) -> str:
        """``fusion`` or ``solo``."""
        return "fusion" if self.member is None else "solo"

    def call_kwargs(self, messages: list[dict[str, Any]], default_timeout: float) -> dict[str, Any]:
        """Keyword arguments of this configuration's ``litellm.acompletion`` call."""
        timeout = self.timeout or default_timeout
        if self.member is None:
            fusion = copy.deepcopy(self.fusion or {})
            fusion.setdefault("timeout", timeout)  # the eval's per-call timeout bounds the whole fusion call
            return {"model": self.model, "messages": messages, "fusion": fusion, "timeout": timeout}
        m = self.member
        kwargs = {
            "model": m.model,
            "messages": messages,
            "timeout": min(m.timeout or timeout, timeout),
            "num_retries": m.num_retries or 0,
            "max_retries": 0,
            "temperature": m.temperature,
            "top_p": m.top_p,
            "max_tokens": m.max_tokens,
            "api_base": m.api_base,
            "api_key": resolve_secret(m.api_key),
            "api_version": m.api_version,
            "input_cost_per_token": m.input_cost_per_token,
            "output_cost_per_token": m.output_cost_per_token,
            **m.extra_params,
        }
        return {key: value for key, value in kwargs.items() if value is not None}

    def secrets(self) -> tuple[str, ...]:
        """API keys this configuration sends, so error messages can redact them."""
        keys: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    if key == "api_key" and isinstance(item, str) and item:
                        keys.append(resolve_secret(item) or "")
                    else:
                        walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(self.describe(redact=False))
        return tuple(k for k in keys if k)

    def describe(self, *, redact: bool = True) -> dict[str, Any]:
        """The configuration as data, for the JSON report (API keys redacted unless they name an env var)."""
        if self.member is not None:
            body: dict[str, Any] = self.member.model_dump(exclude_none=True, exclude_defaults=True)
            body["model"] = self.member.model
        else:
            body = {"model": self.model, "fusion": copy.deepcopy(self.fusion or {})}
        if self.timeout is not None:
            body["timeout"] = self.timeout
        return {"name": self.name, "kind": self.kind, **(_redacted(body) if redact else body)}


@dataclass(frozen=True)
class EvalSettings:
    """A configurations file: the configurations plus its run settings."""

    configs: list[EvalConfig]
    grader: EvalConfig | None = None
    timeout: float | None = None
    concurrency: int | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("[redacted]" if k == "api_key" and isinstance(v, str) and v and not v.startswith("os.environ/") else _redacted(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def expand_env(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in every string of ``value`` (recursively); ``$$`` is ``$``."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if env.get(name):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"${{{name}}} is used but {name} is not set; set it or write ${{{name}:-default}}")

    if isinstance(value, str):
        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def _pydantic_problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown field; a solo configuration takes name, timeout and the member fields: {', '.join(MemberSpec.model_fields)}"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_config(raw: Any, name: str | None = None) -> EvalConfig:
    """One configuration from a dict (``name`` defaults to the dict's ``name``, else its model)."""
    if isinstance(raw, EvalConfig):
        return raw
    if isinstance(raw, str):
        raw = {"model": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration {name or ''!r} must be a mapping (model: ...), got {type(raw).__name__}")
    data = dict(raw)
    label = str(name or data.get("name") or data.get("model") or "?")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"configuration {label!r}: `model` is required (a LiteLLM model string, or fusion/<preset>)")
    timeout = data.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"configuration {label!r}: timeout must be a positive number of seconds, got {timeout!r}")
    if model.startswith("fusion/"):
        unknown = sorted(set(data) - _FUSION_KEYS)
        if unknown:
            raise ConfigError(
                f"configuration {label!r}: unknown field(s) {', '.join(unknown)}; a fusion configuration takes "
                f"{', '.join(sorted(_FUSION_KEYS))} (put member settings inside `fusion:`)"
            )
        fusion = data.get("fusion") or {}
        if not isinstance(fusion, dict):
            raise ConfigError(f"configuration {label!r}: `fusion` must be a mapping (a spec), got {type(fusion).__name__}")
        from litellm_fusion._host.provider import fusion_llm  # the engine loads only when a fusion is configured

        try:  # validated now, so a typo fails before the first question instead of on every one
            fusion_llm.presets.resolve(model.removeprefix("fusion/"), fusion)
        except FusionConfigError as exc:
            raise ConfigError(f"configuration {label!r}: {' '.join(str(exc).split())}") from None
        return EvalConfig(name=label, model=model, fusion=copy.deepcopy(fusion), timeout=timeout)
    member = {k: v for k, v in data.items() if k not in ("name",)}
    member.pop("timeout", None)
    if timeout is not None:
        member["timeout"] = timeout
    try:
        spec = MemberSpec.model_validate(member)
    except ValidationError as exc:
        raise ConfigError(f"configuration {label!r}: {_pydantic_problems(exc)}") from None
    return EvalConfig(name=label, model=model, member=spec, timeout=timeout)


def parse_configs(configs: Mapping[str, Any] | Iterable[Any]) -> list[EvalConfig]:
    """Configurations from a mapping of name -> config, or a list of configs (each named by ``name`` or its model)."""
    if isinstance(configs, Mapping):
        parsed = [parse_config(raw, str(name)) for name, raw in configs.items()]
    else:
        parsed = [parse_config(raw) for raw in configs]
    if not parsed:
        raise ConfigError("no configurations to evaluate")
    names = [c.name for c in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"configuration names must be unique; repeated: {', '.join(duplicates)} (give each a `name`)")
    return parsed


def resolve_data_path(value: str | os.PathLike[str], suffixes: tuple[str, ...]) -> Path:
    """A path as given, else a file shipped in ``litellm_fusion/data`` (``arithmetic`` -> ``arithmetic.jsonl``)."""
    path = Path(value)
    if path.is_file():  # not a directory: `--out arithmetic` must not hide the shipped `arithmetic` set
        return path
    if path.parent == Path("."):
        for candidate in [DATA_DIR / path.name, *(DATA_DIR / f"{path.name}{s}" for s in suffixes)]:
            if candidate.is_file():
                return candidate
    shipped = ", ".join(sorted(p.stem for p in DATA_DIR.glob("*") if p.suffix in suffixes)) or "none"
    raise ConfigError(f"{value}: no such file (files shipped with litellm-fusion, usable by name: {shipped})")


def load_configs(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> EvalSettings:
    """Read a configurations file (see the module docstring)."""
    import yaml

    file = resolve_data_path(path, (".yaml", ".yml"))
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "configurations" not in data:
        raise ConfigError(f"{file}: expected a mapping with a `configurations:` key (name -> configuration)")
    extra = {k: v for k, v in data.items() if str(k).startswith("x-")}
    unknown = sorted(str(k) for k in data if k not in _FILE_KEYS and k not in extra)
    if unknown:
        raise ConfigError(f"{file}: unknown top-level key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FILE_KEYS))} and x-*")
    try:
        data = expand_env({k: v for k, v in data.items() if k not in extra}, environ)
        configs = parse_configs(data["configurations"] or {})
        grader = parse_config(data["grader"], "grader") if data.get("grader") else None
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    if grader is not None and grader.kind != "solo":
        raise ConfigError(f"{file}: the grader must be a solo model, not {grader.model}")
    timeout, concurrency = data.get("timeout"), data.get("concurrency")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"{file}: timeout must be a positive number of seconds, got {timeout!r}")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1):
        raise ConfigError(f"{file}: concurrency must be a positive integer, got {concurrency!r}")
    return EvalSettings(configs=configs, grader=grader, timeout=timeout, concurrency=concurrency, source=str(file), extra=extra)
