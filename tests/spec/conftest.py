"""Fixtures for spec tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_helpers import Broken


@pytest.fixture
def broken(tmp_path: Path) -> Broken:
    return Broken(tmp_path)
