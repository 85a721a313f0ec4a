"""The fusion spec: pydantic models, preset loading and the merge rule.

A spec is resolved once per request, before any upstream call:

1. the preset named by the model (``fusion/<preset>``): built-in, or from a user presets YAML file;
2. deep-merged with the request's ``fusion={...}`` (and ``extra_body={"fusion": ...}``):
   dicts merge key by key, recursively; any other value (a list such as ``panel``, a string, a number)
   replaces the preset's value whole; an explicit ``null`` sets the field to null, which for an optional
   field means unset (``synthesizer: null``: the judge writes; ``straggler_grace: null``: wait for all);
3. validated. Anything wrong raises :class:`~litellm_fusion._core.errors.FusionConfigError` (HTTP 400) that
   names the field and the fix.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from litellm_fusion._core.errors import FusionConfigError
from litellm_fusion._spec.presets import BUILTIN_PRESETS, dynamic_presets

__all__ = [
    "MemberSpec",
    "FusionSpec",
    "ClientPolicy",
    "WebSpec",
    "WebSearchSpec",
    "WebFetchSpec",
    "WebMode",
    "Exposure",
    "EXPOSURE_LEVELS",
    "PresetStore",
    "deep_merge",
    "map_openrouter_fields",
    "load_presets_file",
    "PRESETS_ENV_VAR",
]

PRESETS_ENV_VAR = "LITELLM_FUSION_PRESETS"
MAX_PANEL = 8
MAX_TOOL_CALLS = 16
WebMode = Literal["auto", "native", "client", "off"]


class MemberSpec(BaseModel):
    """One model call: a panel member, the judge or the synthesizer. Given as a string or a dict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="A LiteLLM model string (`openai/gpt-5.4-mini`) or a proxy model_name.")
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature for this member.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling for this member.")
    max_tokens: int | None = Field(None, gt=0, description="Completion-token cap for this member's call.")
    api_base: str | None = Field(None, description="Base URL of an OpenAI-compatible or self-hosted backend.")
    api_key: str | None = Field(None, repr=False, description="API key for this member; `os.environ/NAME` reads an env var.")
    api_version: str | None = Field(None, description="API version (Azure and similar).")
    timeout: float | None = Field(None, gt=0, description="Seconds this member may take; capped by the request deadline.")
    num_retries: int | None = Field(None, ge=0, le=5, description="Retries of this member's call (default: the spec's).")
    input_cost_per_token: float | None = Field(None, ge=0, description="Price per prompt token, for models not in LiteLLM's price map.")
    output_cost_per_token: float | None = Field(
        None, ge=0, description="Price per completion token, for models not in LiteLLM's price map."
    )
    web: WebMode | None = Field(None, description="This member's web mode (default: the spec's `web.mode`).")
    extra_params: dict[str, Any] = Field(default_factory=dict, description="Other LiteLLM completion parameters, passed as-is.")

    @field_validator("model")
    @classmethod
    def _not_a_fusion_model(cls, value: str) -> str:
        if value.startswith("fusion/"):
            raise ValueError(
                f"'{value}' is a fusion model; fusion models cannot be nested (recursion). List that preset's panel models here instead"
            )
        return value


class WebSearchSpec(BaseModel):
    """Where the client tool loop searches (native web tools use the provider's own search)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(
        "searxng", description="A `litellm.asearch` provider: searxng, tavily, exa_ai, brave, perplexity, ...; keys from the env."
    )
    api_base: str | None = Field(None, description="The search API's base URL (searxng: your instance; default $SEARXNG_API_BASE).")
    search_tool_name: str | None = Field(None, description="Inside the proxy: a `search_tools` entry to use instead of provider/api_base.")
    max_results: int = Field(5, ge=1, le=10, description="Results returned to the model per search.")


class WebFetchSpec(BaseModel):
    """Limits of the client-side web fetch (SSRF-guarded; only public http/https addresses)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Whether members get `web_fetch` in the client loop.")
    max_chars: int = Field(20_000, ge=500, le=200_000, description="Characters of page text returned to the model per fetch.")
    max_bytes: int = Field(2_000_000, ge=10_000, le=20_000_000, description="Largest response body read, decoded.")
    timeout: float = Field(15.0, gt=0, le=120, description="Seconds per fetch, redirects included.")
    max_redirects: int = Field(5, ge=0, le=10, description="Redirect hops followed (each re-checked).")
    respect_robots: bool = Field(True, description="Honour robots.txt for the fetcher's user agent.")
    any_url: bool = Field(False, description="Allow URLs not seen in the prompt or in earlier results (off: a member cannot invent URLs).")


