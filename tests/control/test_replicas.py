"""Two control plane replicas on one real PostgreSQL server: exactly one holds the lease
and steps rollouts, heartbeats and operator actions go to either, and when the leader
stops the other takes over and finishes the rollout it started."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry_helpers import make_keys, publish
from server_helpers import running_app
from tierwise.control.service import build_control_app
from tierwise.control.settings import ControlSettings
from tierwise.registry import LocalStore

pytestmark = pytest.mark.slow

BOUNDS = [0.001, 0.005, 0.05]


def _settings(dsn: str, tmp: Path, keys: Any, name: str) -> ControlSettings:
    return ControlSettings.model_validate({
        "store": dsn, "replica": name, "lease_s": 1.0, "tick_s": 0.1, "heartbeat_s": 0.5,
        "registry": {"store": str(tmp / "registry"), "trusted_keys": [keys.public_path]},
    })  # fmt: skip


@contextmanager
def _replica(settings: ControlSettings) -> Iterator[str]:
    with running_app(build_control_app(settings, env={})) as (_, port):
        yield f"http://127.0.0.1:{port}"


def _until(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class Nodes:
    """Four simulated nodes that take their desired digest at the next beat; each beat
    goes to the next replica in turn."""

    def __init__(self, digests: dict[str, str]) -> None:
        self.versions = {d: v for v, d in digests.items()}
        self.serving = {f"n{i}": digests["1"] for i in range(4)}
        self.requests = dict.fromkeys(self.serving, 0)
        self.turn = 0

    def beat(self, urls: list[str]) -> None:
        for node, digest in list(self.serving.items()):
            self.requests[node] += 10
            count = self.requests[node]
            body = {
                "labels": {"hw": "pi5"} | ({"canary": "true"} if node == "n0" else {}),
                "status": {"bundles": {"digits": {"version": self.versions[digest],
                                                  "digest": digest, "ready": True}}},
                "counters": {"digits": {
                    "started_s": 1.0, "digest": digest, "requests": count, "errors": 0,
                    "latency_bounds_s": BOUNDS, "latency_counts": [count] * 4,
                    "energy_j": 0.0, "inferences": 0, "agree": 0, "disagree": 0,
                    "routed": 0, "fallbacks": 0}},
            }  # fmt: skip
            url = urls[self.turn % len(urls)]
            self.turn += 1
            answer = httpx.post(f"{url}/v1/nodes/{node}/heartbeat", json=body, timeout=10)
            assert answer.status_code == 200, answer.text
            wanted = (answer.json()["desired"] or {}).get("refs", {}).get("digits")
            if wanted is not None:
                self.serving[node] = wanted


def _leader(url: str) -> bool:
    return bool(httpx.get(f"{url}/v1/health/ready", timeout=5).json()["leader"])


def test_one_replica_leads_and_the_other_takes_over(postgres_dsn: str, tmp_path: Path) -> None:
    registry = LocalStore(tmp_path / "registry", create=True)
    keys = make_keys(tmp_path)
    digests = {
        v: publish(registry, tmp_path, keys, v, {"small": int(v)}, name="digits").digest
        for v in ("1", "2")
    }
    nodes = Nodes(digests)
    stacks = {name: ExitStack() for name in ("a", "b")}
    try:
        urls = [
            stacks[n].enter_context(_replica(_settings(postgres_dsn, tmp_path, keys, n)))
            for n in ("a", "b")
        ]
        _until("one leader", lambda: sum(_leader(u) for u in urls) == 1)
        time.sleep(0.5)
        assert sum(_leader(u) for u in urls) == 1  # and it stays one
        leader = next(u for u in urls if _leader(u))
        follower = next(u for u in urls if u != leader)
        nodes.beat(urls)
        start = {"bundle": "digits", "ref": "2", "stages": "canary,100",
                 "interval_s": 1.0, "min_requests": 10}  # fmt: skip
        started = httpx.post(f"{follower}/v1/rollouts", json=start, timeout=10)
        assert started.status_code == 201, started.text
        rollout = started.json()["id"]

        def stage() -> str:
            doc = httpx.get(f"{follower}/v1/rollouts/{rollout}", timeout=5).json()
            return str(doc["stage_name"])

        for _ in range(100):  # the canary converges and passes; the last stage starts
            nodes.beat(urls)
            if stage() == "100%":
                break
            time.sleep(0.1)
        assert stage() == "100%"
        assert nodes.serving["n0"] == digests["2"]
        stacks["a" if leader == urls[0] else "b"].close()  # the leader goes away
        urls = [follower]
        _until("the other replica takes the lease", lambda: _leader(follower), 10)

        def done() -> bool:
            nodes.beat(urls)
            doc = httpx.get(f"{follower}/v1/rollouts/{rollout}", timeout=5).json()
            return doc["state"] == "succeeded"

        _until("the rollout finishes", done, 30)
        assert set(nodes.serving.values()) == {digests["2"]}
        audit = httpx.get(f"{follower}/v1/audit", params={"rollout": rollout}, timeout=5)
        actions = [e["action"] for e in audit.json()["entries"]]
        assert actions.count("rollout.start") == 1
        assert actions[-1] == "rollout.succeeded"
    finally:
        for stack in stacks.values():
            stack.close()
