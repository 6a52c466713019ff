"""JSON bodies: nested vs flat data, requested outputs, ids, parameters, special values."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from protocol_helpers import assert_same_array

from tierwise.errors import ConfigError, ProtocolError
from tierwise.protocol import (
    InferRequest,
    InferResponse,
    RequestedOutput,
    binary_outputs_requested,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)


def _request(*inputs: dict[str, object], **extra: object) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


@pytest.mark.parametrize(
    ("datatype", "shape", "nested"),
    [
        ("FP32", [2, 3], [[1.5, 2, 3], [4, 5, 6.25]]),
        ("INT64", [2, 2, 2], [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
        ("BOOL", [1, 2], [[True, False]]),
        ("BYTES", [2, 1], [["ab"], ["c"]]),
        ("UINT8", [0, 3], []),
        ("FP16", [2, 0], [[], []]),
    ],
)
def test_nested_and_flat_data_decode_equal(
    datatype: str, shape: list[int], nested: list[object]
) -> None:
    flat = np.array(nested, dtype=object).reshape(-1).tolist() if nested else []
    a = decode_request(
        _request({"name": "x", "shape": shape, "datatype": datatype, "data": nested})
    )
    b = decode_request(_request({"name": "x", "shape": shape, "datatype": datatype, "data": flat}))
    assert a.inputs["x"].shape == tuple(shape)
    assert_same_array(a.inputs["x"], b.inputs["x"])


def test_values_and_dtypes_decode_exactly() -> None:
    body = _request(
        {"name": "f", "shape": [3], "datatype": "FP16", "data": [0.5, 65504, -2]},
        {"name": "u", "shape": [1], "datatype": "UINT64", "data": [18446744073709551615]},
        {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["héllo", ""]},
        {"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]},
    )
    inputs = decode_request(body).inputs
    assert_same_array(inputs["f"], np.array([0.5, 65504, -2], dtype=np.float16))
    assert_same_array(inputs["u"], np.array([2**64 - 1], dtype=np.uint64))
    assert inputs["s"].tolist() == ["héllo".encode(), b""]
    assert_same_array(inputs["b"], np.array([True, False]))


def test_scalar_shape_accepts_bare_value_and_one_element_list() -> None:
    for data in (7, [7]):
        body = _request({"name": "x", "shape": [], "datatype": "INT32", "data": data})
        assert_same_array(decode_request(body).inputs["x"], np.array(7, dtype=np.int32))


def test_encode_writes_flat_data_and_no_header_length() -> None:
    request = InferRequest(inputs={"x": np.arange(6, dtype=np.int32).reshape(2, 3)})
    body, header_length = encode_request(request)
    assert header_length is None
    doc = json.loads(body)
    assert doc == {
        "inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 3], "data": [0, 1, 2, 3, 4, 5]}]
    }


def test_float32_written_in_shortest_form() -> None:
    body, _ = encode_request(InferRequest(inputs={"x": np.array([0.1], dtype=np.float32)}))
    assert b'"data":[0.1]' in body


def test_id_parameters_and_requested_outputs_are_parsed() -> None:
    body = _request(
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]},
        id="abc-1",
        parameters={"binary_data_output": False, "priority": 2},
        outputs=[
            {"name": "probs", "parameters": {"binary_data": True, "classification": 3}},
            {"name": "label", "binary_data": True},
            {"name": "logits"},
        ],
    )
    request = decode_request(body)
    assert request.id == "abc-1"
    assert request.parameters == {"binary_data_output": False, "priority": 2}
    assert request.outputs == [
        RequestedOutput("probs", True, {"classification": 3}),
        RequestedOutput("label", True, {}),
        RequestedOutput("logits", False, {}),
    ]
    assert request.requested_output_names() == ["probs", "label", "logits"]
    assert binary_outputs_requested(request) == frozenset({"probs", "label"})


def test_binary_data_output_parameter_asks_for_all_outputs_in_binary() -> None:
    body = _request(
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]},
        parameters={"binary_data_output": True},
    )
    request = decode_request(body)
    assert request.outputs is None
    assert request.requested_output_names() is None
    assert InferRequest(inputs={}, outputs=[]).requested_output_names() is None
    assert binary_outputs_requested(request) is True


def test_no_binary_request_means_pure_json_response() -> None:
    request = decode_request(_request({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}))
    asked = binary_outputs_requested(request)
    assert asked == frozenset()
    body, header_length = encode_response(
        InferResponse(model_name="m", outputs={"y": np.ones(2, np.float32)}), binary_outputs=asked
    )
    assert header_length is None
    assert json.loads(body)["outputs"][0]["data"] == [1.0, 1.0]


def test_response_with_only_named_outputs_in_binary() -> None:
    response = InferResponse(
        model_name="m",
        outputs={"a": np.ones(2, np.float32), "b": np.zeros(1, np.int8)},
        id="r",
    )
    body, header_length = encode_response(response, binary_outputs={"b"})
    assert header_length is not None
    header = json.loads(body[:header_length])
    assert header["outputs"][0]["data"] == [1.0, 1.0]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 1}
    assert body[header_length:] == b"\x00"
    assert header["id"] == "r"


def test_non_finite_floats_use_python_json_literals_and_decode() -> None:
    array = np.array([np.nan, np.inf, -np.inf, 1.5], dtype=np.float32)
    body, _ = encode_request(InferRequest(inputs={"x": array}))
    assert b"[NaN,Infinity,-Infinity,1.5]" in body
    assert json.loads(body)["inputs"][0]["data"][3] == 1.5
    assert_same_array(decode_request(body).inputs["x"], array)


def test_python_json_client_payload_with_nan_decodes() -> None:
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [float("nan"), 1]}]}
    ).encode()
    assert np.isnan(decode_request(body).inputs["x"][0])


def test_bytes_that_are_not_utf8_cannot_go_in_json() -> None:
    array = np.array([b"ok", b"\xff\xfe"], dtype=object)
    with pytest.raises(ProtocolError, match=r"tensor 'blob'.*element 1 is not valid UTF-8.*binary"):
        encode_request(InferRequest(inputs={"blob": array}))
    body, header_length = encode_request(InferRequest(inputs={"blob": array}), binary=True)
    assert decode_request(body, header_length=header_length).inputs["blob"].tolist() == [
        b"ok",
        b"\xff\xfe",
    ]


def test_str_arrays_encode_as_bytes() -> None:
    body, _ = encode_request(InferRequest(inputs={"t": np.array(["a", "bé"])}))
    assert decode_request(body).inputs["t"].tolist() == [b"a", "bé".encode()]


@pytest.mark.parametrize("binary", ["x", b"x", 3])
def test_binary_argument_must_be_bool_or_names(binary: object) -> None:
    with pytest.raises(ConfigError, match="binary"):
        encode_request(InferRequest(inputs={"x": np.ones(1)}), binary=binary)  # type: ignore[arg-type]


def test_unsupported_numpy_dtype_is_rejected_naming_the_tensor() -> None:
    with pytest.raises(ProtocolError, match=r"tensor 'c'.*complex128"):
        encode_response(InferResponse(model_name="m", outputs={"c": np.ones(2, complex)}))


def test_response_decodes_without_optional_fields() -> None:
    body = b'{"model_name":"m","outputs":[{"name":"y","shape":[1],"datatype":"INT8","data":[-3]}]}'
    response = decode_response(body)
    assert (response.model_version, response.id, response.parameters) == (None, None, {})
    assert_same_array(response.outputs["y"], np.array([-3], dtype=np.int8))


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        np.array([0.1, 2.5], dtype=np.float16),
        np.array([[True, False]]),
        np.array([2**63 - 1, 0], dtype=np.uint64),
        np.array(3.25),  # shape []
        np.arange(12, dtype=np.float32).reshape(3, 4)[:, 1],  # not contiguous
        np.array([1.5, -2.0], dtype=">f4"),  # big-endian
        np.array([np.nan, 1.0], dtype=np.float64),
        np.array([b"a", b"b"], dtype=object),
    ],
)
def test_every_array_kind_encodes_as_the_careful_path_does(array: np.ndarray) -> None:
    """Pure-JSON messages of plain numeric arrays take a fast path; its bodies must be
    the ones the field-by-field encoder writes, and others must still take that path."""
    response = InferResponse(model_name="m", model_version="1", outputs={"y": array})
    fast, _ = encode_response(response)
    # a binary selection that names no output: every tensor in JSON, field by field
    careful, _ = encode_response(response, binary_outputs={"another-output"})
    assert fast == careful
    assert json.loads(fast)["outputs"][0]["shape"] == list(array.shape)
    native = array.astype(array.dtype.newbyteorder("="))
    assert_same_array(decode_response(fast).outputs["y"], native)


def test_a_null_elsewhere_in_the_message_still_writes_non_finite_floats_as_literals() -> None:
    array = np.array([np.inf, 1.0], dtype=np.float32)
    body, _ = encode_response(InferResponse(model_name="null", outputs={"y": array}))
    assert b"[Infinity,1.0]" in body
    body, _ = encode_response(InferResponse(model_name="null", outputs={"y": np.ones(1)}))
    assert json.loads(body)["model_name"] == "null"
