"""Heartbeats to a control plane: a real HTTP endpoint on loopback takes the node's
heartbeats (labels, status, per-bundle counters) and answers with desired states and
intervals; it also goes down, fails and answers junk. The node serves a bundle of a
model built here with onnx.helper (not by the zoo) beside the zoo's digits model."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from agent_helpers import Release, node_settings, publish_model, running_node
from onnx_models import scale_model
from server_helpers import free_port, running_app, running_server
from tierwise.agent import (
    AgentSettings,
    ControlSettings,
    Heartbeat,
    build_agent_app,
    check_labels,
    load_agent_settings,
)
from tierwise.agent.heartbeat import parse_answer
from tierwise.errors import ConfigError
from tierwise.server import ServerSettings
from tierwise.telemetry.families import LATENCY_BUCKETS_S

COUNTER_KEYS = {
    "started_s", "digest", "requests", "errors", "latency_bounds_s", "latency_counts",
    "energy_j", "inferences", "agree", "disagree", "routed", "fallbacks",
}  # fmt: skip
DOCUMENT_KEYS = {"node", "labels", "sent_s", "address", "gateway_address", "status", "counters"}
X = np.arange(8, dtype=np.float32).reshape(2, 4)


@dataclass
class Plane:
    """A control plane on loopback: the heartbeats it took, and what it answers."""

    port: int = 0
    beats: list[dict[str, Any]] = field(default_factory=list)
    posts: int = 0
    #: ok, 500, junk, large or stranger (names another node)
    mode: str = "ok"
    desired: dict[str, Any] | None = None
    heartbeat_s: float | None = None
    #: the Authorization header of the last heartbeat
    authorization: str | None = None
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, what: str) -> str:
        return f"http://127.0.0.1:{self.port}/v1/nodes/{{node}}/{what}"

    def control(self, heartbeat_s: float = 0.2) -> dict[str, Any]:
        return {"url": self.url("desired"), "heartbeat_url": self.url("heartbeat"),
                "heartbeat_s": heartbeat_s, "timeout_s": 2}  # fmt: skip

    def answer(self, node: str) -> tuple[int, bytes]:
        if self.mode == "500":
            return 500, b'{"error": "down for maintenance"}'
        if self.mode == "junk":
            return 200, b"<html>a captive portal</html>"
        if self.mode == "large":
            return 200, b'{"pad": "' + b"x" * 70_000 + b'"}'
        doc = {"node": "stranger" if self.mode == "stranger" else node,
               "desired": self.desired, "heartbeat_s": self.heartbeat_s}  # fmt: skip
        return 200, json.dumps(doc).encode()

    def start(self) -> None:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                node = self.path.split("/")[3]
                with plane.lock:
                    plane.posts += 1
                    plane.authorization = self.headers.get("Authorization")
                    if plane.mode == "ok":
                        plane.beats.append(json.loads(body))
                    status, answer = plane.answer(node)
                self._send(status, answer)

            def do_GET(self) -> None:  # the desired state a sync polls
                if plane.desired is None:
                    self.send_response(304)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._send(200, json.dumps(plane.desired).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def last(self) -> dict[str, Any]:
        with self.lock:
            return self.beats[-1]

    def count(self) -> int:
        with self.lock:
            return len(self.beats)


@pytest.fixture
def plane() -> Iterator[Plane]:
    made = Plane()
    made.start()
    yield made
    made.stop()


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def publish_scale(release: Release, tmp_path: Path) -> dict[str, str]:
    """Bundle ``scale`` versions 1 (y = 2x) and 2 (y = 3x); their digests."""
    digests = {}
    for version, factor in (("1", 2.0), ("2", 3.0)):
        model = scale_model(tmp_path / "models" / f"scale-{version}.onnx", factor)
        manifest = publish_model(release.store, release.keys, release.tmp, "scale", version,
                                 model, variant="scale")  # fmt: skip
        digests[version] = manifest.digest
    return digests


def scale_settings(tmp_path: Path, release: Release, **extra: Any) -> AgentSettings:
    """A node syncing ``scale`` (onnx.helper) and ``digits`` (the zoo's small model)."""
    bundles = [{"name": "scale", "serve": [{"variant": "scale"}]},
               {"name": "digits", "serve": [{"variant": "small"}]}]  # fmt: skip
    fields = {"bundle": None, "serve": None, "bundles": bundles, "port": free_port()}
    return node_settings(tmp_path, release, **(fields | extra))


@contextmanager
def serving(settings: AgentSettings, env: dict[str, str] | None = None) -> Iterator[str]:
    """The node on its settings' port; its URL."""
    app = build_agent_app(settings, env=env or {}, port=settings.port)
    with running_app(app, settings.port):
        yield f"http://127.0.0.1:{settings.port}"


def infer_scale(url: str, name: str = "x") -> tuple[int, list[float]]:
    body = {"inputs": [{"name": name, "shape": [2, 4], "datatype": "FP32",
                        "data": X.ravel().tolist()}]}  # fmt: skip
    response = httpx.post(url + "/v2/models/scale/infer", json=body, timeout=10)
    if response.status_code != 200:
        return response.status_code, []
    return 200, response.json()["outputs"][0]["data"]


def status(url: str) -> dict[str, Any]:
    return httpx.get(url + "/v2/agent/status", timeout=10).json()  # type: ignore[no-any-return]


def test_heartbeats_carry_labels_status_and_counters(
    tmp_path: Path, release: Release, plane: Plane
) -> None:
    digests = publish_scale(release, tmp_path)
    settings = scale_settings(
        tmp_path, release, labels={"site": "a", "hw": "pi5", "canary": "true"},
        control=plane.control(), energy={"active_watts": 5.0, "idle_watts": 3.0, "rapl": "off"},
    )  # fmt: skip
    settings.desired_file.write_text(yaml.safe_dump({"refs": {"scale": "1", "digits": "1"}}))
    with serving(settings) as url:

        def both_serving() -> dict[str, Any] | None:
            last = plane.last() if plane.count() else None
            counters = last["counters"] if last else {}
            return last if counters and all(c["digest"] for c in counters.values()) else None

        first = wait_for(both_serving, "a heartbeat from the node serving both bundles")
        assert set(first) == DOCUMENT_KEYS
        assert first["node"] == "store-1"
        assert first["labels"] == {"site": "a", "hw": "pi5", "canary": "true"}
        assert first["address"] == f"http://127.0.0.1:{settings.port}"
        assert first["gateway_address"] is None
        assert abs(first["sent_s"] - time.time()) < 30
        assert set(first["counters"]) == {"scale", "digits"}
        for counters in first["counters"].values():
            assert set(counters) == COUNTER_KEYS
            assert counters["latency_bounds_s"] == list(LATENCY_BUCKETS_S)
            assert len(counters["latency_counts"]) == len(LATENCY_BUCKETS_S) + 1
            assert counters["agree"] == counters["routed"] == counters["fallbacks"] == 0
        scale = first["counters"]["scale"]
        assert scale["digest"] == digests["1"]
        assert first["status"]["bundles"]["scale"]["version"] == "1"
        assert first["status"]["labels"] == first["labels"]
        assert first["status"]["health"]["ready"] is True
        started = scale["started_s"]

        for _ in range(5):
            assert infer_scale(url) == (200, (X * 2).ravel().tolist())
        assert infer_scale(url, name="not-an-input")[0] == 400
        count = plane.count()
        grown = wait_for(
            lambda: plane.count() > count + 1 and plane.last()["counters"],
            "a heartbeat after the requests",
        )
        scale, digits = grown["scale"], grown["digits"]
        was = first["counters"]["scale"]
        assert scale["requests"] - was["requests"] == 6
        assert scale["errors"] - was["errors"] == 1  # the bad input: any outcome but success
        counts = scale["latency_counts"]
        assert counts == sorted(counts)  # cumulative
        assert counts[-1] == scale["requests"]
        assert scale["energy_j"] > was["energy_j"]
        assert scale["inferences"] - was["inferences"] == 10  # five requests of two rows
        assert scale["started_s"] == digits["started_s"] == started
        assert digits["requests"] == 0  # counted for the bundle whose model answered
        assert digits["digest"] == release.versions["1"].digest
        assert plane.last()["sent_s"] > first["sent_s"]

        shown = status(url)
        assert shown["labels"] == {"site": "a", "hw": "pi5", "canary": "true"}
        assert shown["control"]["heartbeat_error"] is None
        assert shown["control"]["heartbeat_url"] == plane.url("heartbeat").replace(
            "{node}", "store-1"
        )
        assert shown["control"]["last_heartbeat_s"] > first["sent_s"]


def test_a_heartbeat_answer_moves_the_node_at_once(
    tmp_path: Path, release: Release, plane: Plane
) -> None:
    digests = publish_scale(release, tmp_path)
    control = plane.control(heartbeat_s=0.3) | {"token_env": "FLEET_TOKEN"}
    settings = scale_settings(tmp_path, release, control=control, sync_interval_s=300)
    plane.desired = {"refs": {"scale": "1"}}
    with serving(settings, env={"FLEET_TOKEN": "fleet-secret-7"}) as url:
        wait_for(lambda: status(url)["bundles"]["scale"]["version"] == "1", "scale:1")
        # the control plane decides: the next heartbeat's answer carries it
        asked = time.monotonic()
        plane.desired, plane.heartbeat_s = {"refs": {"scale": "2"}}, 0.25
        wait_for(lambda: infer_scale(url)[1] == (X * 3).ravel().tolist(), "scale:2 serving")
        assert time.monotonic() - asked < 10  # one heartbeat, not the 300 s sync interval
        assert plane.authorization == "Bearer fleet-secret-7"
        assert yaml.safe_load(settings.desired_file.read_text()) == {"refs": {"scale": "2"}}
        shown = status(url)
        assert shown["bundles"]["scale"]["digest"] == digests["2"]
        assert shown["control"]["heartbeat_s"] == 0.25
        assert shown["bundles"]["digits"]["version"] is None  # named by nobody: not synced
        wait_for(lambda: plane.last()["counters"]["scale"]["digest"] == digests["2"],
                 "a heartbeat naming the new digest")  # fmt: skip
        # an interval under the bound is raised to it
        plane.heartbeat_s = 0.01
        wait_for(lambda: status(url)["control"]["heartbeat_s"] == 0.2, "the bounded interval")


def test_a_failing_control_plane_never_stops_the_node(
    tmp_path: Path, release: Release, plane: Plane, caplog: pytest.LogCaptureFixture
) -> None:
    publish_scale(release, tmp_path)
    settings = scale_settings(tmp_path, release, control=plane.control(heartbeat_s=0.2))
    settings.desired_file.write_text(yaml.safe_dump({"refs": {"scale": "1"}}))
    caplog.set_level(logging.INFO, logger="tierwise.agent")

    def error() -> str | None:
        return status(url)["control"]["heartbeat_error"]  # type: ignore[no-any-return]

    with serving(settings) as url:
        wait_for(lambda: status(url)["bundles"]["scale"]["version"] == "1", "scale:1")
        cases = [
            ("500", "answered a heartbeat with 500; expected 200"),
            ("junk", "expected a JSON answer"),
            ("large", "with more than 65536 bytes"),
            ("stranger", "node: expected this node's name (store-1), got 'stranger'"),
        ]
        for mode, needle in cases:
            plane.mode = mode
            wait_for(lambda n=needle: n in (error() or ""), f"the {mode} error")  # type: ignore[misc]
            posts = plane.posts
            wait_for(lambda p=posts: plane.posts >= p + 3, "three more heartbeats")  # type: ignore[misc]
            assert infer_scale(url)[0] == 200
            said = [r for r in caplog.records if needle in r.getMessage()]
            assert len(said) == 1, f"{mode}: logged {len(said)} times"
        # a desired state naming a bundle this node does not sync is refused as a whole
        plane.mode, plane.desired = "ok", {"refs": {"tracker": "1"}}
        wait_for(lambda: "bundles this node syncs (scale, digits)" in (error() or ""), "refusal")
        plane.desired = None
        wait_for(lambda: error() is None, "recovery")
        # the control plane goes away altogether, then comes back on the same port
        plane.stop()
        wait_for(lambda: "did not take a heartbeat" in (error() or ""), "the outage")
        last = status(url)["control"]["last_heartbeat_s"]
        time.sleep(0.6)
        assert status(url)["control"]["last_heartbeat_s"] == last
        assert infer_scale(url)[0] == 200
        count = plane.count()
        plane.start()
        wait_for(lambda: error() is None and plane.count() > count, "recovery after the outage")
        assert status(url)["control"]["last_heartbeat_s"] > last
        assert status(url)["bundles"]["scale"]["version"] == "1"
        assert yaml.safe_load(settings.desired_file.read_text()) == {"refs": {"scale": "1"}}
    recovered = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(recovered) == 2


def _plan(path: Path, cloud: str) -> Path:
    path.write_text(
        f"""
version: 1
tiers:
  edge:
    kind: edge
    site: store-1
    region: us-east
    url: http://127.0.0.1:9
    model: small
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.00001
    timeout_s: 5
  gone:
    kind: cloud
    region: us-east
    url: http://127.0.0.1:9
    model: small
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.00001
    timeout_s: 1
  cloud:
    kind: cloud
    region: us-east
    url: {cloud}
    model: small
    rtt_p50_ms: 1
    rtt_p99_ms: 5
    cost_usd_per_inference: 0.0002
    timeout_s: 5
workloads:
  digits:
    privacy: public
    reeval: {{rate: 1.0, tier: cloud, max_in_flight: 64}}
    cascade:
      - {{tier: edge, rule: max_prob, threshold: 0.0}}
      - {{tier: cloud}}
  detour:
    privacy: public
    cascade:
      - {{tier: gone, rule: max_prob, threshold: 0.0}}
      - {{tier: edge}}
"""
    )
    return path


def test_the_router_fronts_counters_are_the_bundles(
    tmp_path: Path, release: Release, plane: Plane, shared_zoo_dir: Path
) -> None:
    publish_scale(release, tmp_path)
    repo = tmp_path / "cloud-repo" / "small" / "1"
    repo.mkdir(parents=True)
    (repo / "model.onnx").write_bytes((shared_zoo_dir / "small" / "1" / "model.onnx").read_bytes())
    cloud_settings = ServerSettings.model_validate({"model_repo": repo.parents[1]})
    row = np.random.default_rng(5).random((1, 8, 8), dtype=np.float32).ravel().tolist()
    body = {"inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32", "data": row}]}
    with running_server(cloud_settings) as cloud:
        settings = scale_settings(
            tmp_path, release, control=plane.control(),
            gateway={"plan": _plan(tmp_path / "plan.yaml", cloud.url), "local_tier": "edge"},
        )  # fmt: skip
        settings.desired_file.write_text(yaml.safe_dump({"refs": {"scale": "1", "digits": "1"}}))
        with running_node(settings) as node:
            wait_for(lambda: node.status()["health"]["ready"], "both bundles serving")
            for workload, times in (("digits", 4), ("detour", 3)):
                for _ in range(times):
                    answer = httpx.post(f"{node.gateway_url}/v2/models/{workload}/infer",
                                        json=body, timeout=30)  # fmt: skip
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["parameters"]["tier"] == "edge"

            done = time.time()

            def counted() -> dict[str, Any] | None:
                last = plane.last()
                counters: dict[str, Any] = last["counters"]
                checked = counters["digits"]["agree"] + counters["digits"]["disagree"]
                return counters if last["sent_s"] > done and checked == 4 else None

            counters = wait_for(counted, "the re-evaluations in a heartbeat")
            digits, scale = counters["digits"], counters["scale"]
            assert (digits["agree"], digits["disagree"]) == (4, 0)  # the same model agrees
            assert digits["routed"] == 7
            assert digits["fallbacks"] == 3  # each detour first tried the tier that is gone
            assert digits["requests"] == 7  # the edge tier is this node's own server
            assert {k: scale[k] for k in ("agree", "disagree", "routed", "fallbacks")} == {
                "agree": 0, "disagree": 0, "routed": 0, "fallbacks": 0,
            }  # fmt: skip
            assert plane.last()["gateway_address"] == node.gateway_url


