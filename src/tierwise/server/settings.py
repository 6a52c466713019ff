"""Server and per-model settings: pydantic models handed to ``create_app``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tierwise.errors import ConfigError
from tierwise.protocol import CodecLimits
from tierwise.runtime import OnnxSettings, WarmupSample, check_runtime
from tierwise.security import AuthSettings, TlsServerSettings
from tierwise.server.batching import BatcherSettings
from tierwise.settings_errors import SettingsModel, settings_error
from tierwise.yaml_limits import load_yaml

__all__ = ["ModelConfig", "ServerSettings", "load_yaml_settings"]


class ModelConfig(SettingsModel):
    """``DIR/<model>/config.yaml``: which runtime runs the model, how its requests are
    batched, which versions serve and how the model is warmed up."""

    moved_settings: ClassVar[Mapping[str, str]] = {
        name: f"batching.{name}" for name in BatcherSettings.model_fields
    }

    runtime: str = Field(
        default="onnxruntime",
        description="the runtime that runs the model, by its registered name",
    )
    batching: BatcherSettings = Field(default_factory=BatcherSettings)
    version_policy: Literal["latest", "all"] | list[int] = "latest"
    onnx: OnnxSettings = Field(default_factory=OnnxSettings)
    warmup: list[WarmupSample] = Field(
        default_factory=list,
        max_length=64,
        description="inputs to warm the model up with (each run onnx.warmup_runs times); "
        "without them, only a model whose dimensions are all fixed but the batch one is "
        "warmed up",
    )

    @field_validator("runtime")
    @classmethod
    def _registered(cls, value: str) -> str:
        return check_runtime(value)


class ServerSettings(BaseModel):
    """Everything ``tierwise serve`` is told; nothing deeper reads the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_repo: Path
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    server_name: str = "tierwise"
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_tensor_elements: int = Field(default=16 * 1024 * 1024, ge=1)
    repository_poll_s: float = Field(default=0.0, ge=0, description="0 disables polling")
    drain_timeout_s: float = Field(default=30.0, ge=0)
    retry_after_s: int = Field(default=1, ge=1, le=3600)
    idempotency_ttl_s: float = Field(
        default=3600.0, gt=0, description="how long a keyed request's answer is kept"
    )
    idempotency_max_entries: int = Field(default=100_000, ge=1)
    access_log: bool = False
    log_json: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    default_model: ModelConfig = Field(default_factory=ModelConfig)
    strict: bool = Field(
        default=False,
        description="fail the start when any model fails to load or warm up; otherwise "
        "that model is UNAVAILABLE with its reason and the others serve",
    )
    auth: AuthSettings | None = Field(
        default=None,
        description="bearer tokens with scopes; without any token every endpoint is open",
    )
    tls: TlsServerSettings | None = Field(
        default=None, description="certificate and key (client_ca: mutual TLS)"
    )
    insecure: bool = Field(
        default=False,
        description="run on a non-loopback address with no tokens and no mutual TLS "
        "(refused otherwise); said in the first log line and in GET /v2",
    )

    def codec_limits(self) -> CodecLimits:
        return CodecLimits(
            max_body_bytes=self.max_body_bytes, max_tensor_elements=self.max_tensor_elements
        )


def _merge(data: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """``overrides`` into ``data``; a mapping merges into the file's mapping of the same
    key (``--tokens-file`` keeps the file's ``auth.tokens_env``)."""
    for key, value in overrides.items():
        current = data.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged = dict(current)
            _merge(merged, value)
            data[key] = merged
        else:
            data[key] = value


def load_yaml_settings(path: Path | None, **overrides: Any) -> ServerSettings:
    """Read ``server.yaml`` (when given); ``overrides`` that are not None win.
    ConfigError names the file and field that were wrong."""
    data: dict[str, Any] = {}
    source = "settings"
    if path is not None:
        source = str(path)
        try:
            loaded = load_yaml(path.read_text(), str(path)) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(source, "a readable YAML file", str(exc)) from exc
        if not isinstance(loaded, dict):
            raise ConfigError(
                source, "a mapping of settings at the top level", type(loaded).__name__
            )
        data = loaded
    _merge(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        return ServerSettings.model_validate(data)
    except ValidationError as exc:
        raise settings_error(source, exc, ServerSettings) from exc
