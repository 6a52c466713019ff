"""Request metadata from V2 parameters: the request's deadline is the tighter of
``deadline_ms`` and V2's ``timeout`` (microseconds, 0 for none); and what ``route
explain`` says of each skip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tierwise.errors import ProtocolError, RouteError
from tierwise.router.meta import meta_from_parameters


@pytest.mark.parametrize(
    ("parameters", "deadline_ms"),
    [
        ({}, None),
        ({"timeout": 0}, None),
        ({"timeout": 250_000}, 250.0),
        ({"timeout": 1}, 0.001),
        ({"deadline_ms": 100}, 100.0),
        ({"deadline_ms": 100, "timeout": 250_000}, 100.0),
        ({"deadline_ms": 300, "timeout": 250_000}, 250.0),
        ({"deadline_ms": 300, "timeout": 0}, 300.0),
    ],
)
def test_the_deadline_is_the_tighter_of_the_two(
    parameters: dict[str, Any], deadline_ms: float | None
) -> None:
    meta = meta_from_parameters(parameters, default_workload="w", received_s=5.0)
    assert meta.deadline_ms == deadline_ms
    assert meta.received_s == 5.0


def test_bad_values_are_refused_with_their_name() -> None:
    with pytest.raises(ProtocolError, match="'timeout' must be an integer"):
        meta_from_parameters({"timeout": 2.5}, default_workload="w", received_s=0.0)
    with pytest.raises(RouteError, match="deadline_ms"):
        meta_from_parameters({"deadline_ms": 0}, default_workload="w", received_s=0.0)


def test_route_explain_json_names_each_skips_cause() -> None:
    """``tierwise route explain --json``: every decision carries its cause (null when kept)."""
    plan = Path(__file__).resolve().parents[2] / "examples" / "plans" / "digits.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "tierwise", "route", "explain", "--plan", str(plan),
         "--workload", "digits", "--deadline-ms", "60", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    decisions = {d["tier"]: d for d in json.loads(done.stdout)["decisions"]}
    assert decisions["device"]["cause"] is None
    assert decisions["cloud"]["cause"] == "deadline"  # rtt p99 120 ms > 60 ms left
    assert decisions["cloud"]["kept"] is False
