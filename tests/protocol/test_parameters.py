"""The V2 ``timeout`` request parameter, parsed in one place for the gateway (and the tier
server): Triton's microseconds, 0 or absent for none, integers only."""

from __future__ import annotations

from typing import Any

import pytest

from tierwise.errors import ProtocolError
from tierwise.protocol import MAX_TIMEOUT_US, timeout_parameter_us, timeout_us_of


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [({}, 0), ({"timeout": 0}, 0), ({"timeout": 1500}, 1500), ({"timeout": MAX_TIMEOUT_US},
     MAX_TIMEOUT_US), ({"other": "x"}, 0)],
)  # fmt: skip
def test_timeout_is_read(parameters: dict[str, Any], expected: int) -> None:
    assert timeout_us_of(parameters) == expected


@pytest.mark.parametrize("value", [-1, MAX_TIMEOUT_US + 1, 1.5, 1000.0, True, "100", None])
def test_anything_but_an_integer_in_range_is_refused(value: object) -> None:
    with pytest.raises(ProtocolError, match="'timeout' must be an integer number") as info:
        timeout_us_of({"timeout": value})
    assert info.value.status_code == 400
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.25, 250_000), (1e-9, 1), (0.0000015, 2), (0.0, 1), (-3.0, 1), (float("nan"), 1),
     (1e9, MAX_TIMEOUT_US)],
)  # fmt: skip
def test_time_left_as_a_timeout_rounds_up_within_bounds(seconds: float, expected: int) -> None:
    assert timeout_parameter_us(seconds) == expected
