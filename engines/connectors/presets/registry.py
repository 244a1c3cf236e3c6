"""Presets: ready-made source definitions for real upstreams, kept as data files. Pure (no ORM).

A preset file (YAML, one per preset, in this package or in a folder named
by `BEASTFLOW_PRESET_DIRS`) says what is the same for every tenant of one
upstream: the connector, its config, the push scheme and mapping, poll and
health defaults (`fills`), and, as a JSON Schema (`config_schema`), what each
tenant must supply in `config` (its URL, credentials, owner/repo...).

`preset_apply` turns a body naming a preset into a whole source definition:
the preset's `fills` deep-merged under the tenant's body, so any field a
preset fills can be overridden in the same body. The result is validated
like any other definition (engines.schemas.validate_source).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engines.schemas import DataSourceConfig, PushScheme, validate_source

log = structlog.get_logger(__name__)

PRESETS_DIR = Path(__file__).resolve().parent
SUFFIXES = (".yaml", ".yml", ".json")  # JSON is YAML too: either spelling loads
# Source fields a preset may fill: everything but what names the source itself.
FILLABLE = frozenset(DataSourceConfig.model_fields) - {"name", "preset"}


class PresetError(Exception):
    """A body whose preset part is wrong: 422 with field errors."""

    def __init__(self, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class PresetFileError(Exception):
    """A preset file that cannot be used (an operator's mistake, reported with the file's path)."""


class _PresetFile(BaseModel):
    """The shape of a preset file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    title: str = Field(min_length=1, max_length=200)
    docs: str = ""
    fills: dict[str, Any]
    config_schema: dict[str, Any]
    example: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    docs: str
    fills: dict[str, Any]
    config_schema: dict[str, Any]
    example: dict[str, Any]
    path: Path
    validator: Draft202012Validator = field(repr=False, compare=False)

    @property
    def connector(self) -> str:
        return str(self.fills.get("connector", ""))

    @property
    def push_scheme(self) -> str:
        push = self.fills.get("push") or {}
        return str(push.get("scheme", PushScheme.BEASTFLOW.value))

    def summary(self) -> dict[str, Any]:
        """The list item of GET /api/v1/presets."""
        return {
            "name": self.name,
            "title": self.title,
            "connector": self.connector,
            "push_scheme": self.push_scheme,
            "config_schema": self.config_schema,
            "docs": self.docs,
        }

    def render(self) -> dict[str, Any]:
        """The whole preset (GET /api/v1/presets/{name})."""
        return {**self.summary(), "fills": self.fills, "example": self.example}


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`: objects merge key by key, anything else (lists too) replaces."""
    merged = dict(base)
    for name, value in over.items():
        below = merged.get(name)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[name] = deep_merge(below, value)
        else:
            merged[name] = value
    return merged


def config_errors(preset: Preset, config: Any) -> list[dict[str, str]]:
    """The tenant's `config` checked against the preset's config_schema, as field errors."""
    errors: list[dict[str, str]] = []
    for error in sorted(preset.validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        path = ".".join(["config", *(str(part) for part in error.absolute_path)])
        if error.validator == "required" and isinstance(error.instance, dict):
            # Name the missing field itself (config.owner), not its parent.
            missing = [name for name in error.validator_value if name not in error.instance]
            errors += [{"field": f"{path}.{name}", "message": "required by the preset"} for name in missing]
        else:
            errors.append({"field": path, "message": error.message})
    return errors


def preset_apply(body: dict[str, Any], presets: Mapping[str, Preset] | None = None) -> dict[str, Any]:
    """The body with its preset's fields filled in under it; the body unchanged when it names none.

    Raises PresetError for an unknown preset or a config the preset's schema refuses.
    """
    name = body.get("preset")
    if name is None:
        return body
    catalogue = registry() if presets is None else presets
    preset = catalogue.get(name) if isinstance(name, str) else None
    if preset is None:
        known = ", ".join(sorted(catalogue)) or "none"
        raise PresetError(
            "Unknown preset; see GET /api/v1/presets.", [{"field": "preset", "message": f"unknown; known: {known}"}]
        )
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise PresetError("config must be an object.", [{"field": "config", "message": "not an object"}])
    errors = config_errors(preset, config)
    if errors:
        raise PresetError(f"The config does not give what preset {preset.name} needs; see errors.", errors)
    return deep_merge(preset.fills, body)


def preset_load(path: Path) -> Preset:
    """One preset file, checked: its shape, its JSON Schema, and its example expanding to a valid source."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PresetFileError(f"{path}: cannot be read: {exc}") from exc
    try:
        spec = _PresetFile.model_validate(raw)
    except ValidationError as exc:
        raise PresetFileError(f"{path}: {exc}") from exc
    if spec.name != path.stem:
        raise PresetFileError(f"{path}: its name {spec.name!r} must be its file name without the suffix")
    unknown = sorted(set(spec.fills) - FILLABLE)
    if unknown:
        raise PresetFileError(f"{path}: fills {unknown} are not source fields a preset can fill")
    if "secret" in (spec.fills.get("push") or {}):
        raise PresetFileError(f"{path}: a push secret is the tenant's own, never a preset's")
    try:
        Draft202012Validator.check_schema(spec.config_schema)
    except SchemaError as exc:
        raise PresetFileError(f"{path}: config_schema is not a JSON Schema: {exc.message}") from exc
    preset = Preset(
        name=spec.name,
        title=spec.title,
        docs=spec.docs.strip(),
        fills=spec.fills,
        config_schema=spec.config_schema,
        example=spec.example,
        path=path,
        validator=Draft202012Validator(spec.config_schema),
    )
    if spec.example:
        _check_example(preset)
    return preset


def _check_example(preset: Preset) -> None:
    example = {**preset.example, "preset": preset.name}
    try:
        body = preset_apply(example, {preset.name: preset})
    except PresetError as exc:
        raise PresetFileError(f"{preset.path}: its example does not fit its config_schema: {exc.errors}") from exc
    _, errors = validate_source(body)
    if errors:
        raise PresetFileError(f"{preset.path}: its example does not make a valid source: {errors}")


def presets_load(folders: Iterable[Path]) -> dict[str, Preset]:
    """Every preset file in these folders, by name; two files of one name are an error, not an override."""
    presets: dict[str, Preset] = {}
    for folder in folders:
        if not folder.is_dir():
            raise PresetFileError(f"{folder}: not a folder (BEASTFLOW_PRESET_DIRS names folders of preset files)")
        for path in sorted(folder.iterdir()):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            preset = preset_load(path)
            if preset.name in presets:
                raise PresetFileError(f"{path}: preset {preset.name!r} is also defined in {presets[preset.name].path}")
            presets[preset.name] = preset
    return dict(sorted(presets.items()))


def preset_folders() -> list[Path]:
    """This package's folder, then the operator's (BEASTFLOW_PRESET_DIRS, separated by the OS path separator)."""
    extra = os.environ.get("BEASTFLOW_PRESET_DIRS", "")
    return [PRESETS_DIR, *(Path(part) for part in extra.split(os.pathsep) if part)]


@functools.cache
def registry() -> dict[str, Preset]:
    """All presets, read once per process."""
    folders = preset_folders()
    presets = presets_load(folders)
    log.info("presets_loaded", presets=sorted(presets), folders=[str(folder) for folder in folders])
    return presets


def preset_get(name: str) -> Preset | None:
    return registry().get(name)
