"""Fixtures for edge agent tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_helpers import Release, make_release


@pytest.fixture
def release(tmp_path: Path, shared_zoo_dir: Path) -> Release:
    """A release store holding versions 1 and 2 of bundle ``digits``."""
    return make_release(tmp_path, shared_zoo_dir)
