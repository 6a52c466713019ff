"""``agent.yaml``: everything one edge node is told (pydantic, handed to the agent).

A node syncs one or more bundles. A bundle is one model (its variants share inputs and
outputs), so a node that runs several models, such as a detector beside a tracker or a
classifier, lists one bundle per model under ``bundles:``; each is versioned, verified,
activated and rolled back on its own, and the desired state names a reference for each.
The one-bundle form, ``bundle:`` with ``serve:``, is the same as ``bundles:`` with one
entry.

Access: ``auth`` names the node's tokens (scopes ``admin`` for the endpoints that change
what it runs, ``telemetry`` for status and metrics, ``infer`` for inference), ``tls`` its
certificate (``client_ca`` makes it mutual TLS), and ``insecure`` lets it run unguarded on
a non-loopback address. ``control_token_env`` is a shorthand: the token in that variable
may do ``admin`` as client ``control``; given alone it guards only the admin endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tierwise.agent.control_settings import ControlSettings
from tierwise.agent.thermal import ThermalSettings
from tierwise.errors import ConfigError
from tierwise.outbox.nats_settings import NatsOutboxSettings
from tierwise.security import AuthSettings, EnvToken, TlsServerSettings
from tierwise.server.settings import EnergySettings, ModelConfig
from tierwise.settings_errors import settings_error
from tierwise.spec.base import NAME_PATTERN
from tierwise.spec.labels import check_labels
from tierwise.yaml_limits import load_yaml

__all__ = [
    "AgentSettings",
    "BundlePart",
    "ControlSettings",
    "GatewayPart",
    "RegistryPart",
    "ServePart",
    "ThermalSettings",
    "load_agent_settings",
    "with_access",
]

#: the client name the ``control_token_env`` shorthand's token carries
CONTROL_CLIENT = "control"

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

#: a bundle name, as the registry spells it
BUNDLE_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class RegistryPart(BaseModel):
    """Where bundles come from and whom to trust."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(description="a store folder, or oci://HOST[:PORT][/PREFIX]")
    plain_http: bool = False
    username: str | None = None
    password_env: str | None = Field(
        default=None, description="name of the environment variable holding the password"
    )
    timeout_s: float = Field(default=30.0, gt=0)
    trusted_keys: list[Path] = Field(min_length=1)


class ServePart(BaseModel):
    """One variant of the bundle this node serves, and the model name it is served as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: str
    model: str | None = Field(default=None, description="served model name; the variant's own")

    @property
    def model_name(self) -> str:
        return self.model or self.variant


class BundlePart(BaseModel):
    """One bundle this node syncs, and the variants of it that it serves. Each bundle has
    its own desired reference, versions kept for rollback and sync result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=BUNDLE_NAME, description="the bundle's name in the registry")
    serve: list[ServePart] = Field(min_length=1, max_length=64)

    @property
    def variants(self) -> list[str]:
        return [part.variant for part in self.serve]

    @property
    def models(self) -> list[str]:
        return [part.model_name for part in self.serve]


