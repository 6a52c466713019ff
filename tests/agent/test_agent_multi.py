"""One edge node, two models: a detector (built with onnx.helper, not by the zoo) and a
classifier (the zoo's tiny), each its own bundle in a real local store. Each is synced,
served and inferred over HTTP; then one is updated, refused or rolled back while the
other serves on, untouched."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import orjson
import pytest
import yaml
from onnx import numpy_helper

from agent_helpers import (
    CLASSIFIER,
    DETECTOR,
    publish_model,
    running_node,
    two_model_settings,
)
from onnx_models import detector_model, failing_model
from registry_helpers import make_keys
from server_helpers import captured_logs
from tierwise.agent import AgentSettings
from tierwise.registry import BundleManifest, KeyPair, LocalStore

IMAGES = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
DIGIT = np.random.default_rng(1).random((1, 8, 8), dtype=np.float32)


@dataclass
class Shelf:
    """A release store with detector:1 and classifier:1, classifier:2."""

    root: Path
    store: LocalStore
    keys: KeyPair
    tmp: Path
    files: dict[str, Path]
    manifests: dict[str, BundleManifest]

    def publish(self, bundle: str, version: str, source: Path, *, keys: KeyPair | None = None
                ) -> BundleManifest:  # fmt: skip
        variant = DETECTOR[1] if bundle == "detector" else CLASSIFIER[1]
        manifest = publish_model(self.store, keys or self.keys, self.tmp, bundle, version,
                                 source, variant=variant)  # fmt: skip
        self.files[f"{bundle}:{version}"] = source
        self.manifests[f"{bundle}:{version}"] = manifest
        return manifest

    def settings(self, tmp_path: Path, **extra: Any) -> AgentSettings:
        registry = {"store": str(self.root), "trusted_keys": [self.keys.public_path]}
        return two_model_settings(tmp_path, registry, **extra)


@pytest.fixture
def shelf(tmp_path: Path, shared_zoo_dir: Path) -> Shelf:
    root = tmp_path / "release"
    made = Shelf(root, LocalStore(root), make_keys(tmp_path), tmp_path / "work", {}, {})
    made.publish("detector", "1", detector_model(tmp_path / "models" / "detector.onnx"))
    made.publish("classifier", "1", shared_zoo_dir / "tiny" / "1" / "model.onnx")
    made.publish("classifier", "2", shared_zoo_dir / "tiny-int8" / "1" / "model.onnx")
    return made


def retrained_detector(path: Path) -> Path:
    """The detector with its first convolution's weights doubled: same signature, other
    features (a new version of the same model)."""
    model = onnx.load(str(detector_model(path.with_name("base-" + path.name))))
    for weights in model.graph.initializer:
        if weights.name == "w1":
            values = numpy_helper.to_array(weights) * 2
            weights.CopyFrom(numpy_helper.from_array(values, "w1"))
    onnx.save(model, str(path))
    return path


def expected(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    """What onnxruntime itself answers for the model at ``path``."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feed)[0])


def infer(url: str, model: str) -> tuple[int, str | None, np.ndarray]:
    """One request to ``model``: (status, model version, first output)."""
    data = IMAGES if model == "detector" else DIGIT
    name = "images" if model == "detector" else "image"
    body = {"inputs": [{"name": name, "shape": list(data.shape), "datatype": "FP32",
                        "data": data.ravel().tolist()}]}  # fmt: skip
    response = httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)
    if response.status_code != 200:
        return response.status_code, None, np.empty(0)
    out = response.json()["outputs"][0]
    return 200, response.json().get("model_version"), np.reshape(out["data"], out["shape"])


def bundles(status: dict[str, Any]) -> dict[str, tuple[str | None, int | None]]:
    """Each bundle's (version, generation)."""
    return {n: (b["version"], b["generation"]) for n, b in status["bundles"].items()}


