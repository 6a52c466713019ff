"""Bounds the codec enforces on untrusted payloads.

A frozen dataclass rather than a pydantic model: it is built once per server and read
on every request, and a pydantic settings model can still hold it as a field (pydantic
runs ``__post_init__``; a :class:`ConfigError` is a ``ValueError`` so it surfaces as a
validation error there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tierwise.errors import ConfigError

__all__ = ["DEFAULT_LIMITS", "NUMPY_MAX_DIMS", "CodecLimits"]

#: numpy cannot build arrays with more dimensions than this.
NUMPY_MAX_DIMS: Final = 64


@dataclass(frozen=True, slots=True)
class CodecLimits:
    """Limits applied while decoding a V2 payload.

    - ``max_body_bytes``: whole HTTP body (JSON header plus binary section); over it the
      decoder raises :class:`~tierwise.errors.PayloadTooLargeError` (413).
    - ``max_tensors``: inputs, outputs or requested outputs in one message.
    - ``max_tensor_elements``: elements of one tensor, from its declared shape.
    - ``max_dims``: dimensions of one tensor's shape (numpy allows at most 64).
    """

    max_body_bytes: int = 64 * 1024 * 1024
    max_tensors: int = 256
    max_tensor_elements: int = 64 * 1024 * 1024
    max_dims: int = 32

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_tensors", "max_tensor_elements", "max_dims"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigError(name, "an integer >= 1", value)
        if self.max_dims > NUMPY_MAX_DIMS:
            raise ConfigError(
                "max_dims", f"at most {NUMPY_MAX_DIMS} (numpy's limit)", self.max_dims
            )


#: The limits used when a caller passes none.
DEFAULT_LIMITS: Final = CodecLimits()
