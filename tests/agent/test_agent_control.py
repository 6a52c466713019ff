"""Desired state from a control plane: a real HTTP service on loopback that the agent
reads at every sync, with ETags, a bearer token, per-node URLs and outages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from agent_helpers import Release, node_settings, publish_model, running_node, two_model_settings
from onnx_models import detector_model
from tierwise.agent import ControlPlane, ControlSettings
from tierwise.errors import ConfigError


@dataclass
class Control:
    """What the control plane answers, and what it was asked."""

    body: bytes = b'{"ref": "1"}'
    status: int = 200
    etag: str | None = '"v1"'
    token: str | None = None
    seen: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/fleet/{node}/desired") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def control() -> Iterator[Control]:
    state = Control()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            given = self.headers.get("Authorization")
            asked = self.headers.get("If-None-Match")
            state.seen.append((self.path, given, asked))
            if state.token is not None and given != f"Bearer {state.token}":
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if state.status == 200 and state.etag is not None and asked == state.etag:
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(state.status)
            if state.etag is not None:
                self.send_header("ETag", state.etag)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def _sync(url: str) -> dict[str, object]:
    answer = httpx.post(url + "/v2/agent/sync", timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["sync"]  # type: ignore[no-any-return]


def test_the_node_runs_what_the_control_plane_names(
    tmp_path: Path, release: Release, control: Control
) -> None:
    settings = node_settings(tmp_path, release, control={"url": control.url()})
    with running_node(settings) as node:
        _sync(node.url)  # the node's first sync, at start, may have activated it already
        assert node.status()["version"] == "1"
        assert control.seen[0][0] == "/fleet/store-1/desired"  # {node} filled in
        # unchanged: the agent asks with the ETag and keeps what it has
        assert _sync(node.url)["result"] == "up-to-date"
        assert control.seen[-1][2] == '"v1"'
        control.body, control.etag = b"ref: '2'\n", '"v2"'
        assert _sync(node.url)["result"] == "activated"
        status = node.status()
        assert (status["version"], status["desired"]) == ("2", "2")
        assert status["control"]["error"] is None
        # the node keeps its target in its own file, for restarts and outages
        assert yaml.safe_load(settings.desired_file.read_text()) == {"ref": "2"}


def test_an_outage_or_a_bad_answer_keeps_the_serving_version(
    tmp_path: Path, release: Release, control: Control
) -> None:
    settings = node_settings(tmp_path, release, control={"url": control.url()})
    with running_node(settings) as node:
        _sync(node.url)
        assert node.status()["version"] == "1"
        control.status, control.etag = 503, None
        assert _sync(node.url)["result"] == "up-to-date"
        status = node.status()
        assert status["version"] == "1"
        assert "answered 503; expected 200" in status["control"]["error"]
        control.status, control.body = 200, b'{"ref": "../../etc"}'
        assert _sync(node.url)["result"] == "up-to-date"
        assert "ref: expected a version, tag or sha256 digest" in node.status()["control"]["error"]
        assert yaml.safe_load(settings.desired_file.read_text()) == {"ref": "1"}
        control.body = b"x" * 70_000
        _sync(node.url)
        assert "more than 65536 bytes" in node.status()["control"]["error"]
        laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
            f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)
        ]
        control.body = "\n".join(laughs).encode()  # a few hundred bytes, 10^9 nodes
        _sync(node.url)
        assert "aliases are expanded" in node.status()["control"]["error"]
        assert node.status()["version"] == "1"
        control.body = b'{"ref": "2"}'
        assert _sync(node.url)["result"] == "activated"
        assert node.status()["control"]["error"] is None


def test_the_token_is_sent_and_refusals_are_reported(
    tmp_path: Path, release: Release, control: Control
) -> None:
    control.token = "fleet-secret"
    settings = node_settings(
        tmp_path, release, control={"url": control.url(), "token_env": "CONTROL_TOKEN"}
    )
    with running_node(settings, env={"CONTROL_TOKEN": "fleet-secret"}) as node:
        _sync(node.url)
        assert node.status()["version"] == "1"
        assert control.seen[-1][1] == "Bearer fleet-secret"
        control.token = "rotated"
        _sync(node.url)
        error = node.status()["control"]["error"]
        assert "answered 401" in error
        assert "fleet-secret" not in error


def test_the_control_plane_names_a_reference_per_bundle(
    tmp_path: Path, release: Release, control: Control, shared_zoo_dir: Path
) -> None:
    detector = detector_model(tmp_path / "detector.onnx")
    publish_model(release.store, release.keys, release.tmp, "detector", "1", detector,
                  variant="neck")  # fmt: skip
    for version, source in (("1", "tiny"), ("2", "tiny-int8")):
        publish_model(release.store, release.keys, release.tmp, "classifier", version,
                      shared_zoo_dir / source / "1" / "model.onnx", variant="tiny")  # fmt: skip
    control.body = b'{"refs": {"detector": "1", "classifier": "1"}}'
    registry = {"store": str(release.root), "trusted_keys": [release.keys.public_path]}
    settings = two_model_settings(tmp_path, registry, control={"url": control.url()})

    def versions() -> dict[str, tuple[str, int]]:
        bundles = node.status()["bundles"]
        return {name: (b["version"], b["generation"]) for name, b in bundles.items()}

    with running_node(settings) as node:
        _sync(node.url)  # the node's first sync, at start, may have activated them already
        assert versions() == {"detector": ("1", 1), "classifier": ("1", 2)}
        control.body, control.etag = b"refs: {detector: '1', classifier: '2'}\n", '"v2"'
        results = _sync(node.url)["bundles"]
        assert isinstance(results, dict)
        assert {n: r["result"] for n, r in results.items()} == {
            "detector": "up-to-date", "classifier": "activated",
        }  # fmt: skip
        assert versions() == {"detector": ("1", 1), "classifier": ("2", 3)}
        kept = {"refs": {"classifier": "2", "detector": "1"}}
        assert yaml.safe_load(settings.desired_file.read_text()) == kept
        # a bundle this node does not sync: the answer is refused, the node keeps its own
        control.body, control.etag = b'{"refs": {"tracker": "1"}}', '"v3"'
        _sync(node.url)
        error = node.status()["control"]["error"]
        assert "refs: expected bundles this node syncs (detector, classifier)" in error
        assert yaml.safe_load(settings.desired_file.read_text()) == kept
        assert versions() == {"detector": ("1", 1), "classifier": ("2", 3)}


def test_control_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="url"):
        ControlSettings.model_validate({"url": "ftp://control/desired"})
    settings = ControlSettings(url="http://control.example/desired", token_env="TOKEN")
    with pytest.raises(ConfigError, match="TOKEN is not set"):
        ControlPlane(settings, "n", {})
    with pytest.raises(ConfigError, match="https URL"):
        ControlPlane(settings, "n", {"TOKEN": "t"})
    loopback = ControlSettings(url="http://127.0.0.1:9/desired", token_env="TOKEN")
    assert ControlPlane(loopback, "n", {"TOKEN": "t"}).token == "t"
