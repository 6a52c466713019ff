"""``tierwise agent`` as its own process against a real OCI registry: kill -9 during a pull
leaves nothing half-installed, and the next start cleans up and activates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from registry_helpers import TcpProxy, make_keys, oci_registry, publish
from server_helpers import free_port
from tierwise.registry import LocalStore, OciStore


def _config(tmp_path: Path, store: str, port: int, public_key: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"""
node: store-1
state_dir: node
port: {port}
bundle: demo
serve: [{{variant: edge, model: demo}}]
registry:
  store: {store}
  plain_http: true
  timeout_s: 10
  trusted_keys: [{public_key}]
desired_file: desired.yaml
sync_interval_s: 0.5
"""
    )
    (tmp_path / "desired.yaml").write_text("ref: '1'\n")
    return path


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tierwise", "agent", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_kill_9_mid_pull_then_restart(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    with oci_registry(tmp_path) as registry:
        store = OciStore(registry.url("fleet"), plain_http=True)
        manifest = publish(store, tmp_path, keys, "1", {"edge": 21}, width=600)
        proxy = TcpProxy(registry.port, rate_bytes_per_s=250_000)
        port = free_port()
        config = _config(tmp_path, f"oci://{proxy.host}/fleet", port, keys.public_path)
        log = tmp_path / "agent.log"
        process = _start(config, log)
        partial_dir = tmp_path / "node" / "store" / "tmp"
        try:
            deadline = time.monotonic() + 60
            while not partial_dir.exists() or not any(
                p.stat().st_size > 0 for p in partial_dir.iterdir()
            ):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            proxy.close()
            if process.poll() is None:
                process.kill()
        # nothing half-installed: no version recorded, no model laid out, no state
        left = LocalStore(tmp_path / "node" / "store")
        assert left.removed_partials >= 1
        assert left.list_bundles() == []
        assert not left.has_blob("demo", manifest.variant("edge").digest)
        left.close()
        repo = tmp_path / "node" / "repo" / "demo"
        assert not repo.exists() or list(repo.iterdir()) == []
        assert not (tmp_path / "node" / "agent-state.json").exists()

        # the next start (uplink back to full speed) cleans up and activates
        _config(tmp_path, registry.url("fleet"), port, keys.public_path)
        process = _start(config, log)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    status = httpx.get(f"http://127.0.0.1:{port}/v2/agent/status", timeout=2).json()
                except httpx.HTTPError:
                    status = {}
                if status.get("health", {}).get("ready"):
                    break
                time.sleep(0.1)
            assert status["version"] == "1"
            assert status["digest"] == manifest.digest
            body = {"inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32",
                                "data": [0.5] * 16}]}  # fmt: skip
            answer = httpx.post(f"http://127.0.0.1:{port}/v2/models/demo/infer", json=body)
            assert answer.status_code == 200
            assert answer.json()["outputs"][0]["shape"] == [2, 4]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        assert not partial_dir.exists() or not any(partial_dir.iterdir())


def test_agent_pulls_from_a_registry_that_needs_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import bcrypt

    from agent_helpers import Release, node_settings, running_node

    hashed = bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(rounds=4)).decode()
    keys = make_keys(tmp_path)
    with oci_registry(tmp_path, htpasswd=f"fleet:{hashed}\n") as registry:
        store = OciStore(registry.url("fleet"), plain_http=True, username="fleet",
                         password="s3cret-pw")  # fmt: skip
        manifest = publish(store, tmp_path, keys, "1", {"edge": 31})
        release = Release(tmp_path, LocalStore(tmp_path / "unused"), keys, {}, tmp_path)
        settings = node_settings(
            tmp_path, release, bundle="demo", serve=[{"variant": "edge", "model": "demo"}],
            registry={"store": registry.url("fleet"), "plain_http": True, "username": "fleet",
                      "password_env": "TW_REGISTRY_PW", "trusted_keys": [keys.public_path]},
        )  # fmt: skip
        with running_node(settings, env={"TW_REGISTRY_PW": "s3cret-pw"}) as node:
            answer = node.desired("1")
            assert answer["sync"]["result"] == "activated"
            assert answer["status"]["digest"] == manifest.digest
        with running_node(settings, env={"TW_REGISTRY_PW": "wrong"}) as node:
            answer = node.desired("1")
            assert answer["sync"]["result"] == "error"
            assert "credentials given were refused" in answer["sync"]["error"]
            assert answer["status"]["version"] == "1"  # still serving from its own disk
    assert "s3cret-pw" not in caplog.text
