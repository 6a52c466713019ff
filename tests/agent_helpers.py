"""Helpers for edge agent tests: a release store of a digits bundle, node settings (one
bundle, or a detector and a classifier as two bundles), and a running node (tier server +
agent endpoints, and a gateway on a second port)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from registry_helpers import make_keys
from tierwise.agent import AgentApp, AgentSettings, build_agent_app
from tierwise.registry import (
    BundleManifest,
    BundleStore,
    KeyPair,
    LocalStore,
    Signer,
    create_bundle,
    push,
    read_bundle_dir,
)
from tierwise.security import TlsServerSettings

#: the two bundles of a node that runs two models: (bundle, variant, served model name)
DETECTOR = ("detector", "neck", "detector")
CLASSIFIER = ("classifier", "tiny", "classifier")


@dataclass
class Release:
    """A release store and the key that signs into it."""

    root: Path
    store: LocalStore
    keys: KeyPair
    versions: dict[str, BundleManifest]
    tmp: Path

    def publish(self, version: str, source: Path, *, variant: str = "small") -> BundleManifest:
        folder = self.tmp / f"src-{version}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / f"{variant}.onnx")
        out = self.tmp / f"bundle-{version}"
        manifest = create_bundle([folder / f"{variant}.onnx"], out, name="digits", version=version)
        push(read_bundle_dir(out), self.store, Signer.from_file(self.keys.private_path))
        self.versions[version] = manifest
        return manifest


def make_release(tmp_path: Path, zoo: Path) -> Release:
    """Versions 1 (the zoo's small model) and 2 (its int8 twin) of bundle ``digits``."""
    root = tmp_path / "release"
    made = Release(root, LocalStore(root), make_keys(tmp_path), {}, tmp_path / "work")
    made.publish("1", zoo / "small" / "1" / "model.onnx")
    made.publish("2", zoo / "small-int8" / "1" / "model.onnx")
    return made


def _settings(tmp_path: Path, registry: dict[str, Any], **fields: Any) -> AgentSettings:
    """Node ``store-1`` under ``tmp_path`` syncing from ``registry``, with ``fields`` on top."""
    data: dict[str, Any] = {
        "node": "store-1",
        "state_dir": tmp_path / "node",
        "port": 0,
        "registry": registry,
        "desired_file": tmp_path / "desired.yaml",
        "sync_interval_s": 3600,
        "keep_versions": 3,
        "drain_timeout_s": 5,
    }
    data.update(fields)
    return AgentSettings.model_validate(data)


def node_settings(tmp_path: Path, release: Release, **extra: Any) -> AgentSettings:
    registry = extra.pop(
        "registry", {"store": str(release.root), "trusted_keys": [release.keys.public_path]}
    )
    fields: dict[str, Any] = {"bundle": "digits", "serve": [{"variant": "small"}]}
    return _settings(tmp_path, registry, **(fields | extra))


def publish_model(
    store: BundleStore, keys: KeyPair, tmp: Path, bundle: str, version: str, source: Path,
    *, variant: str,
) -> BundleManifest:  # fmt: skip
    """Make a one-variant bundle ``bundle:version`` of the model at ``source``, sign it with
    ``keys`` and push it to ``store``."""
    folder = tmp / f"src-{bundle}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, folder / f"{variant}.onnx")
    out = tmp / f"bundle-{bundle}-{version}"
    manifest = create_bundle([folder / f"{variant}.onnx"], out, name=bundle, version=version)
    push(read_bundle_dir(out), store, Signer.from_file(keys.private_path))
    return manifest


def two_model_settings(tmp_path: Path, registry: dict[str, Any], **extra: Any) -> AgentSettings:
    """A node that syncs the bundles ``detector`` and ``classifier`` from ``registry``."""
    bundles = [
        {"name": name, "serve": [{"variant": variant, "model": model}]}
        for name, variant, model in (DETECTOR, CLASSIFIER)
    ]
    return _settings(tmp_path, registry, **({"bundles": bundles} | extra))


@dataclass
class RunningNode:
    """A node started by :func:`running_node`; its helpers send ``token`` when set."""

    app: AgentApp
    port: int
    gateway_port: int | None
    scheme: str = "http"
    token: str | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.gateway_port}"

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.token is None else {"Authorization": f"Bearer {self.token}"}

    def status(self) -> dict[str, Any]:
        answer = httpx.get(self.url + "/v2/agent/status", headers=self.headers, timeout=10)
        return answer.json()  # type: ignore[no-any-return]

    def desired(self, ref: str, *, bundle: str | None = None) -> dict[str, Any]:
        body = {"ref": ref} | ({"bundle": bundle} if bundle is not None else {})
        response = httpx.put(
            self.url + "/v2/agent/desired", json=body, headers=self.headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def desired_refs(self, refs: dict[str, str]) -> dict[str, Any]:
        response = httpx.put(
            self.url + "/v2/agent/desired", json={"refs": refs}, headers=self.headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def rollback(self, **body: str) -> httpx.Response:
        return httpx.post(
            self.url + "/v2/agent/rollback", json=body, headers=self.headers, timeout=60
        )


def _socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def running_node(
    settings: AgentSettings, env: dict[str, str] | None = None, *, token: str | None = None
) -> Iterator[RunningNode]:
    """The node on uvicorn in a background thread: its port, and a gateway port when the
    settings have a gateway; HTTPS when the settings have ``tls``. The node's helpers send
    ``token``."""
    sockets = [_socket()]
    gateway_port = None
    if settings.gateway is not None:
        sockets.append(_socket())
        gateway_port = int(sockets[1].getsockname()[1])
    app = build_agent_app(
        settings, env=env or {}, gateway_port=gateway_port,
        port=int(sockets[0].getsockname()[1]),
    )  # fmt: skip
    tls: TlsServerSettings | None = settings.tls
    config = uvicorn.Config(
        app, loop="asyncio", http="httptools", lifespan="on", access_log=False,
        log_config=None, timeout_graceful_shutdown=5,
        **(tls.uvicorn_options() if tls is not None else {}),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("agent did not start")
        time.sleep(0.01)
    try:
        scheme = "https" if tls is not None else "http"
        yield RunningNode(app, int(sockets[0].getsockname()[1]), gateway_port, scheme, token)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        for sock in sockets:
            sock.close()
