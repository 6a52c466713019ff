"""Fixtures shared across components."""

from __future__ import annotations

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
