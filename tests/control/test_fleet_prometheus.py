"""Gates that read a real Prometheus: two ``tierwise agent`` processes (one canary)
scraped twice a second, a control plane started with ``--prometheus-url``. A much slower
version is caught in the canary pool by ``p99_ratio`` as Prometheus saw it, and the
canary goes back. (A good version going through every stage, and every other gate, are
the agent-report fleet's tests: the source of the numbers is what differs here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from control_fleet import BUNDLE, Load, running_fleet

pytestmark = pytest.mark.slow


def test_rollout_gates_read_prometheus(tmp_path: Path) -> None:
    with running_fleet(tmp_path, nodes=2, canaries=1, prometheus=True,
                       versions=("1.0.0", "2.0.0-heavy")) as fleet:  # fmt: skip
        with Load(fleet.nodes, per_node_per_s=20) as load, fleet.client() as client:
            body = {"bundle": BUNDLE, "selector": "hw=pi5", "stages": "canary,100",
                    "interval_s": 3.0, "threshold": 2, "min_requests": 20}  # fmt: skip
            bad = client.post("/v1/rollouts", json=body | {"ref": "2.0.0-heavy"}).json()["id"]
            doc = fleet.wait_rollout(bad, {"succeeded", "failed", "aborted"})
            assert doc["state"] == "failed", doc["last_analysis"]
            assert "p99_ratio" in doc["reason"]
            results = {r["gate"]: r for r in doc["last_analysis"]["results"]}
            # the heavy version's p99 is past the gate's default 1.5x of the baseline's
            assert results["p99_ratio"]["canary"] > 1.5 * results["p99_ratio"]["baseline"]
            fleet.wait_versions(lambda v: set(v.values()) == {"1.0.0"}, "back on 1.0.0", 30)
            ready = client.get("/v1/health/ready").json()
            assert ready["gates"] == "prometheus"
        assert load.failures() == {}
