"""Binary-tensor bodies built byte by byte, the way tritonclient sends them."""

from __future__ import annotations

import struct

import numpy as np
import orjson
from protocol_helpers import assert_same_array

from tierwise.protocol import (
    HEADER_LENGTH_HEADER,
    InferRequest,
    InferResponse,
    binary_outputs_requested,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    parse_header_length,
)


def _triton_request() -> tuple[bytes, int]:
    header = (
        b'{"id":"42","inputs":['
        b'{"name":"INPUT0","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}},'
        b'{"name":"INPUT1","shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":21}},'
        b'{"name":"INPUT2","shape":[2],"datatype":"INT16","data":[-7,9]},'
        b'{"name":"INPUT3","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}],'
        b'"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}},{"name":"OUTPUT1"}]}'
    )
    blob = (
        struct.pack("<4f", 1.0, -2.5, 3.25, 1e-3)
        + struct.pack("<I", 5)
        + b"hello"
        + struct.pack("<I", 0)
        + struct.pack("<I", 4)
        + b"\xff\x00\xfe\x01"
        + b"\x01\x00\x01"
    )
    return header + blob, len(header)


def test_hand_built_binary_request_decodes() -> None:
    body, header_length = _triton_request()
    request = decode_request(body, header_length=parse_header_length(str(header_length)))
    assert request.id == "42"
    assert list(request.inputs) == ["INPUT0", "INPUT1", "INPUT2", "INPUT3"]
    assert_same_array(
        request.inputs["INPUT0"], np.array([[1.0, -2.5, 3.25, 1e-3]], dtype=np.float32)
    )
    assert request.inputs["INPUT1"].dtype == object
    assert request.inputs["INPUT1"].tolist() == [b"hello", b"", b"\xff\x00\xfe\x01"]
    assert_same_array(request.inputs["INPUT2"], np.array([-7, 9], dtype=np.int16))
    assert_same_array(request.inputs["INPUT3"], np.array([True, False, True]))
    assert request.input_parameters == {}
    assert binary_outputs_requested(request) == frozenset({"OUTPUT0"})


def test_numeric_binary_tensors_are_zero_copy_views_of_the_body() -> None:
    body, header_length = _triton_request()
    buffer = bytearray(body)
    array = decode_request(buffer, header_length=header_length).inputs["INPUT0"]
    assert not array.flags.owndata
    buffer[header_length : header_length + 4] = struct.pack("<f", 7.0)
    assert array[0, 0] == 7.0
    frozen = decode_request(body, header_length=header_length).inputs["INPUT0"]
    assert not frozen.flags.writeable


def test_hand_built_binary_response_decodes() -> None:
    header = orjson.dumps(
        {
            "model_name": "simple",
            "model_version": "1",
            "outputs": [
                {
                    "name": "OUTPUT0",
                    "datatype": "INT32",
                    "shape": [2, 2],
                    "parameters": {"binary_data_size": 16},
                },
                {"name": "OUTPUT1", "datatype": "FP16", "shape": [1], "data": [0.5]},
                {
                    "name": "OUTPUT2",
                    "datatype": "UINT64",
                    "shape": [0, 4],
                    "parameters": {"binary_data_size": 0},
                },
            ],
        }
    )
    body = header + struct.pack("<4i", 1, -2, 3, 2**31 - 1)
    response = decode_response(body, header_length=len(header))
    assert (response.model_name, response.model_version) == ("simple", "1")
    assert_same_array(response.outputs["OUTPUT0"], np.array([[1, -2], [3, 2**31 - 1]], np.int32))
    assert_same_array(response.outputs["OUTPUT1"], np.array([0.5], np.float16))
    assert_same_array(response.outputs["OUTPUT2"], np.zeros((0, 4), np.uint64))


def test_encoded_binary_request_matches_triton_layout() -> None:
    request = InferRequest(
        inputs={
            "a": np.array([[1, 2]], dtype=np.int32),
            "s": np.array([b"xy", b""], dtype=object),
            "j": np.array([1.5], dtype=np.float64),
        },
        input_parameters={"a": {"binary_data_size": 999, "shm": False}},
    )
    body, header_length = encode_request(request, binary={"a", "s"})
    assert header_length is not None
    header = orjson.loads(body[:header_length])
    assert header["inputs"][0]["parameters"] == {"shm": False, "binary_data_size": 8}
    assert header["inputs"][1]["parameters"] == {"binary_data_size": 10}
    assert header["inputs"][2]["data"] == [1.5]
    assert "data" not in header["inputs"][0]
    assert body[header_length:] == (
        struct.pack("<2i", 1, 2) + struct.pack("<I", 2) + b"xy" + struct.pack("<I", 0)
    )


def test_binary_response_body_and_header_length_agree() -> None:
    response = InferResponse(model_name="m", outputs={"y": np.arange(10, dtype=np.float32)})
    body, header_length = encode_response(response, binary_outputs=True)
    assert HEADER_LENGTH_HEADER == "Inference-Header-Content-Length"
    assert header_length is not None
    assert len(body) == header_length + 40
    assert body[header_length:] == np.arange(10, dtype="<f4").tobytes()


def test_binary_selection_of_absent_names_stays_pure_json() -> None:
    response = InferResponse(model_name="m", outputs={"y": np.ones(1, np.float32)})
    body, header_length = encode_response(response, binary_outputs={"other"})
    assert header_length is None
    assert orjson.loads(body)["outputs"][0]["data"] == [1.0]