class GatewayPart(BaseModel):
    """The router front of this node: a plan whose ``local_tier`` is this node's server,
    the upstream tiers, and the outbox for work that cannot go out now: ``true`` (a SQLite
    file in the state folder), ``false`` (none), or ``{backend: nats, url: ..., domain:
    ...}`` to publish it through the node's NATS leaf node
    (:class:`~tierwise.outbox.nats_settings.NatsOutboxSettings`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan: Path
    local_tier: str | list[str] = Field(
        description="the plan tier this node's own server answers for, or a list of them "
        "(one per model the node serves: a detector's tier, a classifier's tier)"
    )
    port: int = Field(default=8080, ge=0, le=65535)
    outbox: bool | NatsOutboxSettings = True
    hedge_after_ms: float | None = Field(default=None, gt=0)

    @field_validator("local_tier")
    @classmethod
    def _tiers(cls, value: str | list[str]) -> str | list[str]:
        tiers = [value] if isinstance(value, str) else value
        if not tiers or len(set(tiers)) != len(tiers) or not all(tiers):
            raise ValueError(f"expected a tier name or a list of distinct ones, got {value}")
        return value

    @property
    def local_tiers(self) -> list[str]:
        return [self.local_tier] if isinstance(self.local_tier, str) else list(self.local_tier)


class AgentSettings(BaseModel):
    """One edge node: its tier server, registry sync, router front and thermal guard. It
    syncs the bundles of ``bundles`` (or the one of ``bundle`` and ``serve``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(default="edge", min_length=1, max_length=128)
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="what the node is, for a control plane to pick nodes by ({site: a, hw: "
        "pi5, canary: 'true'}); Kubernetes' label rules",
    )
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    bundle: str | None = Field(
        default=None, pattern=BUNDLE_NAME, description="the one bundle this node syncs"
    )
    serve: list[ServePart] | None = Field(
        default=None, min_length=1, description="the variants of ``bundle`` it serves"
    )
    bundles: list[BundlePart] = Field(
        default_factory=list,
        max_length=64,
        description="the bundles this node syncs, one per model it runs (instead of bundle "
        "and serve); each is versioned and rolled back on its own",
    )
    registry: RegistryPart
    desired_file: Path = Field(
        description="YAML or JSON {ref: VERSION | TAG | sha256:...} for one bundle, or "
        "{refs: {BUNDLE: REF, ...}} (ref then applies to every bundle refs leaves out)"
    )
    control: ControlSettings | None = Field(
        default=None,
        description="a control plane the desired state is read from at every sync; what "
        "it names is kept in desired_file",
    )
    sync_interval_s: float = Field(default=30.0, gt=0)
    keep_versions: int = Field(default=3, ge=1, le=100)
    gateway: GatewayPart | None = None
    thermal: ThermalSettings = Field(default_factory=ThermalSettings)
    defaults: ModelConfig = Field(
        default_factory=ModelConfig, description="batching and limits of the served models"
    )
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    drain_timeout_s: float = Field(default=10.0, ge=0)
    control_token_env: str | None = Field(
        default=None,
        pattern=_ENV_NAME,
        description="name of the environment variable holding a tierwise token (tw_...) "
        "that may use the agent's admin endpoints (desired, sync, rollback) as client "
        "'control'; alone, it leaves inference and telemetry open",
    )
    auth: AuthSettings | None = Field(
        default=None, description="the tokens this node accepts, and the scopes left open"
    )
    tls: TlsServerSettings | None = Field(
        default=None, description="the node's certificate and key; client_ca: mutual TLS"
    )
    insecure: bool = Field(
        default=False,
        description="run unguarded (no tokens, no mutual TLS) on a non-loopback address",
    )
    tier: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="the tier label of the node's energy series; default: the gateway's "
        "first local tier, else 'local'",
    )
    energy: EnergySettings = Field(
        default_factory=EnergySettings,
        description="RAPL counters and the node's power model (idle_watts, active_watts)",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)

    @model_validator(mode="after")
    def _names(self) -> AgentSettings:
        if self.bundles and (self.bundle is not None or self.serve is not None):
            raise ValueError(
                "give bundles (one entry per bundle), or bundle and serve for one bundle, not both"
            )
        if not self.bundles and (self.bundle is None or self.serve is None):
            missing = "bundle" if self.bundle is None else "serve"
            raise ValueError(
                f"{missing}: missing; give bundles: [{{name: BUNDLE, serve: [...]}}, ...], or "
                "bundle: and serve: for one bundle"
            )
        bundles = [b.name for b in self.bundle_parts]
        if len(set(bundles)) != len(bundles):
            raise ValueError(f"bundles: each bundle once, got {bundles}")
        names = [m for b in self.bundle_parts for m in b.models]
        if len(set(names)) != len(names):
            raise ValueError(f"serve: model names must be unique on the node, got {names}")
        if self.gateway is not None and self.gateway.port == self.port and self.port != 0:
            raise ValueError("gateway.port must differ from port")
        return self

    @property
    def bundle_parts(self) -> list[BundlePart]:
        """The bundles this node syncs, in order (the one-bundle form as one entry)."""
        if self.bundles or self.bundle is None or self.serve is None:
            return list(self.bundles)  # the validator made sure one form is given
        return [BundlePart(name=self.bundle, serve=self.serve)]

    @property
    def server_tier(self) -> str:
        """The tier the node's own server answers for (see ``tier``)."""
        if self.tier is not None:
            return self.tier
        return self.gateway.local_tiers[0] if self.gateway is not None else "local"

    @property
    def models(self) -> list[str]:
        """Every model name the node serves, over all its bundles."""
        return [m for part in self.bundle_parts for m in part.models]

    @property
    def access(self) -> AuthSettings | None:
        """The token settings the node's guard is built from: ``auth`` with the
        ``control_token_env`` shorthand added as an admin token of client ``control``.
        The shorthand alone guards the admin endpoints only, as it always has."""
        if self.control_token_env is None:
            return self.auth
        shorthand = EnvToken(env=self.control_token_env, client=CONTROL_CLIENT, scopes=["admin"])
        if self.auth is None:
            return AuthSettings(tokens_env=[shorthand], open_scopes=["infer", "telemetry"])
        return self.auth.model_copy(update={"tokens_env": [*self.auth.tokens_env, shorthand]})


