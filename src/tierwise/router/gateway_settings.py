"""The gateway's settings (``gateway.yaml``): where it listens, its outbox, who may call
it (``auth``), its certificate (``tls``) and per-client limits (``clients``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from tierwise.outbox.nats_settings import NatsOutboxSettings
from tierwise.outbox.queue import SqliteOutboxSettings
from tierwise.router.clients import ClientLimits
from tierwise.security import AuthSettings, TlsServerSettings
from tierwise.settings_errors import SettingsModel, settings_error
from tierwise.telemetry.device import DeviceTelemetrySettings
from tierwise.yaml_limits import load_settings_file

__all__ = ["GatewaySettings", "load_gateway_settings"]

#: Command-line options that land in a section of the settings.
_NESTED = {
    "tls_cert": ("tls", "cert"),
    "tls_key": ("tls", "key"),
    "tls_client_ca": ("tls", "client_ca"),
    "tokens_file": ("auth", "tokens_file"),
}


class GatewaySettings(SettingsModel):
    """How the gateway runs; handed to :class:`Gateway`. ``auth``: where its tokens come
    from (None: open); ``tls``: its certificate (None: plain HTTP); ``insecure``: run
    open beyond loopback anyway (the CLI refuses otherwise); ``clients``: limits by the
    client name tokens carry (:class:`~tierwise.router.clients.ClientLimits`);
    ``device_telemetry``: the bounds of the device reports it takes.

    ``device_page``: serve the device tier to browsers (:mod:`tierwise.webdevice`: the
    page at ``/device/``, each workload's device settings and model); ``device_bundles``:
    per workload, a bundle directory whose manifest names the device model (else the
    plan's file); ``device_samples``: a JSON file of held-out rows for the page's picker.
    ``idempotency_path``: where answers to requests carrying an ``idempotency_key`` are
    kept for ``idempotency_ttl_s`` (a SQLite file, or ``:memory:``), so that one sent
    again is answered once (:mod:`tierwise.router.once`).

    The outbox for deferred work is ``outbox: {backend: sqlite, path: ...}`` or
    ``outbox: {backend: nats, url: ..., ...}``
    (:class:`~tierwise.outbox.nats_settings.NatsOutboxSettings`); ``outbox_path`` (and
    ``outbox_max_items``) is the short form of the SQLite one."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    outbox_path: Path | None = None
    outbox_max_items: int = Field(default=10_000, ge=1)
    outbox: Annotated[
        SqliteOutboxSettings | NatsOutboxSettings | None, Field(discriminator="backend")
    ] = None
    drain_poll_s: float = Field(default=1.0, gt=0)
    auth: AuthSettings | None = None
    tls: TlsServerSettings | None = None
    insecure: bool = False
    clients: dict[str, ClientLimits] = Field(default_factory=dict)
    device_telemetry: DeviceTelemetrySettings = Field(default_factory=DeviceTelemetrySettings)
    device_page: bool = True
    device_bundles: dict[str, Path] = Field(default_factory=dict)
    device_samples: Path | None = None
    idempotency_path: str = ":memory:"
    idempotency_ttl_s: float = Field(default=86_400.0, gt=0)
    idempotency_max_entries: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _one_outbox(self) -> GatewaySettings:
        if self.outbox is not None and self.outbox_path is not None:
            raise ValueError("expected outbox or outbox_path (its short form), not both")
        return self

    def outbox_settings(self) -> SqliteOutboxSettings | NatsOutboxSettings | None:
        """The outbox this gateway queues deferred work in (None: it has none)."""
        if self.outbox_path is not None:
            return SqliteOutboxSettings(path=self.outbox_path, max_items=self.outbox_max_items)
        return self.outbox


def load_gateway_settings(path: Path | None, **overrides: Any) -> GatewaySettings:
    """Read ``gateway.yaml`` (when given); ``overrides`` that are not None win:
    ``tls_cert``, ``tls_key``, ``tls_client_ca`` go under ``tls``, ``tokens_file`` under
    ``auth``, the rest are top-level settings. ConfigError names the file and field."""
    data: dict[str, Any] = {}
    source = "gateway settings"
    if path is not None:
        source = str(path)
        data = load_settings_file(path)
    for name, value in overrides.items():
        if value is None:
            continue
        if name in _NESTED:
            section, key = _NESTED[name]
            part = data.get(section)
            data[section] = {**(part if isinstance(part, dict) else {}), key: value}
        else:
            data[name] = value
    try:
        return GatewaySettings.model_validate(data)
    except ValidationError as exc:
        raise settings_error(source, exc, GatewaySettings) from exc
