"""Server and per-model settings: pydantic models handed to ``create_app``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tierwise.errors import ConfigError
from tierwise.protocol import CodecLimits
from tierwise.runtime import OnnxSettings, WarmupSample, check_runtime
from tierwise.security import AuthSettings, TlsServerSettings
from tierwise.server.batching import BatcherSettings
from tierwise.settings_errors import SettingsModel, settings_error
from tierwise.spec.base import NAME_PATTERN
from tierwise.spec.tiers import PowerModel
from tierwise.telemetry.drift import DriftSettings
from tierwise.telemetry.energy import DEFAULT_POWERCAP
from tierwise.yaml_limits import load_settings_file

__all__ = ["EnergySettings", "ModelConfig", "ServerSettings", "load_yaml_settings"]


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


class EnergySettings(BaseModel):
    """How the server accounts energy (``energy:`` in server.yaml).

    The RAPL counters (``rapl``: ``auto`` looks under /sys/class/powercap, a path looks
    there, ``off`` never looks) are used where readable: ``source="measured"``.
    Otherwise, with a power model (``active_watts``, and ``idle_watts``/``peak_watts``
    when known), energy is ``active_watts`` x busy time: ``source="estimated"``. With
    neither, the server exports busy seconds only and no energy or power series: it
    assumes no default wattage. ``enabled: false`` turns energy accounting off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    idle_watts: float | None = Field(
        default=None, ge=0, description="draw with nothing running (default 0)"
    )
    active_watts: float | None = Field(
        default=None, gt=0, description="typical draw while a model computes"
    )
    peak_watts: float | None = Field(default=None, gt=0, description="the most it can draw")
    rapl: Literal["auto", "off"] | Path = Field(
        default="auto",
        description="where the powercap zones are: auto (/sys/class/powercap), off, or a path",
    )
    window_s: float = Field(
        default=0.1, gt=0, le=60, description="least time between two RAPL reads"
    )

    @model_validator(mode="after")
    def _power_model(self) -> EnergySettings:
        active, idle, peak = self.active_watts, self.idle_watts or 0.0, self.peak_watts
        if active is None:
            if self.idle_watts is not None or peak is not None:
                raise ConfigError("active_watts", "watts > 0 when idle_watts or peak_watts is set")
            return self
        if active < idle:
            raise ConfigError("active_watts", f"watts >= idle_watts ({idle:g})", active)
        if peak is not None and peak < active:
            raise ConfigError("peak_watts", f"watts >= active_watts ({active:g})", peak)
        return self

    def power_model(self) -> PowerModel | None:
        """The power model these settings give; None without ``active_watts``."""
        if self.active_watts is None:
            return None
        return PowerModel(
            idle_watts=self.idle_watts or 0.0,
            active_watts=self.active_watts,
            peak_watts=self.peak_watts,
        )

    def rapl_root(self) -> Path | None:
        """The powercap folder to read, or None (``off``, or energy disabled)."""
        if not self.enabled or self.rapl == "off":
            return None
        return DEFAULT_POWERCAP if self.rapl == "auto" else Path(self.rapl)


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
    tier: str = Field(
        default="local",
        pattern=NAME_PATTERN,
        description="the tier this server answers for: the tier label of its energy series",
    )
    energy: EnergySettings = Field(default_factory=EnergySettings)
    metrics: bool = Field(
        default=True,
        description="observe every batch (queue, compute and batch-size histograms, busy "
        "time, energy, drift); false keeps only the request counts",
    )
    drift: DriftSettings = Field(
        default_factory=DriftSettings,
        description="windows and thresholds of the drift monitors of versions whose folder "
        "holds a reference.json",
    )
    drift_sample_rate: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="share of each monitored version's batches fed to its drift monitor",
    )
    drift_max_rows_per_s: float | None = Field(
        default=500.0,
        gt=0.0,
        description="most rows a second fed to each version's drift monitor (a sample, so "
        "watching costs little under any load); null: every sampled batch",
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
        data = load_settings_file(path)
    _merge(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        return ServerSettings.model_validate(data)
    except ValidationError as exc:
        raise settings_error(source, exc, ServerSettings) from exc
