"""The edge agent against a real release store: sync, activation under load, rollback,
refused bundles, and what it reports."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from agent_helpers import Release, node_settings, running_node
from registry_helpers import make_keys
from security_helpers import new_token
from tierwise.registry import Signer, create_bundle, push, read_bundle_dir

ROW = np.random.default_rng(0).random((1, 8, 8), dtype=np.float32)


def _infer(client: httpx.Client, url: str) -> tuple[int, str | None, list[float]]:
    body = {"inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32",
                        "data": ROW.ravel().tolist()}],
            "outputs": [{"name": "probabilities"}]}  # fmt: skip
    response = client.post(url + "/v2/models/small/infer", json=body, timeout=10)
    if response.status_code != 200:
        return response.status_code, None, []
    doc = response.json()
    return 200, doc.get("model_version"), doc["outputs"][0]["data"]


def test_first_sync_activates_and_status_reports(tmp_path: Path, release: Release) -> None:
    settings = node_settings(tmp_path, release)
    with running_node(settings) as node:
        before = node.status()
        assert before["version"] is None
        assert before["health"]["ready"] is False
        assert before["last_sync"]["result"] == "idle"
        answer = node.desired("1")
        assert answer["sync"]["result"] == "activated"
        status = node.status()
        assert status["version"] == "1"
        assert status["digest"] == release.versions["1"].digest
        assert status["generation"] == 1
        assert status["health"] == {"live": True, "ready": True}
        assert status["queue_depth"] == 0
        with httpx.Client() as client:
            code, version, _ = _infer(client, node.url)
        assert (code, version) == (200, "1")
        again = httpx.post(node.url + "/v2/agent/sync", timeout=30).json()
        assert again["sync"]["result"] == "up-to-date"
        metrics = httpx.get(node.url + "/metrics", timeout=10).text
        assert 'tierwise_agent_version_info{bundle="digits"' in metrics
        assert 'tierwise_agent_syncs_total{result="activated"} 1.0' in metrics
        assert "tierwise_agent_ready 1.0" in metrics
        assert "tierwise_requests_total" in metrics  # the tier server's own series


def test_activation_under_load_fails_no_request(tmp_path: Path, release: Release) -> None:
    settings = node_settings(tmp_path, release)
    with running_node(settings) as node:
        node.desired("1")
        seen: list[list[tuple[int, str | None]]] = [[] for _ in range(4)]
        outputs: dict[str, list[float]] = {}
        stop = threading.Event()

        def load(mine: list[tuple[int, str | None]]) -> None:
            with httpx.Client() as client:
                while not stop.is_set():
                    code, version, data = _infer(client, node.url)
                    mine.append((code, version))
                    if version is not None:
                        outputs.setdefault(version, data)

        def answered() -> int:
            return sum(len(mine) for mine in seen)

        def wait_for(count: int) -> None:
            deadline = time.monotonic() + 30
            while answered() < count:
                assert time.monotonic() < deadline, "the load stopped"
                time.sleep(0.01)

        workers = [threading.Thread(target=load, args=(mine,)) for mine in seen]
        for worker in workers:
            worker.start()
        try:
            wait_for(50)
            assert node.desired("2")["sync"]["result"] == "activated"
            wait_for(answered() + 50)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        assert [s for mine in seen for s in mine if s[0] != 200] == []
        for mine in seen:  # each client's requests are sequential: old, then only new
            versions = [v for _, v in mine]
            assert versions[0] == "1"
            assert versions[-1] == "2"
            assert "1" not in versions[versions.index("2") :]
        assert outputs["1"] != outputs["2"]  # int8 weights give other probabilities


def test_rollback_is_local_and_holds_the_bad_version(
    tmp_path: Path, release: Release, shared_zoo_dir: Path
) -> None:
    release.publish("3", shared_zoo_dir / "small" / "1" / "model.onnx")
    settings = node_settings(tmp_path, release)
    with running_node(settings) as node:
        node.desired("1")
        node.desired("2")
        node.desired("3")
        assert node.status()["previous"] == ["2", "1"]
        release.store.close()
        (release.root / "index.db").rename(release.root / "index.db.away")  # the uplink is gone
        answer = httpx.post(node.url + "/v2/agent/rollback", json={}, timeout=30).json()
        assert answer["rolled_back_to"] == "2"
        status = answer["status"]
        assert (status["version"], status["generation"]) == ("2", 4)
        assert status["held"] == [release.versions["3"].digest]
        with httpx.Client() as client:
            assert _infer(client, node.url)[:2] == (200, "4")
        # a second rollback goes further back, never forward to the held version
        again = httpx.post(node.url + "/v2/agent/rollback", json={}, timeout=30).json()
        assert again["rolled_back_to"] == "1"
        assert again["status"]["held"] == sorted(
            [release.versions["2"].digest, release.versions["3"].digest]
        )
        (release.root / "index.db.away").rename(release.root / "index.db")
        # the desired state still names 3, which stays held
        sync = httpx.post(node.url + "/v2/agent/sync", timeout=30).json()["sync"]
        assert sync["result"] == "held"
        assert node.status()["version"] == "1"
        nothing = httpx.post(node.url + "/v2/agent/rollback", json={}, timeout=30)
        assert nothing.status_code == 409
        assert "versions to go back to: none" in nothing.json()["error"]
        # naming another version lifts the holds: 2 is activated again
        assert node.desired("2")["sync"]["result"] == "activated"
        assert node.status()["held"] == []


def test_refused_bundle_keeps_the_old_version_serving(tmp_path: Path, release: Release) -> None:
    settings = node_settings(tmp_path, release)
    stranger = make_keys(tmp_path / "stranger", "stranger")
    folder = tmp_path / "v3"
    folder.mkdir()
    (folder / "small.onnx").write_bytes((release.tmp / "src-1" / "small.onnx").read_bytes())
    create_bundle([folder / "small.onnx"], tmp_path / "b3", name="digits", version="3",
                  description="signed by a key the node does not trust")  # fmt: skip
    push(read_bundle_dir(tmp_path / "b3"), release.store, Signer.from_file(stranger.private_path))
    with running_node(settings) as node:
        node.desired("1")
        answer = node.desired("3")
        assert answer["sync"]["result"] == "error"
        assert "signature check failed" in answer["sync"]["error"]
        assert "not trusted" in answer["sync"]["error"]
        assert answer["status"]["version"] == "1"
        with httpx.Client() as client:
            assert _infer(client, node.url)[:2] == (200, "1")


def test_a_model_that_fails_to_load_is_not_activated(tmp_path: Path, release: Release) -> None:
    settings = node_settings(tmp_path, release)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07" + b"\x00" * 64)
    folder = tmp_path / "v4"
    folder.mkdir()
    (folder / "small.onnx").write_bytes(broken.read_bytes())
    # a signed, intact bundle whose model onnxruntime cannot load; made by hand because
    # bundle create refuses files it cannot read
    manifest = release.versions["1"]
    doc = orjson.loads(manifest.canonical_bytes())
    from tierwise.registry import digest_bytes

    data = broken.read_bytes()
    doc["version"] = "4"
    doc["variants"][0]["digest"] = digest_bytes(data)
    doc["variants"][0]["size_bytes"] = len(data)
    body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    from tierwise.registry import StoredBundle

    release.store.put_blob("digits", digest_bytes(data), len(data), broken)
    release.store.put_manifest(
        StoredBundle("digits", "4", digest_bytes(body), body,
                     Signer.from_file(release.keys.private_path).sign(body)),
        tags=[],
    )  # fmt: skip
    with running_node(settings) as node:
        node.desired("1")
        answer = node.desired("4")
        assert answer["sync"]["result"] == "error"
        assert "small" in answer["sync"]["error"]
        status = answer["status"]
        assert status["version"] == "1"
        assert status["health"]["ready"] is True
        assert sorted(p.name for p in (settings.state_dir / "repo" / "small").iterdir()) == ["1"]
        with httpx.Client() as client:
            assert _infer(client, node.url)[:2] == (200, "1")
        # held: the next sync does not try it again
        sync = httpx.post(node.url + "/v2/agent/sync", timeout=30).json()["sync"]
        assert sync["result"] == "held"


def test_control_endpoint_errors(tmp_path: Path, release: Release) -> None:
    with running_node(node_settings(tmp_path, release)) as node:
        bad = httpx.put(node.url + "/v2/agent/desired", content=b"[1]", timeout=10)
        assert bad.status_code == 400
        assert "JSON object" in bad.json()["error"]
        spaced = httpx.put(node.url + "/v2/agent/desired", json={"ref": "a b"}, timeout=10)
        assert spaced.status_code == 400
        wrong = httpx.get(node.url + "/v2/agent/rollback", timeout=10)
        assert wrong.status_code == 405
        missing = httpx.get(node.url + "/v2/agent/nope", timeout=10)
        assert missing.status_code == 404
        huge = httpx.post(node.url + "/v2/agent/rollback", content=b"x" * 10_000, timeout=10)
        assert huge.status_code == 413
        none = httpx.post(node.url + "/v2/agent/rollback", json={}, timeout=10)
        assert none.status_code == 409
        assert "cannot roll back" in none.json()["error"]


def test_restart_serves_the_active_version_and_repairs_a_lost_one(
    tmp_path: Path, release: Release
) -> None:
    settings = node_settings(tmp_path, release)
    with running_node(settings) as node:
        node.desired("2")
    with running_node(settings) as node:
        # the active version is served from the node's own disk before any sync
        status = node.status()
        assert status["version"] == "2"
        assert status["health"]["ready"] is True
    # a lost model repository is laid out again from the node's own store
    shutil.rmtree(settings.state_dir / "repo")
    release.store.close()
    (release.root / "index.db").rename(release.root / "index.db.away")  # and no uplink
    with running_node(settings) as node:
        deadline = time.monotonic() + 30
        while not node.status()["health"]["ready"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status = node.status()
        assert (status["version"], status["generation"]) == ("2", 2)  # laid out again
        with httpx.Client() as client:
            assert _infer(client, node.url)[:2] == (200, "2")


def test_control_token_guards_the_changing_endpoints(tmp_path: Path, release: Release) -> None:
    settings = node_settings(tmp_path, release, control_token_env="TW_CONTROL")
    token, _ = new_token("control", "admin")
    guess, _ = new_token("control", "admin")  # well formed, but not the node's
    with running_node(settings, env={"TW_CONTROL": token}) as node:
        assert httpx.get(node.url + "/v2/agent/status", timeout=10).status_code == 200
        for method, action in (("PUT", "desired"), ("POST", "sync"), ("POST", "rollback")):
            refused = httpx.request(method, f"{node.url}/v2/agent/{action}", json={"ref": "1"})
            assert refused.status_code == 401
            assert "needs a bearer token" in refused.json()["error"]
            wrong = httpx.request(
                method, f"{node.url}/v2/agent/{action}", json={"ref": "1"},
                headers={"Authorization": f"Bearer {guess}"},
            )  # fmt: skip
            assert wrong.status_code == 401
        allowed = httpx.put(
            node.url + "/v2/agent/desired", json={"ref": "1"}, timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert allowed.status_code == 200
        assert allowed.json()["status"]["version"] == "1"
