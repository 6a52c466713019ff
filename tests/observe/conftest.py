"""Observe test fixtures: the plan of :mod:`observe_plans`."""

from __future__ import annotations

from pathlib import Path

import pytest
from observe_plans import write_plan

from tierwise.planfile.load import load_plan
from tierwise.planfile.schema import Plan


@pytest.fixture
def plan_path(tmp_path: Path) -> Path:
    return write_plan(tmp_path / "plan.yaml")


@pytest.fixture
def plan(plan_path: Path) -> Plan:
    return load_plan(plan_path)
