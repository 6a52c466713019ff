"""A desired reference that names a version the node keeps is activated from the node's
own store, verified, without asking the registry: a real OCI registry (Debian's
``docker-registry``) that is stopped, and a release folder that is moved away. The bundle's
model is built here with onnx.helper (not by the zoo)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from agent_helpers import Release, node_settings, publish_model, running_node
from onnx_models import scale_model
from registry_helpers import make_keys, oci_registry
from tierwise.agent import AgentSettings
from tierwise.registry import OciStore

X = np.arange(8, dtype=np.float32).reshape(2, 4)
#: what each version of bundle ``scale`` answers for X
ANSWERS = {"1": (X * 2).ravel().tolist(), "2": (X * 3).ravel().tolist()}


def infer(url: str) -> tuple[int, str | None, list[float]]:
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                        "data": X.ravel().tolist()}]}  # fmt: skip
    response = httpx.post(url + "/v2/models/scale/infer", json=body, timeout=10)
    if response.status_code != 200:
        return response.status_code, None, []
    doc = response.json()
    return 200, doc["model_version"], doc["outputs"][0]["data"]


def models(tmp_path: Path) -> dict[str, Path]:
    return {v: scale_model(tmp_path / "models" / f"scale-{v}.onnx", f) for v, f in
            (("1", 2.0), ("2", 3.0))}  # fmt: skip


def settings_for(tmp_path: Path, release: Release, registry: dict[str, Any]) -> AgentSettings:
    return node_settings(tmp_path, release, bundle="scale", serve=[{"variant": "scale"}],
                         registry=registry)  # fmt: skip


def test_a_kept_version_comes_back_while_the_registry_is_stopped(
    tmp_path: Path, release: Release
) -> None:
    keys = make_keys(tmp_path / "oci")
    with oci_registry(tmp_path) as registry:
        store = OciStore(registry.url("fleet"), plain_http=True)
        digests = {v: publish_model(store, keys, tmp_path / "work", "scale", v, path,
                                    variant="scale").digest
                   for v, path in models(tmp_path).items()}  # fmt: skip
        part = {"store": registry.url("fleet"), "plain_http": True, "timeout_s": 2,
                "trusted_keys": [keys.public_path]}  # fmt: skip
        with running_node(settings_for(tmp_path, release, part)) as node:
            assert node.desired("1")["sync"]["result"] == "activated"
            assert node.desired("2")["sync"]["result"] == "activated"
            assert infer(node.url) == (200, "2", ANSWERS["2"])
            assert node.status()["previous"] == ["1"]

            registry.process.terminate()  # the uplink is gone
            registry.process.wait(timeout=10)
            # the active version is checked against the registry at each sync: down
            gone = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
            assert gone["result"] == "error"
            assert "Connection refused" in gone["error"]
            assert infer(node.url) == (200, "2", ANSWERS["2"])

            started = time.monotonic()
            back = node.desired("1")
            assert time.monotonic() - started < 10
            assert back["sync"]["result"] == "activated", back["sync"]
            assert back["sync"]["fetched_bytes"] == 0
            assert back["sync"]["digest"] == digests["1"]
            assert (back["status"]["version"], back["status"]["generation"]) == ("1", 3)
            assert infer(node.url) == (200, "3", ANSWERS["1"])

            # by digest, too
            forward = node.desired(digests["2"])
            assert forward["sync"]["result"] == "activated", forward["sync"]
            assert infer(node.url) == (200, "4", ANSWERS["2"])
            assert forward["status"]["previous"] == ["1"]

            # a version rolled back from stays held while the desired state names it
            rolled = node.rollback()
            assert rolled.status_code == 200, rolled.text
            assert rolled.json()["status"]["held"] == [digests["2"]]
            held = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
            assert held["result"] == "held"
            assert infer(node.url) == (200, "5", ANSWERS["1"])
            # naming it again by another reference lifts the hold: it is activated from here
            again = node.desired("2")
            assert again["sync"]["result"] == "activated", again["sync"]
            assert again["status"]["held"] == []
            assert infer(node.url) == (200, "6", ANSWERS["2"])


def test_a_tampered_kept_version_is_refused_and_fetched_again_later(
    tmp_path: Path, release: Release
) -> None:
    versions = {v: publish_model(release.store, release.keys, release.tmp, "scale", v, path,
                                 variant="scale")
                for v, path in models(tmp_path).items()}  # fmt: skip
    settings = settings_for(
        tmp_path, release, {"store": str(release.root), "trusted_keys": [release.keys.public_path]}
    )
    with running_node(settings) as node:
        node.desired("1")
        node.desired("2")
        assert infer(node.url) == (200, "2", ANSWERS["2"])
        away = release.root.with_name("release-away")
        release.store.close()
        release.root.rename(away)  # the registry's folder is unreachable

        blob = node.app.agent.store.blob_path(versions["1"].variant("scale").digest)
        os.chmod(blob, stat.S_IRUSR | stat.S_IWUSR)
        content = bytearray(blob.read_bytes())
        content[len(content) // 2] ^= 0x01
        blob.write_bytes(bytes(content))

        refused = node.desired("1")
        sync = refused["sync"]
        assert sync["result"] == "error"
        assert "digest" in sync["error"], sync["error"]
        assert refused["status"]["version"] == "2"
        assert infer(node.url) == (200, "2", ANSWERS["2"])
        assert refused["status"]["health"]["ready"] is True
        # the bad copy is gone from the node's store; with the registry still away,
        # the next try has nothing to activate it from
        assert not blob.exists()
        later = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
        assert later["result"] == "error"
        assert infer(node.url) == (200, "2", ANSWERS["2"])

        away.rename(release.root)  # the registry is back: version 1 is fetched again
        healed = httpx.post(node.url + "/v2/agent/sync", timeout=60).json()["sync"]
        assert healed["result"] == "activated", healed
        assert healed["fetched_bytes"] > 0
        assert infer(node.url)[2] == ANSWERS["1"]
        assert node.status()["version"] == "1"
