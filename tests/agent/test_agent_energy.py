"""The agent's tier server accounts energy: the node's power model (or RAPL counters)
from agent.yaml, the tier label from ``tier`` or the gateway's local tier."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from agent_helpers import Release, node_settings, running_node
from server_helpers import free_port

ROW = np.random.default_rng(3).random((1, 8, 8), dtype=np.float32).ravel().tolist()


def series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def infer(url: str, rows: int = 1) -> None:
    body = {"inputs": [{"name": "image", "shape": [rows, 8, 8], "datatype": "FP32",
                        "data": ROW * rows}]}  # fmt: skip
    response = httpx.post(url + "/v2/models/small/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(url + "/v2/models/small/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "model never became ready"
        time.sleep(0.05)


def test_agent_exports_estimated_energy(tmp_path: Path, release: Release) -> None:
    settings = node_settings(
        tmp_path, release, tier="pi5-shelf",
        energy={"active_watts": 5.0, "idle_watts": 3.0, "rapl": "off"},
    )  # fmt: skip
    with running_node(settings) as node:
        node.desired("1")
        wait_ready(node.url)
        before = httpx.get(node.url + "/metrics", timeout=10).text
        for _ in range(20):
            infer(node.url, rows=4)
        text = httpx.get(node.url + "/metrics", timeout=10).text
    key = (("model", "small"), ("source", "estimated"), ("tier", "pi5-shelf"))
    joules = series(text, "tierwise_energy_joules_total")
    assert joules[key] > series(before, "tierwise_energy_joules_total").get(key, 0.0)
    busy = series(text, "tierwise_busy_seconds_total")[(("model", "small"), ("tier", "pi5-shelf"))]
    assert busy > 0
    # estimated energy is the active draw times the busy time
    assert abs(joules[key] - 5.0 * busy) < 1e-6 * max(1.0, joules[key])
    power = series(text, "tierwise_power_watts")
    assert set(power) == {(("source", "estimated"), ("tier", "pi5-shelf"))}
    assert 3.0 <= next(iter(power.values())) <= 5.0


def test_agent_without_power_model_has_busy_time_only(tmp_path: Path, release: Release) -> None:
    settings = node_settings(tmp_path, release, energy={"rapl": "off"})
    with running_node(settings) as node:
        node.desired("1")
        wait_ready(node.url)
        infer(node.url)
        text = httpx.get(node.url + "/metrics", timeout=10).text
    assert series(text, "tierwise_busy_seconds_total")[(("model", "small"), ("tier", "local"))] > 0
    assert series(text, "tierwise_energy_joules_total") == {}


def test_agent_flags_override_the_power_model_and_are_checked(
    tmp_path: Path, release: Release
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"""state_dir: node
port: {free_port()}
bundle: digits
serve: [{{variant: small}}]
registry: {{store: {release.root}, trusted_keys: [{release.keys.public_path}]}}
desired_file: desired.yaml
energy: {{idle_watts: 3, active_watts: 5}}
"""
    )
    command = [sys.executable, "-m", "tierwise", "agent", "--config", str(config)]
    # the file's idle draw stays and the flag's active draw is below it: refused, named
    refused = subprocess.run(
        [*command, "--active-watts", "2"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2, refused.stderr
    assert "active_watts" in refused.stderr
    assert "idle_watts (3)" in refused.stderr
    refused = subprocess.run(
        [*command, "--tier", "Not A Name"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2, refused.stderr
    assert "tier" in refused.stderr
