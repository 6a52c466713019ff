"""A fleet on loopback for the control plane's tests and benchmark: a real OCI registry
(``docker-registry``), a cloud tier server, ``tierwise control`` and ``tierwise agent``
processes with canary and site labels, and a load generator on every node's router front.

The models are built here with ``onnx.helper`` (none comes from the zoo): a small
classifier ``x [batch, 8] -> y [batch, 4]``; its *heavy* twin (the same answers plus a
large input-dependent side computation multiplied by zero: much slower), its *hungry* twin
(a smaller side computation: more energy per inference, latency within the p99 slack) and
a *weak* model (other weights: it disagrees with the cloud tier, which runs the base
classifier).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from net_helpers import Link
from prometheus_helpers import running_prometheus, static_config
from registry_helpers import OciRegistry, make_keys, oci_registry
from server_helpers import free_port
from tierwise.registry import KeyPair, OciStore, Signer, create_bundle, push, read_bundle_dir
from tierwise.security.tokens import hash_line, make_token

BUNDLE = "classifier"
VARIANT = "small"


def classifier(path: Path, *, seed: int, side_width: int = 0, side_depth: int = 0) -> Path:
    """``y = relu(x W1) W2`` (plus zero times a side computation of ``side_depth`` square
    ``side_width`` layers on the input, sharing one weight: same answers, more work)."""
    rng = np.random.default_rng(seed)
    t = helper.make_tensor_value_info
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 16)) / 3).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal((16, 4)) / 4).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["base"]),
    ]
    if side_depth:
        side = np.random.default_rng(seed + 1)
        inits += [
            numpy_helper.from_array(
                (side.standard_normal((8, side_width)) / 3).astype(np.float32), "s_in"
            ),
            numpy_helper.from_array(
                (side.standard_normal((side_width, side_width)) / np.sqrt(side_width)).astype(
                    np.float32
                ),
                "s_w",
            ),
            numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
        ]
        nodes.append(helper.make_node("MatMul", ["x", "s_in"], ["s0"]))
        for i in range(side_depth):
            nodes += [
                helper.make_node("MatMul", [f"s{i}", "s_w"], [f"m{i}"]),
                helper.make_node("Tanh", [f"m{i}"], [f"s{i + 1}"]),
            ]
        nodes += [
            helper.make_node("ReduceSum", [f"s{side_depth}"], ["sum"], keepdims=1),
            helper.make_node("Mul", ["sum", "zero"], ["nothing"]),
            helper.make_node("Add", ["base", "nothing"], ["y"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["base"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "classifier",
        [t("x", TensorProto.FLOAT, ["batch", 8])],
        [t("y", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


#: version -> (seed, side width, side depth) of the versions a fleet test publishes
VERSIONS: dict[str, tuple[int, int, int]] = {
    "1.0.0": (11, 0, 0),
    "1.1.0": (11, 0, 0),
    "2.0.0-heavy": (11, 1024, 24),
    "2.0.0-weak": (97, 0, 0),
    "2.0.0-hungry": (11, 384, 8),
}


def publish(registry: OciRegistry, keys: KeyPair, tmp: Path, version: str) -> str:
    """Build, sign and push one version; its manifest digest."""
    seed, width, depth = VERSIONS[version]
    source = classifier(
        tmp / f"src-{version}" / f"{VARIANT}.onnx", seed=seed, side_width=width, side_depth=depth
    )
    out = tmp / f"bundle-{version}"
    manifest = create_bundle([source], out, name=BUNDLE, version=version)
    store = OciStore(registry.url(), plain_http=True)
    try:
        push(read_bundle_dir(out), store, Signer.from_file(keys.private_path))
    finally:
        store.close()
    return manifest.digest


def _wait(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with suppress(httpx.HTTPError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tierwise", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class Node:
    name: str
    labels: dict[str, str]
    port: int
    gateway_port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None
    link: Link | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(f"{self.url}/v2/agent/status", timeout=5).json()
        return doc

    def version(self) -> str | None:
        part = self.status()["bundles"].get(BUNDLE) or {}
        return part.get("version") if part.get("ready") else None


@dataclass
class Fleet:
    tmp: Path
    registry: OciRegistry
    keys: KeyPair
    digests: dict[str, str]
    control_port: int
    control_db: Path
    admin_token: str
    agent_token: str
    nodes: list[Node]
    env: dict[str, str]
    control_args: list[str] = field(default_factory=list)
    control: subprocess.Popen[bytes] | None = None

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def client(self, token: str | None = None) -> httpx.Client:
        token = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.control_url, headers=headers, timeout=30)

    def start_control(self) -> None:
        self.control = _spawn(self.control_args, self.tmp / "control.log", self.env)
        _wait(
            "the control plane",
            lambda: httpx.get(f"{self.control_url}/v1/health/ready", timeout=2).status_code == 200,
            60,
        )

    def kill_control(self) -> None:
        """kill -9: no shutdown, no flush."""
        if self.control is not None:
            _stop(self.control, signal.SIGKILL)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def canaries(self) -> list[Node]:
        return [n for n in self.nodes if n.labels.get("canary") == "true"]

    def others(self) -> list[Node]:
        return [n for n in self.nodes if n.labels.get("canary") != "true"]

    def versions(self) -> dict[str, str | None]:
        return {n.name: n.version() for n in self.nodes}

    def wait_versions(
        self, want: Callable[[dict[str, str | None]], bool], what: str, timeout_s: float = 60.0
    ) -> dict[str, str | None]:
        seen: dict[str, str | None] = {}

        def check() -> bool:
            seen.update(self.versions())
            return want(seen)

        _wait(f"{what} (last seen {seen})", check, timeout_s)
        return seen

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        with self.client() as client:
            doc: dict[str, Any] = client.get(f"/v1/rollouts/{rollout_id}").json()
            return doc

    def wait_rollout(
        self,
        rollout_id: str,
        states: set[str],
        timeout_s: float = 120.0,
        watch: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {}

        def check() -> bool:
            if watch is not None:
                watch()
            doc.update(self.rollout(rollout_id))
            return doc.get("state") in states

        _wait(
            f"rollout {rollout_id} to reach {states} (at {doc.get('state')}, "
            f"{doc.get('stage_name')}, {doc.get('reason')})",
            check,
            timeout_s,
        )
        return doc


def _plan(path: Path, cloud_url: str) -> Path:
    path.write_text(f"""
