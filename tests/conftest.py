"""Fixtures shared across components."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tierwise.zoo import build_zoo, zoo_is_current


@pytest.fixture(scope="session")
def shared_zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model family (seed 0), built once per test session; treat it as read-only."""
    out = tmp_path_factory.getbasetemp() / "shared-zoo"
    if not zoo_is_current(out, 0):
        build_zoo(out, seed=0)
    return out


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: no token or private key the tests made appears in any log record."""
    yield
    from security_helpers import find_secret

    for record in caplog.records:
        found = find_secret(record.getMessage())
        assert found is None, f"a secret ({found}) was logged by {record.name}"