def test_detector_and_classifier_sync_serve_update_refuse_and_roll_back_apart(
    tmp_path: Path, shelf: Shelf
) -> None:
    settings = shelf.settings(tmp_path)
    stranger = make_keys(tmp_path / "stranger", "stranger")
    with running_node(settings) as node:
        before = node.status()
        assert bundles(before) == {"detector": (None, None), "classifier": (None, None)}
        assert before["health"]["ready"] is False

        # both synced, verified, activated and served
        first = node.desired_refs({"detector": "1", "classifier": "1"})
        assert first["sync"]["result"] == "activated"
        assert {n: r["result"] for n, r in first["sync"]["bundles"].items()} == {
            "detector": "activated", "classifier": "activated",
        }  # fmt: skip
        status = first["status"]
        assert bundles(status) == {"detector": ("1", 1), "classifier": ("1", 2)}
        assert status["bundles"]["detector"]["digest"] == shelf.manifests["detector:1"].digest
        assert status["health"] == {"live": True, "ready": True}
        assert status["models"] == {"detector": True, "classifier": True}
        assert status["version"] is None  # one-bundle fields: read bundles on this node
        code, version, features = infer(node.url, "detector")
        assert (code, version) == (200, "1")
        assert features.shape == (1, 8, 4, 4)
        np.testing.assert_allclose(
            features, expected(shelf.files["detector:1"], {"images": IMAGES}), rtol=1e-5
        )
        code, version, probabilities_1 = infer(node.url, "classifier")
        assert (code, version) == (200, "2")
        assert probabilities_1.shape == (1, 10)
        manager = node.app.agent.server.manager
        detector_served = manager.resolve("detector")

        # the classifier moves to 2; the detector stays on 1, not even reloaded
        second = node.desired("2", bundle="classifier")
        assert second["sync"]["bundles"]["classifier"]["result"] == "activated"
        assert second["sync"]["bundles"]["detector"]["result"] == "up-to-date"
        assert bundles(second["status"]) == {"detector": ("1", 1), "classifier": ("2", 3)}
        assert yaml.safe_load(settings.desired_file.read_text()) == {
            "refs": {"classifier": "2", "detector": "1"}
        }
        assert manager.resolve("detector") is detector_served
        code, version, probabilities_2 = infer(node.url, "classifier")
        assert (code, version) == (200, "3")
        assert not np.allclose(probabilities_1, probabilities_2)  # int8 weights
        assert infer(node.url, "detector")[:2] == (200, "1")

        # a detector signed by a key the node does not trust: refused, nothing moves
        shelf.publish("detector", "2", retrained_detector(tmp_path / "models" / "d2.onnx"),
                      keys=stranger)  # fmt: skip
        refused = node.desired("2", bundle="detector")
        assert refused["sync"]["result"] == "error"
        detector_sync = refused["sync"]["bundles"]["detector"]
        assert detector_sync["result"] == "error"
        assert "signature check failed" in detector_sync["error"]
        assert refused["sync"]["bundles"]["classifier"]["result"] == "up-to-date"
        assert bundles(refused["status"]) == {"detector": ("1", 1), "classifier": ("2", 3)}
        assert refused["status"]["bundles"]["detector"]["last_sync"]["result"] == "error"
        assert manager.resolve("detector") is detector_served
        assert infer(node.url, "detector")[:2] == (200, "1")
        assert infer(node.url, "classifier")[:2] == (200, "3")

        # a classifier that fails its warm-up: held, both serve what they served
        node.desired("1", bundle="detector")
        shelf.publish("classifier", "3", failing_model(tmp_path / "models" / "boom.onnx"))
        broken = node.desired("3", bundle="classifier")
        classifier_sync = broken["sync"]["bundles"]["classifier"]
        assert classifier_sync["result"] == "error"
        assert "warm-up failed" in classifier_sync["error"]
        status = broken["status"]
        assert bundles(status) == {"detector": ("1", 1), "classifier": ("2", 3)}
        assert status["bundles"]["classifier"]["held"] == [shelf.manifests["classifier:3"].digest]
        assert status["health"]["ready"] is True
        repo = settings.state_dir / "repo"
        assert sorted(p.name for p in (repo / "classifier").iterdir()) == ["3"]
        assert sorted(p.name for p in (repo / "detector").iterdir()) == ["1"]
        assert infer(node.url, "detector")[:2] == (200, "1")
        assert infer(node.url, "classifier")[:2] == (200, "3")
        again = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
        assert again["bundles"]["classifier"]["result"] == "held"

        # the classifier rolls back to 1; the detector is not touched
        refused_rollback = node.rollback()
        assert refused_rollback.status_code == 400
        assert (
            "one of the bundles this node syncs (detector, classifier)"
            in (refused_rollback.json()["error"])
        )
        back = node.rollback(bundle="classifier")
        assert back.status_code == 200, back.text
        assert (back.json()["bundle"], back.json()["rolled_back_to"]) == ("classifier", "1")
        status = back.json()["status"]
        assert bundles(status) == {"detector": ("1", 1), "classifier": ("1", 5)}
        assert status["bundles"]["classifier"]["held"] == sorted(
            [shelf.manifests["classifier:2"].digest, shelf.manifests["classifier:3"].digest]
        )
        assert status["bundles"]["detector"]["held"] == []
        assert manager.resolve("detector") is detector_served
        code, version, probabilities = infer(node.url, "classifier")
        assert (code, version) == (200, "5")
        np.testing.assert_allclose(probabilities, probabilities_1, rtol=1e-6)
        nothing = node.rollback(bundle="detector")
        assert nothing.status_code == 409
        assert "of detector: versions to go back to: none" in nothing.json()["error"]

        metrics = httpx.get(node.url + "/metrics", timeout=10).text
        assert 'bundle="detector",digest="' in metrics
        info = [line for line in metrics.splitlines()
                if line.startswith("tierwise_agent_version_info{")]  # fmt: skip
        assert len(info) == 2
        assert any('bundle="classifier"' in line and 'version="1"' in line for line in info)