version: 1
tiers:
  edge: {{kind: edge, site: shop, region: eu, url: "http://127.0.0.1:9", model: {VARIANT},
         rtt_p50_ms: 0, rtt_p99_ms: 1, cost_usd_per_inference: 0.000001, timeout_s: 5}}
  cloud: {{kind: cloud, region: eu, url: "{cloud_url}", model: base, rtt_p50_ms: 1,
          rtt_p99_ms: 5, cost_usd_per_inference: 0.0002, timeout_s: 5}}
workloads:
  classify:
    privacy: public
    cascade:
      - {{tier: edge, rule: max_prob, threshold: 0.0}}
      - {{tier: cloud}}
    reeval: {{rate: 1.0, max_in_flight: 64}}
""")
    return path


def _agent_yaml(
    node: Node,
    root: Path,
    registry: OciRegistry,
    keys: KeyPair,
    plan: Path,
    control_url: str,
    heartbeat_s: float,
) -> None:
    labels = "{" + ", ".join(f"{k}: '{v}'" for k, v in node.labels.items()) + "}"
    node.config.write_text(f"""
node: {node.name}
labels: {labels}
state_dir: {root / node.name}
port: {node.port}
bundle: {BUNDLE}
serve: [{{variant: {VARIANT}}}]
registry: {{store: "{registry.url()}", plain_http: true, trusted_keys: [{keys.public_path}]}}
desired_file: {root / node.name / "desired.json"}
sync_interval_s: 300
keep_versions: 3
drain_timeout_s: 2
energy: {{rapl: "off", idle_watts: 2.0, active_watts: 6.0}}
control:
  url: "{control_url}/v1/nodes/{{node}}/desired"
  heartbeat_url: "{control_url}/v1/nodes/{{node}}/heartbeat"
  heartbeat_s: {heartbeat_s}
  token_env: TW_AGENT_TOKEN
  timeout_s: 5
