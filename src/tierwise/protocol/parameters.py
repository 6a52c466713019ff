"""Request parameters with a meaning in the V2 protocol itself, parsed in one place.

``timeout`` is Triton's: how long, in microseconds, the request may wait before it runs;
0 (or absent) means no limit. A tier server drops a request whose timeout passes while it
is queued (408); the router's gateway reads it as the request's deadline and passes the
time left on to the tiers it calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from tierwise.errors import ProtocolError

__all__ = ["MAX_TIMEOUT_US", "TIMEOUT_PARAMETER", "timeout_parameter_us", "timeout_us_of"]

#: The request parameter's name.
TIMEOUT_PARAMETER: Final = "timeout"
#: Largest ``timeout`` accepted (one hour, in microseconds).
MAX_TIMEOUT_US: Final = 3_600_000_000


def timeout_us_of(parameters: Mapping[str, Any]) -> int:
    """The request's ``timeout`` in microseconds, 0 when absent (no limit).

    Raises ProtocolError (400) unless it is an integer from 0 to :data:`MAX_TIMEOUT_US`;
    booleans and floats are refused, as Triton refuses them.
    """
    value = parameters.get(TIMEOUT_PARAMETER, 0)
    if type(value) is not int or not 0 <= value <= MAX_TIMEOUT_US:
        raise ProtocolError(
            f"request parameter {TIMEOUT_PARAMETER!r} must be an integer number of"
            f" microseconds between 0 and {MAX_TIMEOUT_US}, got {value!r}"
        )
    return value


def timeout_parameter_us(seconds: float) -> int:
    """``seconds`` left as a ``timeout`` value: whole microseconds rounded up (a deadline
    passed on is never made earlier), at least 1 and at most :data:`MAX_TIMEOUT_US`."""
    if not seconds > 0:  # NaN too
        return 1
    return min(max(math.ceil(seconds * 1_000_000), 1), MAX_TIMEOUT_US)