def test_a_co_versioned_ref_and_an_unknown_bundle(tmp_path: Path, shelf: Shelf) -> None:
    shelf.publish("detector", "2", retrained_detector(tmp_path / "models" / "d2.onnx"))
    settings = shelf.settings(tmp_path)
    with running_node(settings) as node:
        # ref alone names that reference for every bundle; refs overrides one
        settings.desired_file.write_text("ref: '2'\nrefs: {detector: '1'}\n")
        sync = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
        assert sync["result"] == "activated"
        assert bundles(node.status()) == {"detector": ("1", 1), "classifier": ("2", 2)}
        settings.desired_file.write_text("ref: '2'\n")
        sync = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
        assert {n: r["result"] for n, r in sync["bundles"].items()} == {
            "detector": "activated", "classifier": "up-to-date",
        }  # fmt: skip
        code, version, features = infer(node.url, "detector")
        assert (code, version) == (200, "3")
        np.testing.assert_allclose(
            features, expected(shelf.files["detector:2"], {"images": IMAGES}), rtol=1e-5
        )
        # a bundle the node does not sync is a mistake, not a silent no-op
        settings.desired_file.write_text("refs: {detectr: '1'}\n")
        sync = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
        assert sync["result"] == "error"
        assert "refs: expected bundles this node syncs (detector, classifier)" in sync["error"]
        status = node.status()
        assert status["desired"].startswith("unreadable")
        assert bundles(status) == {"detector": ("2", 3), "classifier": ("2", 2)}
        assert status["bundles"]["detector"]["last_sync"]["result"] == "error"
        assert infer(node.url, "classifier")[:2] == (200, "2")
        # a desired state that leaves a bundle out leaves it as it is
        settings.desired_file.write_text("refs: {detector: '1'}\n")
        sync = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
        assert sync["bundles"]["classifier"]["result"] == "idle"
        assert sync["bundles"]["detector"]["result"] == "activated"
        assert bundles(node.status()) == {"detector": ("1", 4), "classifier": ("2", 2)}
        assert infer(node.url, "classifier")[:2] == (200, "2")
        bad = httpx.put(node.url + "/v2/agent/desired", json={"ref": "1", "bundle": "tracker"})
        assert bad.status_code == 400
        assert "bundle: expected one of the bundles this node syncs" in bad.json()["error"]
        both = httpx.put(node.url + "/v2/agent/desired", json={"ref": "1", "refs": {}})
        assert both.status_code == 400