def with_access(
    settings: AgentSettings,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    tls_client_ca: Path | None = None,
    tokens_file: Path | None = None,
    insecure: bool | None = None,
) -> AgentSettings:
    """``settings`` with the access options of the command line on top of the file's
    (each one given wins over its key; the others are kept). ConfigError names the part
    that is incomplete."""
    updates: dict[str, Any] = {}
    given = {"cert": tls_cert, "key": tls_key, "client_ca": tls_client_ca}
    if any(v is not None for v in given.values()):
        tls = settings.tls.model_dump() if settings.tls is not None else {}
        tls.update({k: v for k, v in given.items() if v is not None})
        try:
            updates["tls"] = TlsServerSettings.model_validate(tls)
        except ValidationError as exc:
            raise settings_error("tls (--tls-cert, --tls-key)", exc, TlsServerSettings) from exc
    if tokens_file is not None:
        auth = settings.auth if settings.auth is not None else AuthSettings()
        updates["auth"] = auth.model_copy(update={"tokens_file": tokens_file})
    if insecure is not None:
        updates["insecure"] = insecure
    return settings.model_copy(update=updates) if updates else settings


def load_agent_settings(path: Path, **overrides: Any) -> AgentSettings:
    """Read ``agent.yaml``; relative paths in it are taken from the file's folder.
    ConfigError names the file and the field that was wrong."""
    try:
        data = load_yaml(path.read_text(), str(path)) or {}
    except OSError as exc:
        raise ConfigError(str(path), "a readable YAML file", exc.strerror) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), f"valid YAML; {problem}{where}") from exc
    if not isinstance(data, dict):
        raise ConfigError(str(path), "a mapping of settings at the top level", type(data).__name__)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = AgentSettings.model_validate(data)
    except ValidationError as exc:
        raise settings_error(str(path), exc, AgentSettings) from exc
    base = path.parent

    def rel(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    updates: dict[str, Any] = {
        "state_dir": rel(settings.state_dir),
        "desired_file": rel(settings.desired_file),
        "registry": settings.registry.model_copy(
            update={"trusted_keys": [rel(k) for k in settings.registry.trusted_keys]}
        ),
    }
    if not settings.registry.store.startswith("oci://"):
        updates["registry"] = updates["registry"].model_copy(
            update={"store": str(rel(Path(settings.registry.store)))}
        )
    if settings.gateway is not None:
        updates["gateway"] = settings.gateway.model_copy(
            update={"plan": rel(settings.gateway.plan)}
        )
    if settings.thermal.source is not None:
        updates["thermal"] = settings.thermal.model_copy(
            update={"source": rel(settings.thermal.source)}
        )
    if isinstance(settings.energy.rapl, Path):
        updates["energy"] = settings.energy.model_copy(update={"rapl": rel(settings.energy.rapl)})
    if settings.auth is not None and settings.auth.tokens_file is not None:
        updates["auth"] = settings.auth.model_copy(
            update={"tokens_file": rel(settings.auth.tokens_file)}
        )
    if settings.tls is not None:
        updates["tls"] = _rel_paths(settings.tls, rel, ("cert", "key", "client_ca"))
    if settings.control is not None and settings.control.tls is not None:
        tls = _rel_paths(settings.control.tls, rel, ("ca", "cert", "key"))
        updates["control"] = settings.control.model_copy(update={"tls": tls})
    return settings.model_copy(update=updates)


_Part = TypeVar("_Part", bound=BaseModel)


def _rel_paths(part: _Part, rel: Callable[[Path], Path], names: tuple[str, ...]) -> _Part:
    """``part`` with its path fields ``names`` (those set) taken from the file's folder."""
    found = {name: getattr(part, name) for name in names}
    return part.model_copy(update={k: rel(v) for k, v in found.items() if v is not None})
