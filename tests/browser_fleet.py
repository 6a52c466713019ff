"""A fleet for the device tier in a real browser: a tier server on loopback serving the
zoo's small and large models and a logits model the zoo did not make, a gateway in front
of a plan whose workloads start on a device, and headless Chromium driven by Playwright
(Debian's chromium, through ``executable_path``).

Workloads: ``digits`` (public: phone -> edge -> cloud), ``digits-private`` (sensitive:
its data never leaves the device), ``digits-later`` (deferrable), ``digits-bundled``
(its device model from a bundle directory) and ``features`` (a [batch, 3, 4] input, a
``logits`` output read with rule ``margin``)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import orjson
from onnx import TensorProto, helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families

from binaries import require_binary
from server_helpers import free_port, running_app, running_server
from tierwise.planfile.schema import Plan
from tierwise.registry.bundle import create_bundle
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.server import ServerSettings
from tierwise.zoo import load_eval, load_zoo

__all__ = [
    "CHROMIUM_ARGS",
    "BrowserFleet",
    "features_model",
    "gateway_counts",
    "launch_chromium",
    "open_page",
    "wait_ready",
]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
THRESHOLD = 0.9


def features_model(path: Path, *, seed: int = 3) -> Path:
    """``features`` FP32 [batch, 3, 4] -> ``logits`` FP32 [batch, 5] (and ``norm``
    [batch, 1]): a flatten and a random linear layer, so the logits are not probabilities
    and there are two float outputs (the stage must name its score tensor)."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 1.5, size=(12, 5)).astype(np.float32)
    bias = rng.normal(0, 0.5, size=(5,)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["features"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
        helper.make_node("ReduceL2", ["flat"], ["norm"], keepdims=1, axes=[1]),
    ]
    graph = helper.make_graph(
        nodes,
        "features",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3, 4])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5]),
            helper.make_tensor_value_info("norm", TensorProto.FLOAT, ["batch", 1]),
        ],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return _save(model, path)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _tier(kind: str, rtt_ms: float, cost: float, **where: Any) -> dict[str, Any]:
    return {"kind": kind, "rtt_p50_ms": rtt_ms / 2, "rtt_p99_ms": rtt_ms,
            "cost_usd_per_inference": cost, "region": "r1", **where}  # fmt: skip


def _digits(privacy: str = "public", **fields: Any) -> dict[str, Any]:
    return {
        "privacy": privacy,
        **fields,
        "cascade": [
            {"tier": "phone", "rule": "max_prob", "threshold": THRESHOLD},
            {"tier": "edge", "rule": "max_prob", "threshold": THRESHOLD},
            {"tier": "cloud"},
        ],
    }


@dataclass
class BrowserFleet:
    """The tier server, the plan and a gateway that can be stopped and started again on
    the same port (the page's origin), keeping its idempotency file and outbox."""

    root: Path
    zoo: Path
    plan: Plan
    bundle_dir: Path
    samples: Path
    port: int = field(default_factory=free_port)
    stack: ExitStack = field(default_factory=ExitStack)
    gateway: Gateway | None = None
    _running: ExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> GatewaySettings:
        return GatewaySettings(
            port=self.port,
            device_bundles={"digits-bundled": self.bundle_dir},
            device_samples=self.samples,
            idempotency_path=str(self.root / "answers.db"),
            outbox_path=self.root / "outbox.db",
        )

    def start(self) -> Gateway:
        running = ExitStack()
        app = Gateway(self.plan, build_router(self.plan, seed=7), self.settings())
        running.enter_context(running_app(app, self.port))
        self._running, self.gateway = running, app
        return app

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running, self.gateway = None, None

    def close(self) -> None:
        self.stop()
        self.stack.close()

    def bundle(self, model: Path, version: str) -> None:
        """Make (or replace) the bundle ``digits-bundled`` reads its device model from."""
        staged = self.root / f"bundle-{version}"
        create_bundle([model], staged, name="digits", version=version)
        blobs = self.bundle_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged / "blobs", blobs, dirs_exist_ok=True)
        # the manifest last, in one rename: the gateway sees the old version or the new
        tmp = self.bundle_dir / "manifest.json.tmp"
        shutil.copyfile(staged / "manifest.json", tmp)
        tmp.replace(self.bundle_dir / "manifest.json")


