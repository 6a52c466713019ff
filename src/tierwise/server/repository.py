"""The model repository on disk: ``DIR/<model>/<version>/model.onnx`` (the file name the
model's runtime expects) plus an optional ``DIR/<model>/config.yaml``. Pure reading;
loading is the manager's job.

A ``config.yaml`` is laid over the server's default model settings: a mapping (such as
``batching:`` or ``onnx:``) changes only the keys it names, anything else replaces the
default."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tierwise.errors import ConfigError, ModelLoadError, ModelNotFoundError
from tierwise.runtime import model_file_of
from tierwise.server.settings import ModelConfig
from tierwise.settings_errors import settings_error
from tierwise.yaml_limits import load_yaml

__all__ = ["ModelEntry", "read_model", "scan_repository"]

CONFIG_FILE = "config.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model folder: its versions (number -> file) and config, and a fingerprint that
    changes when any of them changes (for the directory poll)."""

    name: str
    versions: dict[int, Path]
    config: ModelConfig
    fingerprint: tuple[object, ...]

    def selected_versions(self) -> list[int]:
        """Versions the version policy serves, highest first."""
        ordered = sorted(self.versions, reverse=True)
        policy = self.config.version_policy
        if policy == "latest":
            return ordered[:1]
        if policy == "all":
            return ordered
        return [v for v in ordered if v in set(policy)]


def _stat(path: Path) -> tuple[object, ...]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def _overlay(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings in both are merged key by key, the rest replaced."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = _overlay(below, value)
        else:
            merged[key] = value
    return merged


def _read_config(name: str, folder: Path, default: ModelConfig) -> ModelConfig:
    path = folder / CONFIG_FILE
    if not path.is_file():
        return default
    try:
        data = load_yaml(path.read_text(), str(path)) or {}
        if not isinstance(data, dict):
            raise ModelLoadError(f"{path}: expected a mapping of settings", model=name)
        merged = _overlay(default.model_dump(), data)
        return ModelConfig.model_validate(merged)
    except yaml.YAMLError as exc:
        raise ModelLoadError(f"{path}: invalid YAML: {exc}", model=name) from exc
    except ConfigError as exc:  # aliases that expand too far
        raise ModelLoadError(str(exc), model=name) from exc
    except ValidationError as exc:
        problem = settings_error(str(path), exc, ModelConfig)
        raise ModelLoadError(str(problem), model=name) from exc


def read_model(repo: Path, name: str, default: ModelConfig) -> ModelEntry:
    """Read one model folder; ModelNotFoundError when it is not there, ModelLoadError when
    its config is invalid or it has no version with a model file."""
    if not _NAME.match(name):
        raise ModelNotFoundError(model=name)
    folder = repo / name
    if not folder.is_dir():
        raise ModelNotFoundError(model=name)
    config = _read_config(name, folder, default)
    model_file = model_file_of(config.runtime)
    versions: dict[int, Path] = {}
    prints: list[object] = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.isdigit() and (child / model_file).is_file():
            versions[int(child.name)] = child / model_file
            prints.append(_stat(child / model_file))
    if (folder / CONFIG_FILE).is_file():
        prints.append(_stat(folder / CONFIG_FILE))
    if not versions:
        raise ModelLoadError(
            f"no version folder with a {model_file} under {folder} "
            f"(expected {name}/1/{model_file})",
            model=name,
        )
    return ModelEntry(name, versions, config, tuple(sorted(map(str, prints))))


def scan_repository(repo: Path) -> list[str]:
    """Names of the model folders in the repository, sorted."""
    if not repo.is_dir():
        raise ModelLoadError(f"model repository {repo} is not a directory", model="*")
    return sorted(p.name for p in repo.iterdir() if p.is_dir() and _NAME.match(p.name))