def test_labels_follow_kubernetes_rules(tmp_path: Path) -> None:
    good = {"site": "a", "tierwise.dev/hw": "pi5", "canary": "true", "empty": "", "a.b_c-d": "x"}
    assert check_labels(good) == good
    with pytest.raises(ConfigError, match="labels: expected at most 64 labels, got 65"):
        check_labels({f"k{i}": "v" for i in range(65)})
    for key, value, needle in [
        ("bad key", "x", "labels.bad key: expected a label key"),
        ("-site", "x", "labels.-site: expected a label key"),
        ("x" * 64, "x", "expected a label key"),
        ("Upper.Case/hw", "x", "expected a label key"),
        ("/hw", "x", "expected a label key"),
        ("site", "a b", "labels.site: expected a label value"),
        ("site", "y" * 64, "labels.site: expected a label value"),
        ("site", "trailing-", "labels.site: expected a label value"),
    ]:
        config = tmp_path / "agent.yaml"
        config.write_text(AGENT_YAML.format(port=0, store=tmp_path, key=tmp_path / "k.pub")
                          + f"labels: {json.dumps({key: value})}\n")  # fmt: skip
        with pytest.raises(ConfigError) as info:
            load_agent_settings(config)
        assert needle in str(info.value)
    config.write_text(AGENT_YAML.format(port=0, store=tmp_path, key=tmp_path / "k.pub")
                      + "labels: {canary: true}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"labels\.canary: Input should be a valid string"):
        load_agent_settings(config)


def test_heartbeat_settings_are_checked() -> None:
    for bad in ({"heartbeat_url": "ftp://control/beat"}, {"heartbeat_s": 0},
                {"heartbeat_s": 3601}):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            ControlSettings.model_validate({"url": "http://127.0.0.1:9/desired", **bad})
    remote = ControlSettings(url="https://control.example/desired", token_env="TOKEN",
                             heartbeat_url="http://control.example/{node}/beat")  # fmt: skip
    with pytest.raises(ConfigError, match=r"heartbeat_url: expected an https URL"):
        Heartbeat(remote, "n", {"TOKEN": "t"})
    with pytest.raises(ConfigError, match="TOKEN is not set"):
        Heartbeat(remote, "n", {})
    loopback = remote.model_copy(update={"heartbeat_url": "http://127.0.0.1:9/{node}/beat"})
    beat = Heartbeat(loopback, "shelf 7", {"TOKEN": "t"})
    assert (beat.token, beat.url) == ("t", "http://127.0.0.1:9/shelf%207/beat")


def test_heartbeat_answers_are_checked() -> None:
    answer = parse_answer(b'{"node": "n", "desired": {"refs": {"a": "2"}}, "heartbeat_s": 1e9}',
                          "n", "cp")  # fmt: skip
    assert answer.desired is not None
    assert answer.desired.reference("a") == "2"
    assert answer.heartbeat_s == 3600.0
    assert parse_answer(b'{"desired": null, "heartbeat_s": null}', "n", "cp").desired is None
    for content, needle in [
        (b"[1, 2]", "cp: expected a JSON object"),
        (b'{"desired": "2"}', "cp: desired: expected"),
        (b'{"desired": {"refs": {"a": "../x"}}}', "refs.a: expected a version"),
        (b'{"heartbeat_s": "soon"}', "heartbeat_s: expected a number of seconds"),
        (b'{"heartbeat_s": true}', "heartbeat_s: expected a number of seconds"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_answer(content, "n", "cp")
        assert needle in str(info.value)


AGENT_YAML = """node: shelf-7
state_dir: node
port: {port}
bundle: digits
serve: [{{variant: small}}]
registry: {{store: {store}, trusted_keys: [{key}]}}
desired_file: desired.yaml
"""


def test_label_flags_add_to_and_override_the_files_labels(
    tmp_path: Path, release: Release, plane: Plane
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        AGENT_YAML.format(port=0, store=release.root, key=release.keys.public_path)
        + "labels: {site: a, hw: pi5}\n"
        + f"control: {json.dumps(plane.control())}\n"
    )
    command = [sys.executable, "-m", "tierwise", "agent", "--config", str(config)]
    refused = subprocess.run([*command, "--label", "canary=no way"], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "--label canary: expected a label value" in refused.stderr
    refused = subprocess.run([*command, "--label", "canary"], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "--label: expected KEY=VALUE" in refused.stderr
    log = (tmp_path / "agent.log").open("wb")
    process = subprocess.Popen([*command, "--label", "site=b", "--label", "canary=true"],
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        beat = wait_for(lambda: plane.count() and plane.last(), "a heartbeat", timeout_s=60)
        assert beat["node"] == "shelf-7"
        assert beat["labels"] == {"site": "b", "hw": "pi5", "canary": "true"}
        # port 0 in the file: the heartbeat gives the port the node was bound to
        address = beat["address"]
        assert address.startswith("http://127.0.0.1:")
        assert not address.endswith(":0")
        assert status(address)["labels"] == beat["labels"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
