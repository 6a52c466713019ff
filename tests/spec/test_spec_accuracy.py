"""A workload's min_accuracy: a fraction in (0, 1], reported with its field path."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_helpers import Broken

from tierwise.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("value", [0, 1.5, "high"])
def test_min_accuracy_out_of_bounds(tmp_path: Path, value: object) -> None:
    def edit(d: dict) -> None:  # type: ignore[type-arg]
        d["workloads"]["shelf-detect"]["min_accuracy"] = value

    (problem,) = Broken(tmp_path).problems("retail-shelf", edit)
    assert problem.path == "workloads.shelf-detect.min_accuracy"
    assert problem.message.startswith("expected a number")


def test_the_digits_fleet_sets_accuracy_targets() -> None:
    spec = load_spec(EXAMPLES / "fleets" / "digits.yaml")
    assert spec.workloads["digits"].min_accuracy == 0.93
    assert spec.workloads["digits-personal"].min_accuracy == 0.92
