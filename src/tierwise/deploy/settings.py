"""What ``tierwise deploy`` is told beyond the plan: image, runtime, storage, flavours.

The plan says which tiers exist and where; these settings say how they run on a cluster
(:mod:`tierwise.deploy.k8s`) or on a box (:mod:`tierwise.deploy.systemd`). Secrets are
named, never held: ``secret_name`` is the Kubernetes ``Secret`` whose keys the pods read
(:data:`SECRET_KEYS`), and an agent's tokens are environment variable names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tierwise import __version__

__all__ = [
    "ALL_INTERFACES",
    "DEFAULT_IMAGE",
    "DEFAULT_MAX_REPLICAS",
    "DEFAULT_SCALE_TARGET",
    "DEFAULT_THERMAL_ZONE",
    "GATEWAY_PORT",
    "SECRET_KEYS",
    "SCRATCH_DIR",
    "SERVER_PORT",
    "DeploySettings",
    "EdgeFlavour",
    "Progressive",
    "Runtime",
]

EdgeFlavour = Literal["kubeedge", "openyurt", "k3s"]
Progressive = Literal["flagger", "argo", "none"]
Runtime = Literal["tierwise", "triton"]

#: The image every workload runs unless told otherwise (built from the ``Containerfile``).
DEFAULT_IMAGE = f"ghcr.io/tierwise/tierwise:{__version__}"
#: Where servers listen in their pods and on edge boxes: every interface (they are guarded
#: by tokens; see :data:`SECRET_KEYS`).
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
#: The one writable folder of a container (an ``emptyDir``): ``HOME``, caches, scratch.
SCRATCH_DIR = "/tmp"  # noqa: S108
#: Port of a cloud tier's server (``tierwise serve``) in its pod; an edge node listens on
#: the port of its tier's ``url``.
SERVER_PORT = 8001
#: Port of the router front (``tierwise gateway``, the agent's gateway).
GATEWAY_PORT = 8080
#: A cloud tier whose spec gives no ``max_node_count`` scales up to this many replicas.
DEFAULT_MAX_REPLICAS = 3
#: Concurrent requests per replica KServe scales at, where the spec says nothing better.
DEFAULT_SCALE_TARGET = 4
#: Keys of ``secret_name`` the pods read (by ``secretKeyRef``), by what they hold.
SECRET_KEYS = {
    "control_token": "control-token",
    "registry_password": "registry-password",
    "storage_access_key": "storage-access-key",
    "storage_secret_key": "storage-secret-key",
    "tokens": "tokens",
    "metrics_token": "metrics-token",
}

#: The thermal zone an edge node's temperature is read from, unless told.
DEFAULT_THERMAL_ZONE = "/sys/class/thermal/thermal_zone0"

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class DeploySettings(BaseModel):
    """How a plan is put onto Kubernetes or systemd.

    ``storage_uri`` is where a cloud tier's model bundle lives, ``oci://`` or ``s3://``;
    ``{tier}`` and ``{model}`` in it become the tier's name and served model. ``registry``
    is the bundle registry edge agents sync from (``oci://HOST/PREFIX``); ``thermal_zone``
    is the host's folder an edge pod reads its temperature from (mounted at the same path).
    ``canary_traffic_percent`` (KServe's own canary, without ``progressive``) sends that
    share of a cloud tier's traffic to its latest revision while a rollout runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(default=DEFAULT_IMAGE, min_length=1, pattern=r"^\S+$")
    namespace: str = Field(default="tierwise", pattern=_DNS_LABEL)
    runtime: Runtime = "tierwise"
    triton_image: str = Field(default="nvcr.io/nvidia/tritonserver:24.08-py3", pattern=r"^\S+$")
    storage_initializer_image: str = Field(
        default="kserve/storage-initializer:v0.15.2", pattern=r"^\S+$"
    )
    storage_uri: str = Field(default="oci://registry.example.com/tierwise/{model}:latest")
    registry: str = Field(default="oci://registry.example.com/tierwise", pattern=r"^oci://\S+$")
    edge: EdgeFlavour = "k3s"
    progressive: Progressive = "none"
    gates: tuple[str, ...] = ()
    interval_s: float = Field(default=60.0, ge=10, le=3600)
    failure_limit: int = Field(default=4, ge=1, le=100)
    canary_step_percent: int = Field(default=10, ge=1, le=50)
    canary_max_percent: int = Field(default=50, ge=1, le=100)
    canary_traffic_percent: int | None = Field(default=None, ge=0, le=100)
    secret_name: str = Field(default="tierwise", pattern=_DNS_LABEL)
    state_dir: str = Field(default="/var/lib/tierwise", pattern=r"^/\S*$")
    thermal_zone: str = Field(default=DEFAULT_THERMAL_ZONE, pattern=r"^/sys/class/thermal/\S+$")

    @field_validator("storage_uri")
    @classmethod
    def _storage(cls, value: str) -> str:
        if not value.startswith(("oci://", "s3://")):
            raise ValueError(f"expected an oci:// or s3:// URI, got {value!r}")
        return value
