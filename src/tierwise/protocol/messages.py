"""In-memory V2 inference messages: what the codec decodes to and encodes from.

Plain slotted dataclasses, not pydantic models: the codec validates the wire format
itself (with messages naming the tensor) and these objects are built on every request,
so they must cost next to nothing. Tensors are numpy arrays keyed by name, in wire
order; BYTES tensors are object arrays of ``bytes``. Per-tensor ``parameters`` live in
``input_parameters`` / ``output_parameters`` (the codec owns ``binary_data_size``, so it
never appears there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["InferRequest", "InferResponse", "RequestedOutput", "binary_outputs_requested"]


@dataclass(slots=True)
class RequestedOutput:
    """One entry of a request's ``outputs``: which output to return, and how.

    ``binary_data`` asks for the output in the binary-tensor extension; on the wire it is
    accepted both as ``parameters.binary_data`` (tritonclient) and as a top-level key.
    ``parameters`` holds the remaining output parameters (e.g. ``classification``).
    """

    name: str
    binary_data: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The wire form, with ``binary_data`` inside ``parameters`` as tritonclient sends it."""
        params = dict(self.parameters)
        if self.binary_data:
            params["binary_data"] = True
        out: dict[str, Any] = {"name": self.name}
        if params:
            out["parameters"] = params
        return out


@dataclass(slots=True, eq=False)
class InferRequest:
    """A V2 inference request body (the model name and version travel in the URL)."""

    inputs: dict[str, np.ndarray[Any, Any]]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None
    input_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def requested_output_names(self) -> list[str] | None:
        """Names of the outputs asked for, or None when the request asks for all of them
        (no ``outputs``, or an empty list, as Triton reads it)."""
        return [o.name for o in self.outputs] if self.outputs else None


@dataclass(slots=True, eq=False)
class InferResponse:
    """A V2 inference response body; ``id`` echoes the request's."""

    model_name: str
    outputs: dict[str, np.ndarray[Any, Any]]
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    output_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)


def binary_outputs_requested(request: InferRequest) -> bool | frozenset[str]:
    """Which outputs the client wants in binary, in the form ``encode_response`` takes.

    True (all outputs) when the request parameter ``binary_data_output`` is true, as
    Triton does; otherwise the names of requested outputs with ``binary_data: true``
    (an empty set means pure JSON).
    """
    if request.parameters.get("binary_data_output") is True:
        return True
    if not request.outputs:
        return frozenset()
    return frozenset(o.name for o in request.outputs if o.binary_data)