def test_restart_serves_both_and_one_that_no_longer_warms_up_leaves_the_other_serving(
    tmp_path: Path, shelf: Shelf
) -> None:
    shelf.publish("classifier", "5", failing_model(tmp_path / "models" / "boom.onnx"))
    # activated while warm-up was off, so nothing ran the failing classifier
    cold = shelf.settings(tmp_path, defaults={"onnx": {"warmup_runs": 0}})
    with running_node(cold) as node:
        node.desired_refs({"detector": "1", "classifier": "1"})
        assert node.desired("5", bundle="classifier")["sync"]["result"] == "activated"
    settings = shelf.settings(tmp_path)
    with captured_logs("tierwise.agent") as logs, running_node(settings) as node:
        status = node.status()
        assert bundles(status) == {"detector": ("1", 1), "classifier": ("5", 3)}
        assert status["bundles"]["detector"]["ready"] is True
        assert status["bundles"]["classifier"]["ready"] is False
        assert status["health"]["ready"] is False
        assert infer(node.url, "detector")[:2] == (200, "1")  # from the node's own disk
        assert infer(node.url, "classifier")[0] == 503
        index = httpx.post(node.url + "/v2/repository/index", timeout=10).json()
        assert {(r["name"], r["state"]) for r in index} == {
            ("detector", "READY"), ("classifier", "UNAVAILABLE"),
        }  # fmt: skip
        back = node.rollback(bundle="classifier")
        assert back.json()["rolled_back_to"] == "1"
        assert back.json()["status"]["health"]["ready"] is True
        after = bundles(back.json()["status"])
        assert after["detector"] == ("1", 1)
        # (a repair that failed may have taken a generation number: never reused)
        version, generation = after["classifier"]
        assert version == "1"
        assert generation is not None
        assert generation > 3
        assert infer(node.url, "classifier")[:2] == (200, str(generation))
    assert any("could not serve 5 again from this node (bundle classifier)" in line
               for line in logs)  # fmt: skip
    # a lost model repository: both laid out again from the node's own store
    shutil.rmtree(settings.state_dir / "repo")
    with running_node(settings) as node:
        status = node.status()
        assert status["health"]["ready"] is True
        again = bundles(status)
        assert again["detector"][0] == again["classifier"][0] == "1"
        assert again["detector"][1] > generation  # laid out again, as new generations
        assert infer(node.url, "detector")[:2] == (200, str(again["detector"][1]))
        assert infer(node.url, "classifier")[:2] == (200, str(again["classifier"][1]))


def test_a_state_file_from_a_one_bundle_node_is_kept_for_its_bundle(
    tmp_path: Path, shelf: Shelf
) -> None:
    """A node that synced only the classifier (state written before nodes synced several
    bundles) is given a detector too: the classifier's versions stay the classifier's,
    though it is not the first bundle the node lists."""
    one = shelf.settings(tmp_path, bundles=[], bundle="classifier",
                         serve=[{"variant": "tiny", "model": "classifier"}])  # fmt: skip
    with running_node(one) as node:
        node.desired("1")
        node.desired("2")
    path = one.state_dir / "agent-state.json"
    saved = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps({**saved["bundles"]["classifier"], "next_generation": 3}))
    settings = shelf.settings(tmp_path)
    settings.desired_file.write_text("refs: {classifier: '2'}\n")
    with running_node(settings) as node:
        status = node.status()
        assert bundles(status) == {"detector": (None, None), "classifier": ("2", 2)}
        assert status["bundles"]["classifier"]["previous"] == ["1"]
        assert infer(node.url, "classifier")[:2] == (200, "2")
        answer = node.desired("1", bundle="detector")
        assert bundles(answer["status"]) == {"detector": ("1", 3), "classifier": ("2", 2)}
        assert node.rollback(bundle="classifier").json()["rolled_back_to"] == "1"
    assert "bundles" in orjson.loads(path.read_bytes())
