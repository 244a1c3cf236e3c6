"""Presets for real upstreams: one data file each, expanded under a tenant's source body (see registry)."""

from engines.connectors.presets.registry import Preset, PresetError, PresetFileError, preset_apply, preset_get, registry

__all__ = ["Preset", "PresetError", "PresetFileError", "preset_apply", "preset_get", "registry"]
