"""Reading and writing the JSON document of a V2 message, field by field.

Shared by the request and response codecs: splitting the body at the header length,
parsing JSON (orjson; Python's ``json`` only as a fallback for the ``NaN``/``Infinity``
literals it emits), and turning ``inputs``/``outputs`` entries into arrays and back.
Every problem becomes a :class:`~tierwise.errors.ProtocolError` naming the tensor.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Final

import numpy as np
import orjson

from tierwise.errors import ConfigError, PayloadTooLargeError, ProtocolError
from tierwise.protocol.binary import decode_binary, encode_binary
from tierwise.protocol.datatypes import DATATYPES, NUMERIC_DATATYPES, datatype_of
from tierwise.protocol.json_data import decode_json_data, encode_json_data
from tierwise.protocol.limits import CodecLimits

__all__ = [
    "BinarySelector",
    "decode_tensors",
    "dumps",
    "dumps_numeric_json",
    "encode_tensors",
    "get_parameters",
    "get_optional_str",
    "load_document",
    "selector",
]

_NON_FINITE: Final = (b"NaN", b"Infinity")
_DUMPS_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY

#: (all tensors, or these names) in binary.
BinarySelector = tuple[bool, Collection[str]]


def _loads(raw: bytes | bytearray | memoryview, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        text = bytes(raw)
        if any(token in text for token in _NON_FINITE):
            try:
                return json.loads(text)
            except (ValueError, RecursionError):
                pass
        hint = ""
        if what == "body" and b"binary_data_size" in text:
            hint = " (binary tensors need the Inference-Header-Content-Length header)"
        raise ProtocolError(f"{what} is not valid JSON: {exc}{hint}") from exc


def load_document(
    body: bytes | bytearray | memoryview, header_length: int | None, limits: CodecLimits
) -> tuple[dict[str, Any], memoryview | None]:
    """The JSON object of a message and its binary section (None when pure JSON)."""
    size = len(body)
    if size > limits.max_body_bytes:
        raise PayloadTooLargeError(size, limits.max_body_bytes)
    if header_length is None:
        doc = _loads(body, "body")
        section = None
    else:
        if type(header_length) is not int or header_length < 0:
            raise ProtocolError(
                f"Inference-Header-Content-Length must be a non-negative integer, "
                f"got {header_length!r}"
            )
        if header_length > size:
            raise ProtocolError(
                f"Inference-Header-Content-Length is {header_length} but the body has only "
                f"{size} bytes"
            )
        view = memoryview(body)
        doc = _loads(view[:header_length], "JSON header")
        section = view[header_length:]
    if type(doc) is not dict:
        raise ProtocolError("the JSON document must be an object")
    return doc, section


def get_parameters(entry: Mapping[str, Any], tensor: str | None = None) -> dict[str, Any]:
    """The ``parameters`` object of a message or tensor entry ({} when absent)."""
    params = entry.get("parameters")
    if params is None:
        return {}
    if type(params) is not dict:
        raise ProtocolError("'parameters' must be an object", tensor=tensor)
    return params


def get_optional_str(doc: Mapping[str, Any], key: str) -> str | None:
    """A string field that may be absent or null."""
    value = doc.get(key)
    if value is not None and type(value) is not str:
        raise ProtocolError(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def _shape(raw: Any, tensor: str, limits: CodecLimits) -> tuple[list[int], int]:
    if type(raw) is not list:
        raise ProtocolError(
            "missing 'shape'" if raw is None else "'shape' must be a list of integers",
            tensor=tensor,
        )
    if len(raw) > limits.max_dims:
        raise ProtocolError(
            f"shape has {len(raw)} dimensions, over the limit of {limits.max_dims}",
            tensor=tensor,
        )
    count = 1
    for dim in raw:
        if type(dim) is not int or dim < 0:
            raise ProtocolError(
                f"shape {raw} must hold non-negative integers, got {dim!r}", tensor=tensor
            )
        count *= dim
    if count > limits.max_tensor_elements:
        raise ProtocolError(
            f"shape {raw} has {count} elements, over the limit of {limits.max_tensor_elements}",
            tensor=tensor,
        )
    return raw, count


def decode_tensors(
    entries: Any, kind: str, section: memoryview | None, limits: CodecLimits
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, dict[str, Any]]]:
    """Arrays (in wire order) and non-codec parameters of an ``inputs``/``outputs`` list."""
    if type(entries) is not list:
        raise ProtocolError(
            f"missing '{kind}s'" if entries is None else f"'{kind}s' must be a list"
        )
    if len(entries) > limits.max_tensors:
        raise ProtocolError(f"{len(entries)} {kind}s, over the limit of {limits.max_tensors}")
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    parameters: dict[str, dict[str, Any]] = {}
    offset = 0
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            raise ProtocolError(f"{kind} #{index} must be an object")
        name = entry.get("name")
        if type(name) is not str or not name:
            raise ProtocolError(f"{kind} #{index} has no 'name' (a non-empty string)")
        if name in arrays:
            raise ProtocolError(f"duplicate {kind} name", tensor=name)
        datatype = entry.get("datatype")
        if datatype is None:
            raise ProtocolError("missing 'datatype'", tensor=name)
        dtype = DATATYPES.get(datatype) if type(datatype) is str else None
        if dtype is None:
            raise ProtocolError(
                f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}",
                tensor=name,
            )
        shape, count = _shape(entry.get("shape"), name, limits)
        params = entry.get("parameters")
        size = None
        if params is not None:
            if type(params) is not dict:
                raise ProtocolError("'parameters' must be an object", tensor=name)
            if "binary_data_size" in params:
                params = dict(params)
                size = params.pop("binary_data_size")
            if params:
                parameters[name] = params
        if size is None:
            data = entry.get("data")
            if data is None:
                raise ProtocolError("missing 'data' (and no binary_data_size)", tensor=name)
            arrays[name] = decode_json_data(data, datatype, dtype, shape, count, name)
            continue
        if type(size) is not int or size < 0:
            raise ProtocolError(
                f"binary_data_size must be a non-negative integer, got {size!r}", tensor=name
            )
        if entry.get("data") is not None:
            raise ProtocolError("has both 'data' and binary_data_size", tensor=name)
        if section is None:
            raise ProtocolError(
                "has binary_data_size but the message has no binary section "
                "(Inference-Header-Content-Length missing)",
                tensor=name,
            )
        arrays[name] = decode_binary(section, offset, size, datatype, dtype, shape, count, name)
        offset += size
    if section is not None and offset != len(section):
        raise ProtocolError(
            f"the binary section has {len(section)} bytes but the tensors' binary_data_size "
            f"add up to {offset}"
        )
    return arrays, parameters


def selector(binary: bool | Collection[str], parameter: str) -> BinarySelector:
    """Normalize a ``binary`` argument: True/False, or a collection of tensor names."""
    if type(binary) is bool:
        return binary, ()
    if isinstance(binary, str | bytes) or not isinstance(binary, Collection):
        raise ConfigError(parameter, "a bool or a collection of tensor names", binary)
    return False, binary


def encode_tensors(
    arrays: Mapping[str, Any],
    parameters: Mapping[str, Mapping[str, Any]],
    binary: BinarySelector,
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The ``inputs``/``outputs`` entries and the binary chunks, in order."""
    all_binary, names = binary
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, value in arrays.items():
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        datatype = datatype_of(array, tensor=name)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        params = parameters.get(name)
        if params:
            params = {k: v for k, v in params.items() if k != "binary_data_size"}
        if all_binary or name in names:
            raw = encode_binary(array, datatype, name)
            entry["parameters"] = {**(params or {}), "binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            if params:
                entry["parameters"] = params
            entry["data"] = encode_json_data(array, datatype, name)
        entries.append(entry)
    return entries, chunks


def dumps(doc: dict[str, Any], chunks: list[bytes], with_header: bool) -> tuple[bytes, int | None]:
    """The body and its header length (None when no tensor went binary)."""
    try:
        header = orjson.dumps(doc, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise ProtocolError(f"cannot encode the message as JSON: {exc}") from exc
    if not with_header:
        return header, None
    return b"".join((header, *chunks)), len(header)


def dumps_numeric_json(doc: dict[str, Any], key: str, arrays: Mapping[str, Any]) -> bytes | None:
    """The fast way to a pure-JSON message whose tensors are all native, contiguous
    numeric arrays: orjson writes the arrays itself and ``doc[key]`` gets their entries.

    None when the careful path (:func:`encode_tensors`) is needed: a tensor that is not
    such an array, or a non-finite float. orjson writes NaN and infinities as ``null``, so
    a body without ``null`` proves every float finite; one with it (a non-finite float,
    or ``null`` in a name) goes the careful way, which writes ``NaN``/``Infinity``.
    """
    entries = []
    for name, array in arrays.items():
        if type(array) is not np.ndarray:
            return None
        datatype = NUMERIC_DATATYPES.get(array.dtype)
        if datatype is None:
            return None
        entries.append(
            {"name": name, "datatype": datatype, "shape": array.shape, "data": array.reshape(-1)}
        )
    doc[key] = entries
    try:
        body = orjson.dumps(doc, option=_DUMPS_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: e.g. an array that is not C-contiguous
        return None
    return None if b"null" in body else body