class WebSpec(BaseModel):
    """Web search and fetch for panel members."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: WebMode = Field(
        "off", description="`auto` (native tools where the provider has them, else the client loop), `native`, `client` or `off`."
    )
    max_tool_calls: int = Field(8, ge=1, le=MAX_TOOL_CALLS, description="Web tool calls per member (native max_uses, client loop calls).")
    search: WebSearchSpec = Field(default_factory=WebSearchSpec, description="The client loop's search backend.")
    fetch: WebFetchSpec = Field(default_factory=WebFetchSpec, description="The client loop's fetch limits.")


Exposure = Literal["none", "summary", "full"]
EXPOSURE_LEVELS: tuple[Exposure, ...] = ("none", "summary", "full")


class ClientPolicy(BaseModel):
    """What a proxy client may override per request (set on the deployment; SDK callers are not limited)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_overrides: bool = Field(True, description="Whether clients may send `fusion` overrides or OpenRouter `plugins` at all.")
    allowed_models: list[str] | None = Field(
        None, description="Model names clients may put in panel/judge/synthesizer (default: the proxy's own non-fusion model_names)."
    )
    max_panel: int = Field(5, ge=1, le=MAX_PANEL, description="Largest panel a client may ask for.")


def _as_member(value: Any) -> Any:
    return {"model": value} if isinstance(value, str) else value


