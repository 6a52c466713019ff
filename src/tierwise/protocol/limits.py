"""Bounds the codec enforces on untrusted payloads.

Built once per server and read on every request; as a field of another settings model
its problems are that model's validation errors, built in code a ConfigError.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field, field_validator

from tierwise.errors import ConfigError
from tierwise.settings_errors import SettingsModel

__all__ = ["DEFAULT_LIMITS", "NUMPY_MAX_DIMS", "CodecLimits"]

#: numpy cannot build arrays with more dimensions than this.
NUMPY_MAX_DIMS: Final = 64


class CodecLimits(SettingsModel):
    """Limits applied while decoding a V2 payload.

    - ``max_body_bytes``: whole HTTP body (JSON header plus binary section); over it the
      decoder raises :class:`~tierwise.errors.PayloadTooLargeError` (413).
    - ``max_tensors``: inputs, outputs or requested outputs in one message.
    - ``max_tensor_elements``: elements of one tensor, from its declared shape.
    - ``max_dims``: dimensions of one tensor's shape (numpy allows at most 64).
    """

    max_body_bytes: int = Field(default=64 * 1024 * 1024, strict=True, ge=1)
    max_tensors: int = Field(default=256, strict=True, ge=1)
    max_tensor_elements: int = Field(default=64 * 1024 * 1024, strict=True, ge=1)
    max_dims: int = Field(default=32, strict=True, ge=1)

    @field_validator("max_dims")
    @classmethod
    def _numpy_dims(cls, value: int) -> int:
        if value > NUMPY_MAX_DIMS:
            raise ConfigError("max_dims", f"at most {NUMPY_MAX_DIMS} (numpy's limit)", value)
        return value


#: The limits used when a caller passes none.
DEFAULT_LIMITS: Final = CodecLimits()
