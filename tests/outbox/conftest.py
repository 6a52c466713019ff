"""Fixtures of the JetStream outbox tests: a real NATS hub and leaf pair
(:mod:`nats_helpers`), and a tier server with the ``scale`` model (x: [1, 4], doubled)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nats_helpers import NatsPair, nats_pair

from onnx_models import scale_model
from server_helpers import RunningServer, running_server
from tierwise.server import ServerSettings


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[NatsPair]:
    with nats_pair(tmp_path / "nats") as running:
        yield running


@pytest.fixture
def tier(tmp_path: Path) -> Iterator[RunningServer]:
    repo = tmp_path / "repo"
    scale_model(repo / "scale" / "1" / "model.onnx", 2.0)
    with running_server(ServerSettings(model_repo=repo)) as server:
        yield server
