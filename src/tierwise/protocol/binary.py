"""The binary-tensor extension: raw tensor bytes after the JSON header.

Numeric tensors are little-endian and row-major; BOOL is one byte (0 or 1) per element;
BYTES elements are each a 4-byte little-endian length followed by the bytes (Triton's
layout). Numeric tensors decode with ``np.frombuffer``: zero copy, so the arrays are
views of the body (read-only when the body is ``bytes``, and possibly unaligned).
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np

from tierwise.errors import ProtocolError

__all__ = ["decode_binary", "encode_binary"]

_LENGTH: Final = struct.Struct("<I")
_MAX_ELEMENT_BYTES: Final = 2**32 - 1


def _decode_bytes_elements(
    section: memoryview, start: int, end: int, count: int, tensor: str
) -> np.ndarray[Any, Any]:
    items: list[bytes] = []
    pos = start
    while pos < end:
        if len(items) == count:
            raise ProtocolError(
                f"binary BYTES data holds more than the {count} elements the shape needs",
                tensor=tensor,
            )
        if pos + 4 > end:
            raise ProtocolError(
                f"binary BYTES element {len(items)} has a truncated 4-byte length prefix",
                tensor=tensor,
            )
        (length,) = _LENGTH.unpack_from(section, pos)
        pos += 4
        if pos + length > end:
            raise ProtocolError(
                f"binary BYTES element {len(items)} claims {length} bytes but only "
                f"{end - pos} remain in binary_data_size",
                tensor=tensor,
            )
        items.append(bytes(section[pos : pos + length]))
        pos += length
    if len(items) != count:
        raise ProtocolError(
            f"shape needs {count} elements, binary BYTES data holds {len(items)}", tensor=tensor
        )
    out = np.empty(count, dtype=object)
    out[:] = items
    return out


def decode_binary(
    section: memoryview,
    offset: int,
    size_bytes: int,
    datatype: str,
    dtype: np.dtype[Any],
    shape: list[int],
    count: int,
    tensor: str,
) -> np.ndarray[Any, Any]:
    """The array for one tensor whose ``size_bytes`` bytes start at ``offset`` in ``section``.

    The caller advances its offset by ``size_bytes``; this checks the size against the
    shape and against what is left of the section.
    """
    end = offset + size_bytes
    if end > len(section):
        raise ProtocolError(
            f"binary_data_size is {size_bytes} bytes but only {len(section) - offset} bytes "
            "of the binary section remain",
            tensor=tensor,
        )
    if datatype == "BYTES":
        return _decode_bytes_elements(section, offset, end, count, tensor).reshape(shape)
    expected = count * dtype.itemsize
    if size_bytes != expected:
        raise ProtocolError(
            f"binary_data_size is {size_bytes} bytes but shape {shape} of {datatype} needs "
            f"{expected} ({count} elements x {dtype.itemsize} bytes)",
            tensor=tensor,
        )
    if count == 0:
        return np.empty(shape, dtype=dtype)
    if datatype == "BOOL":
        if np.frombuffer(section, dtype=np.uint8, count=count, offset=offset).max() > 1:
            raise ProtocolError("binary BOOL data must be bytes 0 or 1", tensor=tensor)
        return np.frombuffer(section, dtype=np.bool_, count=count, offset=offset).reshape(shape)
    little = dtype.newbyteorder("<")
    return np.frombuffer(section, dtype=little, count=count, offset=offset).reshape(shape)


def _element_bytes(value: Any, index: int, tensor: str) -> bytes:
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        raw = value.encode()
    else:
        raise ProtocolError(
            f"BYTES element {index} is {type(value).__name__}, expected bytes or str",
            tensor=tensor,
        )
    if len(raw) > _MAX_ELEMENT_BYTES:
        raise ProtocolError(f"BYTES element {index} is over 4 GiB", tensor=tensor)
    return _LENGTH.pack(len(raw)) + raw


def encode_binary(array: np.ndarray[Any, Any], datatype: str, tensor: str) -> bytes:
    """One tensor's bytes for the binary section (row-major, little-endian)."""
    if datatype == "BYTES":
        return b"".join(
            _element_bytes(v, i, tensor) for i, v in enumerate(array.reshape(-1).tolist())
        )
    if datatype != "BOOL" and array.dtype.byteorder not in ("<", "|") and array.dtype.itemsize > 1:
        little = array.dtype.newbyteorder("<")
        if little != array.dtype:
            array = array.astype(little)
    return array.tobytes()
