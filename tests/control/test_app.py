"""The control plane's HTTP API on loopback (a real uvicorn server, SQLite store and signed
local registry): heartbeats are stored and answered with the node's desired versions,
``GET .../desired`` speaks ETags, bad heartbeats are refused with 4xx and store nothing,
every route asks the right scope, and the audit log names clients, never tokens."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry_helpers import make_keys, publish
from server_helpers import running_app
from tierwise.control.service import build_control_app
from tierwise.control.settings import ControlSettings
from tierwise.control.store_open import open_control_store
from tierwise.registry import LocalStore
from tierwise.security.tokens import hash_line, make_token

COUNTERS = {
    "started_s": 5.0, "digest": None, "requests": 3, "errors": 0,
    "latency_bounds_s": [0.001, 0.01], "latency_counts": [1, 3, 3], "energy_j": 0.5,
    "inferences": 3, "agree": 0, "disagree": 0, "routed": 0, "fallbacks": 0,
}  # fmt: skip


class Plane:
    def __init__(self, url: str, tokens: dict[str, str], db: Path, digests: dict[str, str]):
        self.url = url
        self.tokens = tokens
        self.db = db
        self.digests = digests

    def client(self, who: str | None = "ops") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def beat(self, node: str, *, who: str = "agent", **doc: Any) -> httpx.Response:
        body = {"labels": {"hw": "pi5"}, "status": {"bundles": {"digits": {
            "version": "1", "digest": self.digests["1"], "ready": True}}},
            "counters": {"digits": COUNTERS}} | doc  # fmt: skip
        with self.client(who) as client:
            return client.post(f"/v1/nodes/{node}/heartbeat", json=body)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    registry = LocalStore(tmp_path / "registry", create=True)
    keys = make_keys(tmp_path)
    digests = {
        v: publish(registry, tmp_path, keys, v, {"small": int(v)}, name="digits").digest
        for v in ("1", "2")
    }
    tokens: dict[str, str] = {}
    lines = []
    for client, scopes in (("ops", "admin,telemetry"), ("agent", "telemetry"), ("app", "infer")):
        tokens[client], record = make_token(client, scopes)
        lines.append(hash_line(record))
    (tmp_path / "tokens").write_text("\n".join(lines) + "\n")
    settings = ControlSettings.model_validate({
        "store": str(tmp_path / "control.db"), "heartbeat_s": 5, "max_nodes": 3,
        "max_body_bytes": 4096, "auth": {"tokens_file": str(tmp_path / "tokens")},
        "registry": {"store": str(tmp_path / "registry"), "trusted_keys": [keys.public_path]},
    })  # fmt: skip
    app = build_control_app(settings, env={})
    with running_app(app) as (_, port):
        yield Plane(f"http://127.0.0.1:{port}", tokens, tmp_path / "control.db", digests)


def test_heartbeats_are_stored_and_answered_with_the_desired_version(plane: Plane) -> None:
    first = plane.beat("edge-1")
    assert first.status_code == 200, first.text
    assert first.json() == {"node": "edge-1", "desired": None, "heartbeat_s": 5.0}
    with plane.client() as ops:
        none_yet = ops.get("/v1/nodes/edge-1/desired")
        assert none_yet.status_code == 304  # nothing desired yet: the agent keeps its own
        set_it = ops.put("/v1/desired", json={"bundle": "digits", "ref": "2"})
        assert set_it.status_code == 200, set_it.text
        assert set_it.json()["nodes"] == ["edge-1"]
        desired = ops.get("/v1/nodes/edge-1/desired")
        assert desired.json() == {"refs": {"digits": plane.digests["2"]}}
        etag = desired.headers["etag"]
        assert ops.get("/v1/nodes/edge-1/desired",
                       headers={"If-None-Match": etag}).status_code == 304  # fmt: skip
        node = ops.get("/v1/nodes/edge-1").json()
    assert plane.beat("edge-1").json()["desired"] == {"refs": {"digits": plane.digests["2"]}}
    assert node["labels"] == {"hw": "pi5"}
    assert node["alive"] is True
    assert node["status"]["bundles"]["digits"]["version"] == "1"
    store = open_control_store(str(plane.db))
    try:
        record = store.get_node("edge-1")
        assert record is not None
        assert record.status["counters"]["digits"]["requests"] == 3
        assert store.desired_of("edge-1") == {"digits": plane.digests["2"]}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("node", "doc", "status", "words"),
    [
        ("edge-1", {"labels": {"bad key!": "x"}}, 400, "labels"),
        ("edge-1", {"labels": {"hw": "x" * 64}}, 400, "labels"),
        ("edge-1", {"counters": {"digits": COUNTERS | {"latency_counts": [3, 1, 3]}}}, 400,
         "latency_counts"),
        ("edge-1", {"counters": {"digits": COUNTERS | {"requests": -1}}}, 400, "requests"),
        ("edge-1", {"counters": [1, 2]}, 400, "counters"),
        ("edge-1", {"status": "fine"}, 400, "status"),
        ("edge-1", {"padding": "x" * 5000}, 413, "4096"),
        ("bad%20name", {}, 400, "node"),
    ],
)  # fmt: skip
def test_bad_heartbeats_are_refused_and_store_nothing(
    plane: Plane, node: str, doc: dict[str, Any], status: int, words: str
) -> None:
    answer = plane.beat(node, **doc)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    with plane.client() as ops:
        assert ops.get("/v1/nodes").json()["count"] == 0


def test_a_full_control_plane_refuses_new_nodes_but_not_known_ones(plane: Plane) -> None:
    for i in range(3):
        assert plane.beat(f"n{i}").status_code == 200
    refused = plane.beat("n3")
    assert refused.status_code == 409
    assert "3 nodes" in refused.json()["error"]
    assert plane.beat("n0").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/v1/nodes/x/heartbeat", "telemetry"),
        ("GET", "/v1/nodes/x/desired", "telemetry"),
        ("GET", "/v1/nodes", "telemetry"),
        ("GET", "/v1/rollouts", "telemetry"),
        ("GET", "/v1/audit", "telemetry"),
        ("GET", "/metrics", "telemetry"),
        ("POST", "/v1/rollouts", "admin"),
        ("PUT", "/v1/desired", "admin"),
        ("DELETE", "/v1/nodes/x", "admin"),
        ("POST", "/v1/rollouts/r/abort", "admin"),
    ],
)
def test_every_route_asks_its_scope(plane: Plane, method: str, path: str, scope: str) -> None:
    with plane.client(None) as anyone:
        assert anyone.request(method, path).status_code == 401
    with plane.client("app") as app:  # a valid token without the scope
        refused = app.request(method, path)
        assert refused.status_code == 403
        assert scope in refused.json()["error"]
        assert plane.tokens["app"] not in refused.text
    who = "ops" if scope == "admin" else "agent"
    with plane.client(who) as allowed:
        assert allowed.request(method, path).status_code not in (401, 403)
    with plane.client(None) as anyone:
        assert anyone.get("/v1/health/live").status_code == 200


def test_admin_actions_are_audited_by_client_name(
    plane: Plane, caplog: pytest.LogCaptureFixture
) -> None:
    plane.beat("edge-1")
    with caplog.at_level(logging.INFO, logger="tierwise.audit"), plane.client() as ops:
        ops.put("/v1/desired", json={"bundle": "digits", "ref": "2"})
        started = ops.post("/v1/rollouts", json={"bundle": "digits", "ref": "1",
                                                 "stages": "50,100"})  # fmt: skip
        assert started.status_code == 201, started.text
        entries = ops.get("/v1/audit").json()["entries"]
    lines = [r.getMessage() for r in caplog.records if r.name == "tierwise.audit"]
    assert any("action=desired.set" in line and "client=ops" in line for line in lines)
    assert all(plane.tokens["ops"] not in line for line in lines)
    assert any("action=rollout.start" in line and "client=ops" in line for line in lines)
    assert [e["action"] for e in entries] == ["desired.set", "rollout.start", "rollout.stage"]
    assert {e["actor"] for e in entries} == {"ops"}
    assert entries[1]["detail"]["digest"] == plane.digests["1"]


def test_metrics_count_nodes_and_heartbeats(plane: Plane) -> None:
    plane.beat("edge-1")
    plane.beat("edge-2")
    with plane.client("agent") as agent:
        text = agent.get("/metrics").text
    assert 'tierwise_control_nodes{state="reachable"} 2.0' in text
    assert "tierwise_control_heartbeats_total 2.0" in text
    assert "tierwise_control_leader 1.0" in text
