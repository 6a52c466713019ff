"""Malformed payloads raise ProtocolError (never a foreign exception) naming the tensor."""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierwise.errors import PayloadTooLargeError, ProtocolError
from tierwise.protocol import CodecLimits, decode_request, decode_response, parse_header_length

OK = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}


def tensor(**changes: Any) -> dict[str, Any]:
    entry = {**OK, **changes}
    return {k: v for k, v in entry.items() if v is not ...}


def body_of(*inputs: Any, **extra: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def binary_body(inputs: list[dict[str, Any]], blob: bytes) -> tuple[bytes, int]:
    header = orjson.dumps({"inputs": inputs})
    return header + blob, len(header)


def bin_tensor(name: str, shape: list[int], datatype: str, size: Any) -> dict[str, Any]:
    return {
        "name": name,
        "shape": shape,
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }


JSON_CASES: list[tuple[str, bytes, str | None, list[str]]] = [
    ("invalid json", b'{"inputs": [', None, ["not valid JSON"]),
    ("not utf8", b'{"id": "\xff"}', None, ["not valid JSON"]),
    ("not an object", b"[1, 2]", None, ["must be an object"]),
    ("missing inputs", b'{"id": "a"}', None, ["missing 'inputs'"]),
    ("inputs not a list", b'{"inputs": {}}', None, ["'inputs' must be a list"]),
    ("input not an object", body_of(3), None, ["input #0 must be an object"]),
    ("missing name", body_of(tensor(name=...)), None, ["input #0 has no 'name'"]),
    ("empty name", body_of(tensor(name="")), None, ["input #0 has no 'name'"]),
    ("missing shape", body_of(tensor(shape=...)), "x", ["missing 'shape'"]),
    ("missing datatype", body_of(tensor(datatype=...)), "x", ["missing 'datatype'"]),
    ("missing data", body_of(tensor(data=...)), "x", ["missing 'data'"]),
    ("null data", body_of(tensor(data=None)), "x", ["missing 'data'"]),
    ("unknown datatype", body_of(tensor(datatype="FP8")), "x", ["unknown datatype 'FP8'", "FP32"]),
    ("datatype not a string", body_of(tensor(datatype=3)), "x", ["unknown datatype 3"]),
    ("negative dim", body_of(tensor(shape=[-1, 4])), "x", ["non-negative integers", "-1"]),
    ("float dim", body_of(tensor(shape=[2.0, 2])), "x", ["non-negative integers", "2.0"]),
    ("string dim", body_of(tensor(shape=["2", 2])), "x", ["non-negative integers"]),
    ("bool dim", body_of(tensor(shape=[True, 4])), "x", ["non-negative integers"]),
    ("shape not a list", body_of(tensor(shape=4)), "x", ["'shape' must be a list"]),
    ("too few elements", body_of(tensor(data=[1, 2, 3])), "x", ["needs 4 elements", "has 3"]),
    ("too many elements", body_of(tensor(data=[1] * 5)), "x", ["needs 4 elements", "has 5"]),
    (
        "nested rows",
        body_of(tensor(data=[[1, 2]])),
        "x",
        ["1 entries along dimension 0", "needs 2"],
    ),
    ("ragged", body_of(tensor(data=[[1, 2], [3]])), "x", ["1 entries along dimension 1"]),
    ("mixed nesting", body_of(tensor(data=[[1, 2], 3, 4])), "x", ["mixes lists and scalars"]),
    (
        "too deep",
        body_of(tensor(data=[[[1], [2]], [[3], [4]]])),
        "x",
        ["nested deeper than shape [2, 2]"],
    ),
    ("data not a list", body_of(tensor(data="1,2,3,4")), "x", ["data must be a list"]),
    (
        "string in FP32",
        body_of(tensor(data=[1, "2", 3, 4])),
        "x",
        ["FP32", "element 1 is a string"],
    ),
    ("bool in FP32", body_of(tensor(data=[1, 2, True, 4])), "x", ["element 2 is a boolean"]),
    ("null in FP32", body_of(tensor(data=[1, None, 3, 4])), "x", ["element 1 is null"]),
    ("object in FP32", body_of(tensor(data=[1, 2, 3, {}])), "x", ["element 3 is an object"]),
    ("FP32 overflow", body_of(tensor(data=[1, 2, 3, 1e39])), "x", ["out of range for FP32"]),
    ("FP16 overflow", body_of(tensor(datatype="FP16", data=[1, 2, 3, 7e4])), "x", ["FP16"]),
    (
        "float in INT32",
        body_of(tensor(datatype="INT32", data=[1, 2.5, 3, 4])),
        "x",
        ["INT32 data must be integers", "element 1 is a floating-point number"],
    ),
    (
        "integral float in INT32",
        body_of(tensor(datatype="INT32", data=[1.0, 2, 3, 4])),
        "x",
        ["element 0 is a floating-point number"],
    ),
    (
        "UINT8 too big",
        body_of(tensor(datatype="UINT8", data=[1, 300, 3, 4])),
        "x",
        ["value 300 is out of range for UINT8 [0, 255]"],
    ),
    ("UINT8 negative", body_of(tensor(datatype="UINT8", data=[1, -1, 3, 4])), "x", ["value -1"]),
    ("INT8 too small", body_of(tensor(datatype="INT8", data=[1, -129, 3, 4])), "x", ["-129"]),
    ("INT64 too big", body_of(tensor(datatype="INT64", data=[2**63, 1, 1, 1])), "x", ["INT64"]),
    (
        "UINT64 past 2**64",
        body_of(tensor(datatype="UINT64", data=[1, 1, 1, 2**64])),
        "x",
        ["element 3 is a floating-point number"],
    ),
    (
        "int in BOOL",
        body_of(tensor(datatype="BOOL", data=[True, 1, False, True])),
        "x",
        ["BOOL data must be true/false", "element 1 is an integer"],
    ),
    (
        "number in BYTES",
        body_of(tensor(datatype="BYTES", data=["a", 1, "b", "c"])),
        "x",
        ["BYTES data must be strings", "element 1"],
    ),
    ("duplicate input", body_of(OK, OK), "x", ["duplicate input name"]),
    ("parameters not an object", body_of(tensor(parameters=[1])), "x", ["'parameters' must be"]),
    ("id not a string", body_of(OK, id=12), None, ["'id' must be a string"]),
    ("request parameters", body_of(OK, parameters="x"), None, ["'parameters' must be an object"]),
    ("outputs not a list", body_of(OK, outputs={"name": "y"}), None, ["'outputs' must be a list"]),
    ("output without name", body_of(OK, outputs=[{}]), None, ["requested output #0 has no 'name'"]),
    ("output not an object", body_of(OK, outputs=["y"]), None, ["requested output #0 must be"]),
    ("duplicate output", body_of(OK, outputs=[{"name": "y"}, {"name": "y"}]), "y", ["duplicate"]),
    (
        "binary_data not bool",
        body_of(OK, outputs=[{"name": "y", "parameters": {"binary_data": 1}}]),
        "y",
        ["binary_data must be true or false"],
    ),
    (
        "binary_data_size without header",
        body_of(bin_tensor("x", [1], "FP32", 4)),
        "x",
        ["no binary section", "Inference-Header-Content-Length"],
    ),
    (
        "binary appended without header",
        body_of(bin_tensor("x", [1], "FP32", 4)) + b"\0\0\0\0",
        None,
        ["not valid JSON", "Inference-Header-Content-Length"],
    ),
]


@pytest.mark.parametrize(
    ("body", "tensor_name", "fragments"),
    [pytest.param(b, t, f, id=i) for i, b, t, f in JSON_CASES],
)
def test_malformed_json_request(body: bytes, tensor_name: str | None, fragments: list[str]) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_request(body)
    assert info.value.status_code == 400
    assert info.value.tensor == tensor_name
    message = str(info.value)
    if tensor_name is not None:
        assert message.startswith(f"tensor {tensor_name!r}: ")
    for fragment in fragments:
        assert fragment in message


FP32_4 = struct.pack("<4f", 1, 2, 3, 4)
BINARY_CASES: list[tuple[str, bytes, int, str | None, list[str]]] = [
    ("header past body", b'{"inputs": []}', 99, None, ["is 99", "only 14 bytes"]),
    ("negative header", b'{"inputs": []}', -1, None, ["non-negative integer, got -1"]),
    (
        "size does not match shape",
        *binary_body([bin_tensor("x", [2, 2], "FP32", 12)], FP32_4[:12]),
        "x",
        ["binary_data_size is 12 bytes", "needs 16 (4 elements x 4 bytes)"],
    ),
    (
        "missing bytes",
        *binary_body([bin_tensor("x", [2, 2], "FP32", 16)], FP32_4[:10]),
        "x",
        ["only 10 bytes of the binary section remain"],
    ),
    (
        "leftover bytes",
        *binary_body([bin_tensor("x", [2, 2], "FP32", 16)], FP32_4 + b"\0"),
        None,
        ["binary section has 17 bytes", "add up to 16"],
    ),
    (
        "negative size",
        *binary_body([bin_tensor("x", [1], "FP32", -4)], b""),
        "x",
        ["binary_data_size must be a non-negative integer"],
    ),
    (
        "string size",
        *binary_body([bin_tensor("x", [1], "FP32", "4")], b"\0" * 4),
        "x",
        ["binary_data_size must be"],
    ),
    (
        "data and size",
        *binary_body([{**bin_tensor("x", [1], "INT8", 1), "data": [1]}], b"\1"),
        "x",
        ["both 'data' and binary_data_size"],
    ),
    (
        "BOOL byte not 0/1",
        *binary_body([bin_tensor("x", [2], "BOOL", 2)], b"\x01\x02"),
        "x",
        ["BOOL data must be bytes 0 or 1"],
    ),
    (
        "BYTES truncated prefix",
        *binary_body([bin_tensor("s", [1], "BYTES", 2)], b"\x01\x00"),
        "s",
        ["truncated 4-byte length prefix"],
    ),
    (
        "BYTES element too long",
        *binary_body([bin_tensor("s", [1], "BYTES", 5)], b"\x09\0\0\0a"),
        "s",
        ["element 0 claims 9 bytes but only 1 remain"],
    ),
    (
        "BYTES too few",
        *binary_body([bin_tensor("s", [2], "BYTES", 5)], b"\x01\0\0\0a"),
        "s",
        ["needs 2 elements", "holds 1"],
    ),
    (
        "BYTES too many",
        *binary_body([bin_tensor("s", [1], "BYTES", 10)], b"\x01\0\0\0a" * 2),
        "s",
        ["more than the 1 elements"],
    ),
    ("header not JSON", b"\x00\x01abc", 2, None, ["JSON header is not valid JSON"]),
]


@pytest.mark.parametrize(
    ("body", "header_length", "tensor_name", "fragments"),
    [pytest.param(b, h, t, f, id=i) for i, b, h, t, f in BINARY_CASES],
)
def test_malformed_binary_request(
    body: bytes, header_length: int, tensor_name: str | None, fragments: list[str]
) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_request(body, header_length=header_length)
    assert info.value.tensor == tensor_name
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("limits", "body", "fragment"),
    [
        (
            CodecLimits(max_tensors=1),
            body_of(OK, {**OK, "name": "y"}),
            "2 inputs, over the limit of 1",
        ),
        (
            CodecLimits(max_tensors=1),
            body_of(OK, outputs=[{"name": "a"}, {"name": "b"}]),
            "2 requested outputs, over the limit of 1",
        ),
        (CodecLimits(max_tensor_elements=3), body_of(OK), "4 elements, over the limit of 3"),
        (CodecLimits(max_dims=1), body_of(OK), "2 dimensions, over the limit of 1"),
    ],
)
def test_limits_are_enforced(limits: CodecLimits, body: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        decode_request(body, limits=limits)


def test_body_over_the_limit_is_413() -> None:
    body = body_of(OK)
    with pytest.raises(PayloadTooLargeError) as info:
        decode_request(body, limits=CodecLimits(max_body_bytes=len(body) - 1))
    assert info.value.status_code == 413
    assert (info.value.size_bytes, info.value.limit_bytes) == (len(body), len(body) - 1)
    decode_request(body, limits=CodecLimits(max_body_bytes=len(body)))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"outputs": []}', "missing 'model_name'"),
        (b'{"model_name": "m"}', "missing 'outputs'"),
        (b'{"model_name": "m", "model_version": 1, "outputs": []}', "'model_version' must be"),
        (
            b'{"model_name": "m", "outputs": [{"name": "y", "shape": [1], "datatype": "INT8", '
            b'"data": [999]}]}',
            "tensor 'y': value 999 is out of range for INT8",
        ),
        (b'{"model_name": "m", "outputs": [{"name": "y"}, {"name": "y"}]}', "missing 'datatype'"),
    ],
)
def test_malformed_response(body: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        decode_response(body)


@pytest.mark.parametrize("value", ["-1", "12a", "", " ", "1.5", "١٢", b"\xff"])
def test_header_length_value_must_be_a_non_negative_integer(value: str | bytes) -> None:
    with pytest.raises(ProtocolError, match="Inference-Header-Content-Length"):
        parse_header_length(value)


def test_header_length_value_parses() -> None:
    assert parse_header_length(None) is None
    assert parse_header_length(" 42 ") == 42
    assert parse_header_length(b"7") == 7


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["name", "shape", "datatype", "data", "parameters", "binary_data_size"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["x", "y", ""]) | JSON_VALUES,
        "shape": st.lists(st.integers(-2, 3), max_size=3) | JSON_VALUES,
        "datatype": st.sampled_from(["FP32", "INT8", "BOOL", "BYTES", "UINT64"]) | JSON_VALUES,
        "data": st.lists(st.integers(-300, 300) | st.floats() | st.booleans(), max_size=9)
        | JSON_VALUES,
        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-1, 12)})
        | JSON_VALUES,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.fixed_dictionaries(
        {"inputs": st.lists(ENTRY, max_size=3) | JSON_VALUES},
        optional={"outputs": JSON_VALUES, "id": JSON_VALUES, "parameters": JSON_VALUES},
    ),
    blob=st.binary(max_size=24),
    binary=st.booleans(),
)
def test_fuzzed_requests_raise_only_protocol_errors(
    doc: dict[str, Any], blob: bytes, binary: bool
) -> None:
    header = json.dumps(doc).encode()  # Python's json: big ints and NaN too
    body = header + blob if binary else header
    with contextlib.suppress(ProtocolError):
        decode_request(body, header_length=len(header) if binary else None)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64), header_length=st.none() | st.integers(-2, 70))
def test_random_bytes_raise_only_protocol_errors(body: bytes, header_length: int | None) -> None:
    for decode in (decode_request, decode_response):
        with contextlib.suppress(ProtocolError):
            decode(body, header_length=header_length)
