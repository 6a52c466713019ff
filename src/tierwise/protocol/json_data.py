"""Tensor ``data`` in JSON: Python lists (as orjson parsed them) to numpy arrays and back.

Decoding checks the element types once per tensor with ``set(map(type, ...))`` (a C
loop) and then lets numpy convert the whole list, so the hot path has no per-element
Python code yet still rejects strings, booleans or nulls in numeric tensors, floats in
integer tensors and out-of-range values. Encoding hands numpy arrays straight to orjson
(``OPT_SERIALIZE_NUMPY``), which also writes float32/float16 in their shortest form.
"""

from __future__ import annotations

import array
import math
from itertools import chain
from typing import Any, Final

import numpy as np
import orjson

from tierwise.errors import ProtocolError

__all__ = ["decode_json_data", "encode_json_data"]

_FLOAT_TYPES: Final = frozenset({float, int})
_INT_TYPES: Final = frozenset({int})
_BOOL_TYPES: Final = frozenset({bool})
_STR_TYPES: Final = frozenset({str})
_FLOAT_NAMES: Final = frozenset({"FP16", "FP32", "FP64"})
_SMALL_TENSOR: Final = 64
_JSON_TYPE_NAMES: Final = {
    str: "a string",
    float: "a floating-point number",
    int: "an integer",
    bool: "a boolean",
    type(None): "null",
    dict: "an object",
    list: "a list",
}
_EXPECTED: Final = {
    "BOOL": "true/false",
    "BYTES": "strings",
    "FP16": "numbers",
    "FP32": "numbers",
    "FP64": "numbers",
}


def _expected(datatype: str) -> str:
    return _EXPECTED.get(datatype, "integers")


def _type_error(flat: list[Any], allowed: frozenset[type], datatype: str, tensor: str) -> None:
    """Raise for the first element whose type is not allowed (slow path: errors only)."""
    for index, value in enumerate(flat):
        if type(value) not in allowed:
            got = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
            raise ProtocolError(
                f"{datatype} data must be {_expected(datatype)}; element {index} is {got} "
                f"({value!r:.40})",
                tensor=tensor,
            )


def _flatten(data: list[Any], shape: list[int], tensor: str) -> list[Any]:
    """Flatten row-major nested lists, checking every level's length against ``shape``."""
    if len(data) != shape[0]:
        raise ProtocolError(
            f"nested data has {len(data)} entries along dimension 0, shape {shape} needs "
            f"{shape[0]}",
            tensor=tensor,
        )
    level = data
    for axis in range(1, len(shape)):
        if not set(map(type, level)) <= {list}:
            raise ProtocolError(
                f"nested data does not match shape {shape}: expected lists at depth {axis}",
                tensor=tensor,
            )
        lengths = set(map(len, level))
        if lengths and lengths != {shape[axis]}:
            got = sorted(lengths - {shape[axis]})[0]
            raise ProtocolError(
                f"nested data has a list of {got} entries along dimension {axis}, shape "
                f"{shape} needs {shape[axis]}",
                tensor=tensor,
            )
        level = list(chain.from_iterable(level))
    return level


