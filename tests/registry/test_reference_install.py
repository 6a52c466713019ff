"""A synced bundle's drift reference lands beside its model in the node's model
repository, and the tier server serving that generation monitors drift with it."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from registry_helpers import make_keys
from server_helpers import running_server
from tierwise.agent.install import Installer
from tierwise.agent.settings import ServePart
from tierwise.registry import (
    LocalStore,
    Signer,
    TrustStore,
    create_bundle,
    pull,
    push,
    read_bundle_dir,
)
from tierwise.server import ServerSettings
from tierwise.telemetry.drift import REFERENCE_FILE, DriftSettings, Reference
from tierwise.zoo import drift_stream, load_zoo


def _rows(metrics: str, name: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name:
                found[sample.labels["model"], sample.labels["version"]] = sample.value
    return found


def test_synced_reference_is_served_with_its_model(shared_zoo_dir: Path, tmp_path: Path) -> None:
    zoo = load_zoo(shared_zoo_dir)
    keys = make_keys(tmp_path)
    create_bundle([shared_zoo_dir], tmp_path / "bundle", name="digits", version="1")
    origin, node = LocalStore(tmp_path / "origin"), LocalStore(tmp_path / "node")
    push(read_bundle_dir(tmp_path / "bundle"), origin, Signer.from_file(keys.private_path))
    trust = TrustStore.from_paths([tmp_path / "keys"])
    report = pull(origin, "digits", "1", node, trust, variants=["tiny-int8"])
    repo = tmp_path / "repo"
    installer = Installer(repo, node, [ServePart(variant="tiny-int8", model="digits")])
    placed = installer.install(report.manifest, 3)
    reference_file = placed["digits"].parent / REFERENCE_FILE
    assert reference_file.read_bytes() == (zoo.reference_path("tiny-int8") or Path()).read_bytes()
    assert Reference.load(reference_file).classes == 10

    settings = ServerSettings(model_repo=repo, drift=DriftSettings(window_rows=100))
    x, _ = drift_stream(zoo, rows=120, seed=5, severity=2.5)
    with running_server(settings) as server, httpx.Client(base_url=server.url) as client:
        for start in range(0, 120, 40):
            batch = x[start : start + 40]
            body = {"inputs": [{"name": "image", "shape": list(batch.shape),
                                "datatype": "FP32", "data": batch.ravel().tolist()}]}  # fmt: skip
            assert client.post("/v2/models/digits/infer", json=body).status_code == 200
        metrics = client.get("/metrics").text
    assert _rows(metrics, "tierwise_drift_window_rows")["digits", "3"] == 100
    assert _rows(metrics, "tierwise_drift_level")["digits", "3"] == 2
    assert np.isfinite(list(_rows(metrics, "tierwise_drift_score").values())).all()