gateway: {{plan: {plan}, local_tier: edge, port: {node.gateway_port}}}
defaults: {{batching: {{max_batch_size: 1}}}}
""")


@contextmanager
def running_fleet(
    tmp: Path,
    *,
    nodes: int = 8,
    canaries: int = 2,
    versions: tuple[str, ...] = tuple(VERSIONS),
    heartbeat_s: float = 0.5,
    control_port: int | None = None,
    prometheus: bool = False,
) -> Iterator[Fleet]:
    """Registry, cloud tier, control plane and ``nodes`` agents (the first ``canaries``
    labelled ``canary=true``; sites a and b alternate), each node on version 1.0.0. With
    ``prometheus``, a real Prometheus scrapes every node's two ports twice a second and
    the control plane's gates read it."""
    with ExitStack() as stack:
        registry = stack.enter_context(oci_registry(tmp))
        keys = make_keys(tmp)
        digests = {v: publish(registry, keys, tmp, v) for v in versions}
        cloud_repo = tmp / "cloud-repo" / "base" / "1"
        classifier(cloud_repo / "model.onnx", seed=VERSIONS["1.0.0"][0])
        admin, admin_record = make_token("ops", "admin,telemetry")
        agent, agent_record = make_token("agents", "telemetry")
        tokens = tmp / "tokens.txt"
        tokens.write_text(hash_line(admin_record) + "\n" + hash_line(agent_record) + "\n")
        env = {**os.environ, "TW_AGENT_TOKEN": agent, "PYTHONUNBUFFERED": "1"}
        cloud_port = free_port()
        cloud = _spawn(
            ["serve", "--model-repo", str(tmp / "cloud-repo"), "--port", str(cloud_port)],
            tmp / "cloud.log",
            env,
        )
        stack.callback(_stop, cloud)
        port = control_port or free_port()
        prometheus_port = free_port()
        fleet = Fleet(
            tmp,
            registry,
            keys,
            digests,
            port,
            tmp / "control.db",
            admin,
            agent,
            [],
            env,
            control_args=[
                "control",
                "--store",
                str(tmp / "control.db"),
                "--registry",
                registry.url(),
                "--plain-http",
                "--trusted-key",
                str(keys.public_path),
                "--port",
                str(port),
                "--tokens-file",
                str(tokens),
                "--heartbeat-s",
                str(heartbeat_s),
                *(
                    ["--prometheus-url", f"http://127.0.0.1:{prometheus_port}"]
                    if prometheus
                    else []
                ),
            ],
        )
        fleet.start_control()
        stack.callback(lambda: fleet.control is not None and _stop(fleet.control))
        _wait(
            "the cloud tier",
            lambda: (
                httpx.get(f"http://127.0.0.1:{cloud_port}/v2/health/ready", timeout=2).status_code
                == 200
            ),
        )
        plan = _plan(tmp / "plan.yaml", f"http://127.0.0.1:{cloud_port}")
        for i in range(nodes):
            labels = {"site": "a" if i % 2 == 0 else "b", "hw": "pi5"}
            if i < canaries:
                labels["canary"] = "true"
            node = Node(f"node-{i}", labels, free_port(), free_port(), tmp / f"agent-{i}.yaml")
            node.link = Link(port)
            stack.callback(node.link.close)
            _agent_yaml(node, tmp / "nodes", registry, keys, plan,
                        f"http://127.0.0.1:{node.link.port}", heartbeat_s)  # fmt: skip
            fleet.nodes.append(node)
        if prometheus:
            targets = [f"127.0.0.1:{p}" for n in fleet.nodes for p in (n.port, n.gateway_port)]
            stack.enter_context(running_prometheus(
                static_config(targets, interval="500ms"), tmp / "tsdb", port=prometheus_port
            ))  # fmt: skip
        for node in fleet.nodes:
            node.process = _spawn(
                ["agent", "--config", str(node.config)], tmp / f"{node.name}.log", env
            )
            stack.callback(_stop, node.process)
        with fleet.client() as client:
            _wait(
                "every node's first heartbeat",
                lambda: client.get("/v1/nodes").json().get("count") == nodes,
                120,
            )
            answer = client.put("/v1/desired", json={"bundle": BUNDLE, "ref": "1.0.0"})
            if answer.status_code != 200:
                raise RuntimeError(f"setting 1.0.0 failed: {answer.text}")
        fleet.wait_versions(lambda v: set(v.values()) == {"1.0.0"}, "every node on 1.0.0", 120)
        with fleet.client() as client:
            _wait(
                "the control plane to hear every node serve 1.0.0",
                lambda: all(
                    n["status"]["bundles"][BUNDLE].get("version") == "1.0.0"
                    for n in client.get("/v1/nodes").json()["nodes"]
                ),
                30,
            )
        yield fleet


class Load:
    """Steady inference requests to every node's router front, from a background thread;
    counts answers and failures per node."""

    def __init__(self, nodes: list[Node], *, per_node_per_s: float = 15.0, seed: int = 5) -> None:
        self.nodes = nodes
        self.interval_s = 1.0 / per_node_per_s
        self.rng = np.random.default_rng(seed)
        self.ok: dict[str, int] = {n.name: 0 for n in nodes}
        self.failed: dict[str, list[str]] = {n.name: [] for n in nodes}
        self.paused: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                for node in self.nodes:
                    if node.name in self.paused:
                        continue
                    x = self.rng.standard_normal((1, 8)).astype(np.float32)
                    body = {
                        "inputs": [
                            {
                                "name": "x",
                                "shape": [1, 8],
                                "datatype": "FP32",
                                "data": x.ravel().tolist(),
                            }
                        ]
                    }
                    try:
                        answer = client.post(
                            f"{node.gateway_url}/v2/models/classify/infer", json=body
                        )
                        if answer.status_code == 200:
                            self.ok[node.name] += 1
                        else:
                            self.failed[node.name].append(f"{answer.status_code} {answer.text}")
                    except httpx.HTTPError as exc:
                        self.failed[node.name].append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def failures(self, names: set[str] | None = None) -> dict[str, list[str]]:
        return {n: f for n, f in self.failed.items() if f and (names is None or n in names)}
