"""A node serving a detector and a classifier, each its own bundle in a real OCI registry
(Debian's ``docker-registry``), behind the node's router front: one plan tier per model,
both answered in process. The classifier is updated, a tampered update is refused, and
the classifier rolls back, while the detector serves on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np

from agent_helpers import publish_model, running_node, two_model_settings
from onnx_models import detector_model
from registry_helpers import make_keys, oci_registry
from tierwise.registry import MAX_MANIFEST_BYTES, OciStore, parse_manifest

IMAGES = np.random.default_rng(2).random((1, 3, 8, 8), dtype=np.float32)
DIGIT = np.random.default_rng(3).random((1, 8, 8), dtype=np.float32)


def _plan(path: Path) -> Path:
    tiers = "".join(
        f"""
  edge-{name}:
    kind: edge
    site: store-1
    url: http://127.0.0.1:9
    model: {model}
    rtt_p50_ms: 0
    rtt_p99_ms: 1
    cost_usd_per_inference: 0.000001
    timeout_s: 5
"""
        for name, model in (("detect", "detector"), ("classify", "classifier"))
    )
    path.write_text(
        f"""
version: 1
tiers:{tiers}
workloads:
  shelf-objects:
    privacy: personal
    cascade: [{{tier: edge-detect}}]
  shelf-products:
    privacy: personal
    cascade: [{{tier: edge-classify}}]
"""
    )
    return path


def _route(url: str, workload: str) -> tuple[str, str, np.ndarray]:
    """(tier, model) that answered through the router front, and the first output."""
    data, name = (IMAGES, "images") if workload == "shelf-objects" else (DIGIT, "image")
    body = {"inputs": [{"name": name, "shape": list(data.shape), "datatype": "FP32",
                        "data": data.ravel().tolist()}]}  # fmt: skip
    response = httpx.post(f"{url}/v2/models/{workload}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    out = doc["outputs"][0]
    tier, model = doc["parameters"]["tier"], doc["parameters"]["model"]
    return str(tier), str(model), np.reshape(out["data"], out["shape"])


def _versions(status: dict[str, Any]) -> dict[str, tuple[str | None, int | None]]:
    return {n: (b["version"], b["generation"]) for n, b in status["bundles"].items()}


def test_two_bundles_from_an_oci_registry_behind_the_router_front(
    tmp_path: Path, shared_zoo_dir: Path
) -> None:
    keys = make_keys(tmp_path)
    with oci_registry(tmp_path) as registry:
        store = OciStore(registry.url("fleet"), plain_http=True)
        work = tmp_path / "work"
        made = detector_model(tmp_path / "detector.onnx")
        detector = publish_model(store, keys, work, "detector", "1", made, variant="neck")
        for version, source in (("1", "tiny"), ("2", "tiny-int8"), ("3", "small")):
            publish_model(store, keys, work, "classifier", version,
                          shared_zoo_dir / source / "1" / "model.onnx", variant="tiny")  # fmt: skip
        registry_part = {"store": registry.url("fleet"), "plain_http": True,
                  "trusted_keys": [keys.public_path]}  # fmt: skip
        settings = two_model_settings(
            tmp_path, registry_part,
            gateway={"plan": _plan(tmp_path / "plan.yaml"),
                     "local_tier": ["edge-detect", "edge-classify"]},
        )  # fmt: skip
        with running_node(settings) as node:
            first = node.desired_refs({"detector": "1", "classifier": "1"})
            assert first["sync"]["result"] == "activated"
            assert _versions(first["status"]) == {"detector": ("1", 1), "classifier": ("1", 2)}
            assert first["status"]["bundles"]["detector"]["digest"] == detector.digest
            gateway = node.gateway_url
            tier, model, features = _route(gateway, "shelf-objects")
            assert (tier, model, features.shape) == ("edge-detect", "detector", (1, 8, 4, 4))
            tier, model, before = _route(gateway, "shelf-products")
            assert (tier, model, before.shape) == ("edge-classify", "classifier", (1, 10))

            # the classifier moves to 2 while the detector stays where it is
            second = node.desired("2", bundle="classifier")
            assert _versions(second["status"]) == {"detector": ("1", 1), "classifier": ("2", 3)}
            assert second["sync"]["bundles"]["detector"]["fetched_bytes"] == 0
            _, _, after = _route(gateway, "shelf-products")
            assert not np.allclose(before, after)
            np.testing.assert_allclose(_route(gateway, "shelf-objects")[2], features, rtol=1e-6)

            # version 3's blob changed inside the registry: its digest check fails on the
            # node, which records nothing in its store and keeps both models serving
            manifest_digest = store.resolve("classifier", "3")
            stored = store.get_manifest("classifier", manifest_digest,
                                        limit_bytes=MAX_MANIFEST_BYTES)  # fmt: skip
            tiny_digest = parse_manifest(stored.manifest_bytes).variant("tiny").digest
            data = registry.blob_file(tiny_digest)
            content = bytearray(data.read_bytes())
            content[64] ^= 0x10
            data.write_bytes(bytes(content))
            node_store = node.app.agent.store
            tampered = node.desired("3", bundle="classifier")
            sync = tampered["sync"]["bundles"]["classifier"]
            assert sync["result"] == "error"
            assert "digest check failed" in sync["error"]
            assert tampered["sync"]["bundles"]["detector"]["result"] == "up-to-date"
            assert _versions(tampered["status"]) == {"detector": ("1", 1), "classifier": ("2", 3)}
            assert "3" not in [r.version for r in node_store.list_bundles("classifier")]
            np.testing.assert_allclose(_route(gateway, "shelf-products")[2], after, rtol=1e-6)
            assert _route(gateway, "shelf-objects")[0] == "edge-detect"

            # the classifier rolls back to 1 from the node's own store; the detector stays
            back = node.rollback(bundle="classifier")
            assert back.status_code == 200, back.text
            assert _versions(back.json()["status"]) == {
                "detector": ("1", 1), "classifier": ("1", 4),
            }  # fmt: skip
            np.testing.assert_allclose(_route(gateway, "shelf-products")[2], before, rtol=1e-6)
            np.testing.assert_allclose(_route(gateway, "shelf-objects")[2], features, rtol=1e-6)