class FusionSpec(BaseModel):
    """Everything one fusion call needs: who answers, who judges, who writes, and the limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    panel: list[MemberSpec] = Field(
        min_length=1, max_length=MAX_PANEL, description="Models asked in parallel (1-8); strings or dicts of LiteLLM params."
    )
    judge: MemberSpec = Field(description="Model that compares the answers and writes the structured analysis.")
    synthesizer: MemberSpec | None = Field(None, description="Model that writes the final answer (default: the judge).")
    temperature: float | None = Field(None, ge=0, le=2, description="Panel temperature, unless a member sets its own.")
    max_completion_tokens: int | None = Field(None, gt=0, description="Completion-token cap for every nested call.")
    timeout: float = Field(300.0, gt=0, description="Seconds for the whole request (LiteLLM's `timeout` also applies; the smaller wins).")
    num_retries: int = Field(0, ge=0, le=5, description="Retries per nested call; 0 lets the outer Router own retries.")
    min_quorum: int | None = Field(
        None, ge=1, le=MAX_PANEL, description="Panel answers needed to go on (default: a majority, len(panel)//2 + 1); fewer gives a 503."
    )
    straggler_grace: float | None = Field(
        10.0, ge=0, description="Once min_quorum answered, seconds to wait for the rest before cancelling them; null waits for all."
    )
    panel_timeout: float | None = Field(None, gt=0, description="Seconds for the panel stage (default: the request's remaining time).")
    judge_timeout: float | None = Field(
        None, gt=0, description="Seconds for the judge, repair call included (default: the remaining time)."
    )
    judge_output: Literal["auto", "json_schema", "json_object", "prompt"] = Field(
        "auto",
        description="How the judge is asked for JSON: `auto` tries json_schema (when LiteLLM knows the model supports it), then "
        "json_object with a schema, then the prompt alone; each backend refusal (a 400 or 422, or an error naming response_format) falls through to the next. A named mode starts "
        "the same chain there (json_schema -> json_object -> prompt).",
    )
    aggregation: Literal["vote", "off"] = Field(
        "vote",
        description="How the answers are combined: `vote` (the judge records each answer's final claim and checks it; the "
        "claims are counted, and the synthesizer is told to keep a majority unless the judge found an error in each of its "
        "answers and checked a minority one); `off` (the judge's free analysis only; the synthesizer works it out from that).",
    )
    short_circuit: Literal["off", "exact", "vote", "judge"] = Field(
        "off",
        description="Skip paid stages when the panel agrees: `exact` (normalised answers identical: no judge, no synthesizer), "
        "`vote` (every answer states the same final claim on its `Answer:` line: no judge, no synthesizer), "
        "`judge` (also when the judge finds full consensus and no contradictions: no synthesizer).",
    )
    max_cost: float | None = Field(
        None, gt=0, description="USD cap per request: a pre-flight worst-case estimate above it is a 400 with no upstream call."
    )
    max_prompt_chars: int = Field(400_000, gt=0, description="Largest conversation (characters of all message text) accepted.")
    expose: Exposure = Field(
        "full",
        description="How much of the trace the caller gets: `full`, `summary` (no member texts) or `none`; clients may only lower it.",
    )
    invocation: Literal["always", "auto", "required"] = Field(
        "always",
        description="`always` runs the panel on every request; `auto` lets the synthesizer model answer directly or call the "
        "panel as a tool; `required` makes it call the tool (it writes the panel's focused question).",
    )
    progress: Literal["reasoning", "none"] = Field(
        "reasoning",
        description="Streaming only: `reasoning` sends one line per panel/web/judge event as `delta.reasoning_content` "
        "before the answer (chat UIs show it as the model's thinking); `none` sends the answer alone.",
    )
    clients: ClientPolicy = Field(default_factory=ClientPolicy, description="What proxy clients may override per request.")
    web: WebSpec = Field(default_factory=WebSpec, description="Web search and fetch for panel members.")

    @field_validator("judge", "synthesizer", mode="before")
    @classmethod
    def _member_from_string(cls, value: Any, info: Any) -> Any:
        if value is None and info.field_name == "judge":
            raise ValueError("required: a model string or a member dict (it cannot be null)")
        return _as_member(value)

    @field_validator("panel", mode="before")
    @classmethod
    def _members_from_strings(cls, value: Any) -> Any:
        return [_as_member(item) for item in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _quorum_fits_panel(self) -> FusionSpec:
        if self.min_quorum is not None and self.min_quorum > len(self.panel):
            raise ValueError(
                f"min_quorum={self.min_quorum} is larger than the panel ({len(self.panel)} members); lower min_quorum or add members"
            )
        return self

    @property
    def quorum(self) -> int:
        """Panel answers needed: ``min_quorum``, or a majority of the panel."""
        return self.min_quorum if self.min_quorum is not None else len(self.panel) // 2 + 1

    @property
    def synthesizer_or_judge(self) -> MemberSpec:
        """The model that writes the final answer."""
        return self.synthesizer or self.judge


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` over ``base``: dicts recursively, anything else (``None`` included) replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _field_path(loc: tuple[Any, ...]) -> str:
    path = "fusion"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _owner(loc: tuple[Any, ...]) -> type[BaseModel]:
    parents = loc[:-1]
    if any(part in {"panel", "judge", "synthesizer"} for part in parents):
        return MemberSpec
    if "web" in parents:
        return WebSearchSpec if "search" in parents else WebFetchSpec if "fetch" in parents else WebSpec
    return ClientPolicy if "clients" in parents else FusionSpec


def _explain(error: dict[str, Any]) -> str:
    loc = error["loc"]
    path = _field_path(loc)
    owner = _owner(loc)
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown field; allowed fields are: {', '.join(owner.model_fields)}"
    if error["type"] == "missing":
        field = owner.model_fields.get(str(loc[-1]))
        return f"{path}: required ({field.description if field else 'set it'})"
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{path}: {message}{shown}"


def _members_as_dicts(data: dict[str, Any]) -> dict[str, Any]:
    """``judge: "openai/x"`` → ``judge: {model: "openai/x"}``, so a request can override one of its fields."""
    return {key: ({"model": value} if key in {"judge", "synthesizer"} and isinstance(value, str) else value) for key, value in data.items()}


def validate_spec(data: dict[str, Any], *, source: str = "request") -> FusionSpec:
    """Validate a merged spec dict; any problem becomes one 400 listing every bad field."""
    try:
        return FusionSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_explain(err) for err in exc.errors())
        raise FusionConfigError(f"invalid fusion spec ({source}): {problems}") from None


def load_presets_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read user presets from YAML: a mapping of preset name to spec (optionally under a ``presets:`` key)."""
    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise FusionConfigError(
            f"cannot read presets file {file}: {exc.strerror}; check {PRESETS_ENV_VAR} or the path given to register(presets=...)"
        ) from None
    except yaml.YAMLError as exc:
        raise FusionConfigError(f"presets file {file} is not valid YAML: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("presets"), dict):
        data = data["presets"]
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise FusionConfigError(f"presets file {file} must map preset names to specs, e.g. `budget: {{panel: [...], judge: ...}}`")
    for name, spec in data.items():
        validate_spec(spec, source=f"preset '{name}' in {file}")
    return {str(name): spec for name, spec in data.items()}


class PresetStore:
    """Named specs: the built-ins (``local`` rebuilt on each lookup, so it follows its env variable), then
    ``$LITELLM_FUSION_PRESETS``, then presets added in code (a later one replaces an earlier one of the same name).

    The env file is read on first use, not at import, so a broken file is a clear 400 on the first call
    (or at ``register()``) rather than an import error.
    """

    def __init__(self) -> None:
        self._presets: dict[str, dict[str, Any]] = copy.deepcopy(BUILTIN_PRESETS)
        self._added: dict[str, dict[str, Any]] = {}
        self._env_loaded = False

    def _all(self) -> dict[str, dict[str, Any]]:
        if not self._env_loaded:
            env_path = os.environ.get(PRESETS_ENV_VAR)
            if env_path:
                self._presets.update(load_presets_file(env_path))
            self._env_loaded = True
        return {**dynamic_presets(), **self._presets, **self._added}

    def add(self, presets: dict[str, dict[str, Any]] | str | os.PathLike[str]) -> None:
        """Add presets from a dict of specs or a YAML file path; each is validated now, not at call time."""
        if not isinstance(presets, dict):
            presets = load_presets_file(presets)
        for name, spec in presets.items():
            validate_spec(spec, source=f"preset '{name}'")
        self._added.update(copy.deepcopy(presets))

    def names(self) -> list[str]:
        """All preset names, sorted."""
        return sorted(self._all())

    def get(self, name: str) -> dict[str, Any] | None:
        """A copy of the named preset's spec dict, or None."""
        spec = self._all().get(name)
        return copy.deepcopy(spec) if spec is not None else None

    def resolve(
        self,
        name: str,
        overrides: dict[str, Any] | None = None,
        *,
        client_overrides: dict[str, Any] | None = None,
        check_client: Callable[[dict[str, Any], FusionSpec], dict[str, Any]] | None = None,
    ) -> FusionSpec:
        """The spec for ``fusion/<name>``: the preset, deep-merged with trusted ``overrides`` (SDK caller or
        proxy deployment), then with ``client_overrides`` once ``check_client`` has vetted them against the
        trusted spec's policy. Validated; any problem is a 400."""
        layers = [layer or {} for layer in (overrides, client_overrides)]
        for layer in layers:
            if not isinstance(layer, dict):
                raise FusionConfigError(f"fusion must be an object (dict), got {type(layer).__name__}")
        base = self.get(name)
        if base is None:
            if not any("panel" in layer for layer in layers) or not any("judge" in layer for layer in layers):
                raise FusionConfigError(
                    f"unknown preset '{name}'. Known presets: {', '.join(self.names())}. "
                    f"Use one of them (model='fusion/budget'), add yours with register(presets=...) or "
                    f"{PRESETS_ENV_VAR}, or pass a full spec: fusion={{'panel': [...], 'judge': '...'}}",
                    model=f"fusion/{name}",
                )
            base = {}
        # A string member in an override replaces the member whole; a dict merges into it.
        merged = deep_merge(_members_as_dicts(base), layers[0])
        if layers[1]:
            trusted = validate_spec(merged, source=f"fusion/{name}")
            vetted = check_client(layers[1], trusted) if check_client else layers[1]
            merged = deep_merge(_members_as_dicts(merged), vetted)
        return validate_spec(merged, source=f"fusion/{name}")


# OpenRouter Fusion's field names → ours (its ``plugins`` entry and its ``openrouter:fusion`` server tool).
_OPENROUTER_FIELDS = {
    "analysis_models": "panel",
    "model": "judge",
    "temperature": "temperature",
    "max_completion_tokens": "max_completion_tokens",
}


def map_openrouter_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """OpenRouter's fusion fields (``analysis_models``, ``model``, ...) as spec overrides; others are ignored."""
    overrides = {target: fields[source] for source, target in _OPENROUTER_FIELDS.items() if fields.get(source) is not None}
    if fields.get("max_tool_calls") is not None:
        overrides["web"] = {"max_tool_calls": fields["max_tool_calls"]}
    return overrides