@contextmanager
def browser_fleet(zoo: Path, root: Path) -> Iterator[BrowserFleet]:
    repo = root / "repo"
    zoo_models = load_zoo(zoo)
    for name in ("small", "large"):
        target = repo / name / "1"
        target.mkdir(parents=True)
        shutil.copyfile(zoo_models.model_path(name), target / "model.onnx")
    features_model(repo / "features" / "1" / "model.onnx")
    device_features = features_model(root / "device-features.onnx")
    x, y = load_eval(zoo)
    samples = root / "samples.json"
    samples.write_bytes(
        orjson.dumps(
            {
                "digits": {
                    "input": "image",
                    "dims": [8, 8],
                    "rows": x[:40].reshape(40, -1).tolist(),
                    "labels": y[:40].tolist(),
                }
            }
        )
    )
    stack = ExitStack()
    server = stack.enter_context(running_server(ServerSettings(model_repo=repo)))
    tiny = zoo_models.model_path("tiny")
    plan = Plan.model_validate(
        {
            "tiers": {
                "phone": _tier("device", 0, 0.0, site="s1", local={"model": str(tiny)}),
                "phone-features": _tier("device", 0, 0.0, site="s1",
                                        local={"model": str(device_features)}),
                "edge": _tier("edge", 5, 1e-6, site="s1", url=server.url, model="small"),
                "cloud": _tier("cloud", 20, 1e-5, url=server.url, model="large"),
                "cloud-features": _tier("cloud", 20, 1e-5, url=server.url, model="features"),
            },
            "workloads": {
                "digits": _digits(),
                "digits-private": _digits("sensitive"),
                "digits-later": _digits(urgency="deferrable"),
                "digits-bundled": _digits(),
                "features": {
                    "privacy": "public",
                    "cascade": [
                        {"tier": "phone-features", "rule": "margin", "threshold": 0.5,
                         "output": "logits", "scores": "logits"},
                        {"tier": "cloud-features", "output": "logits", "scores": "logits"},
                    ],
                },
            },
        }
    )  # fmt: skip
    fleet = BrowserFleet(root, zoo, plan, root / "bundle", samples, stack=stack)
    fleet.bundle(tiny, "1")
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.close()


def launch_chromium(playwright: Any) -> Any:
    """Headless Debian chromium (a failure under CI=true when it is missing)."""
    return playwright.chromium.launch(
        executable_path=require_binary("chromium"), headless=True, args=CHROMIUM_ARGS
    )


def open_page(context: Any, url: str, workload: str) -> Any:
    """The device page for ``workload``, once its model is loaded and warm."""
    page = context.new_page()
    page.goto(f"{url}/device/?workload={workload}")
    wait_ready(page)
    return page


def wait_ready(page: Any, timeout_s: float = 30.0) -> float:
    """Wait for the page's model to be loaded and warm (polled from here: the page's
    content security policy allows no string evaluated as script); its cold start (ms)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = page.evaluate(
            "() => ({ready: window.tierwise?.ready === true, error: window.tierwise?.error ?? null,"
            " cold: window.tierwise?.tier?.coldStartMs ?? null})"
        )
        if state["error"]:
            raise AssertionError(f"the device page failed to start: {state['error']}")
        if state["ready"]:
            return float(state["cold"])
        if time.monotonic() > deadline:
            raise AssertionError("the device page did not get ready in time")
        time.sleep(0.02)


def gateway_counts(metrics: str, name: str, workload: str) -> dict[str, float]:
    """``{outcome: value}`` of counter ``name`` (its ``_total`` sample) for ``workload``,
    summed over the other labels."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("workload") == workload:
                outcome = sample.labels.get("outcome", "")
                found[outcome] = found.get(outcome, 0.0) + sample.value
    return found