def decode_json_data(
    data: Any, datatype: str, dtype: np.dtype[Any], shape: list[int], count: int, tensor: str
) -> np.ndarray[Any, Any]:
    """The array for one tensor's JSON ``data`` (nested or flat), validated against its
    declared ``datatype`` and ``shape`` (``count`` elements)."""
    if type(data) is not list:
        if shape or type(data) in (list, dict):
            raise ProtocolError(
                f"data must be a list, got {_JSON_TYPE_NAMES.get(type(data), 'a value')}",
                tensor=tensor,
            )
        data = [data]  # a bare scalar for shape []
    types = set(map(type, data))
    flat = data
    if list in types:
        if len(shape) < 2 or len(types) != 1:
            raise ProtocolError(
                f"data mixes lists and scalars or is nested deeper than shape {shape}",
                tensor=tensor,
            )
        flat = _flatten(data, shape, tensor)
        types = set(map(type, flat))
        if list in types:
            raise ProtocolError(f"data is nested deeper than shape {shape}", tensor=tensor)
    if len(flat) != count:
        raise ProtocolError(
            f"shape {shape} needs {count} elements, data has {len(flat)}", tensor=tensor
        )
    if datatype in _FLOAT_NAMES:
        if not types <= _FLOAT_TYPES:
            _type_error(flat, _FLOAT_TYPES, datatype, tensor)
        try:
            if datatype == "FP64":
                return np.array(flat, dtype=dtype).reshape(shape)
            if datatype == "FP32":
                # array's C conversion is the fastest way in; a value past the FP32 range
                # becomes inf there, which the finite sum catches (then checked closely)
                packed = array.array("f", flat)
                if math.isfinite(sum(packed)):
                    return np.frombuffer(packed, dtype=np.float32).reshape(shape)
            with np.errstate(over="raise"):
                return np.array(flat, dtype=dtype).reshape(shape)
        except (OverflowError, FloatingPointError) as exc:
            raise ProtocolError(f"a value is out of range for {datatype}", tensor=tensor) from exc
    if datatype == "BOOL":
        if not types <= _BOOL_TYPES:
            _type_error(flat, _BOOL_TYPES, datatype, tensor)
        return np.array(flat, dtype=np.bool_).reshape(shape)
    if datatype == "BYTES":
        if not types <= _STR_TYPES:
            _type_error(flat, _STR_TYPES, datatype, tensor)
        out = np.empty(count, dtype=object)
        try:
            out[:] = [s.encode() for s in flat]
        except UnicodeEncodeError as exc:
            raise ProtocolError("a BYTES string is not encodable as UTF-8", tensor=tensor) from exc
        return out.reshape(shape)
    if not types <= _INT_TYPES:
        _type_error(flat, _INT_TYPES, datatype, tensor)
    try:
        return np.array(flat, dtype=dtype).reshape(shape)
    except OverflowError as exc:
        info = np.iinfo(dtype)
        bad = next((v for v in flat if not info.min <= v <= info.max), None)
        raise ProtocolError(
            f"value {bad} is out of range for {datatype} [{info.min}, {info.max}]",
            tensor=tensor,
        ) from exc


def _float_token(value: float) -> bytes:
    if math.isnan(value):
        return b"NaN"
    if math.isinf(value):
        return b"Infinity" if value > 0 else b"-Infinity"
    return orjson.dumps(value)


def _bytes_to_str(value: Any, index: int, tensor: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"BYTES element {index} is not valid UTF-8 and JSON can only carry UTF-8 "
                "strings; send this tensor with the binary-tensor extension",
                tensor=tensor,
            ) from exc
    raise ProtocolError(
        f"BYTES element {index} is {type(value).__name__}, expected bytes or str", tensor=tensor
    )


def encode_json_data(array: np.ndarray[Any, Any], datatype: str, tensor: str) -> Any:
    """The flat, orjson-serializable ``data`` for one tensor (OPT_SERIALIZE_NUMPY needed).

    Non-finite floats are written as ``NaN`` / ``Infinity`` / ``-Infinity`` (what Python's
    ``json`` emits and the decoder accepts) instead of orjson's silent ``null``.
    """
    if datatype == "BYTES":
        return [_bytes_to_str(v, i, tensor) for i, v in enumerate(array.reshape(-1).tolist())]
    flat = array.reshape(-1)
    if not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    elif not flat.flags.c_contiguous:
        flat = np.ascontiguousarray(flat)
    if datatype in _FLOAT_NAMES and not _all_finite(flat):
        return orjson.Fragment(b"[" + b",".join(map(_float_token, flat.tolist())) + b"]")
    return flat


def _all_finite(flat: np.ndarray[Any, Any]) -> bool:
    # For the small tensors of a typical response a Python pass over the values beats
    # two numpy calls (isfinite, then all); large ones go to numpy.
    if flat.size <= _SMALL_TENSOR:
        return all(map(math.isfinite, flat.tolist()))
    return bool(np.isfinite(flat).all())
