"""Router test fixtures: the edge (small) and cloud (large) tier servers on loopback, and
an outbox on a settable clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade_helpers import model_repo
from outbox_helpers import FakeClock
from server_helpers import RunningServer, running_server
from tierwise.outbox import Outbox
from tierwise.server import ServerSettings


@pytest.fixture(scope="module")
def tier_servers(
    shared_zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    root = tmp_path_factory.mktemp("tiers")
    with (
        running_server(
            ServerSettings(model_repo=model_repo(shared_zoo_dir, root, "small"))
        ) as edge,
        running_server(
            ServerSettings(model_repo=model_repo(shared_zoo_dir, root, "large"))
        ) as cloud,
    ):
        yield edge, cloud


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", max_items=100, clock=clock, backoff_base_s=2.0)
    yield box
    box.close()
