"""Shared helpers for the protocol tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_same_array(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> None:
    """Exact equality: dtype, shape, values (NaN equal to NaN, -0.0 distinct from 0.0)."""
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype == object:
        assert got.tolist() == want.tolist()
        return
    np.testing.assert_array_equal(got, want, strict=True)
    if want.dtype.kind == "f":
        # JSON has no negative NaN, so the sign is only compared where the value is a number
        numbers = ~np.isnan(want)
        np.testing.assert_array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))
