"""Property tests: every datatype survives both encodings, in requests and responses."""

from __future__ import annotations

from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_helpers import assert_same_array

from tierwise.protocol import (
    DATATYPES,
    InferRequest,
    InferResponse,
    RequestedOutput,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bytes_array(elements: st.SearchStrategy[bytes]) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    def build(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray[Any, Any]]:
        count = int(np.prod(shape, dtype=np.int64))
        return st.lists(elements, min_size=count, max_size=count).map(
            lambda items: _object_array(items, shape)
        )

    return SHAPES.flatmap(build)


def _object_array(items: list[bytes], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out.reshape(shape)


def arrays_for(datatype: str, *, utf8_only: bool) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    if datatype == "BYTES":
        elements = st.text().map(str.encode) if utf8_only else st.binary(max_size=12)
        return _bytes_array(elements)
    return hnp.arrays(DATATYPES[datatype], SHAPES)


CASES = [(dt, binary) for dt in DATATYPES for binary in (False, True)]


@pytest.mark.parametrize(("datatype", "binary"), CASES)
@SETTINGS
@given(data=st.data())
def test_request_round_trip(datatype: str, binary: bool, data: st.DataObject) -> None:
    array = data.draw(arrays_for(datatype, utf8_only=not binary))
    other = data.draw(arrays_for("FP32", utf8_only=True))
    request = InferRequest(
        inputs={"a": array, "b": other},
        id="req-7",
        parameters={"priority": 3, "tag": "x"},
        outputs=[RequestedOutput("out", binary_data=True, parameters={"classification": 2})],
        input_parameters={"a": {"content_type": "np"}},
    )
    body, header_length = encode_request(request, binary=["a"] if binary else False)
    assert (header_length is not None) == binary
    decoded = decode_request(body, header_length=header_length)
    assert list(decoded.inputs) == ["a", "b"]
    assert_same_array(decoded.inputs["a"], array)
    assert_same_array(decoded.inputs["b"], other)
    assert decoded.id == "req-7"
    assert decoded.parameters == {"priority": 3, "tag": "x"}
    assert decoded.input_parameters == {"a": {"content_type": "np"}}
    assert decoded.outputs == [RequestedOutput("out", True, {"classification": 2})]


@pytest.mark.parametrize(("datatype", "binary"), CASES)
@SETTINGS
@given(data=st.data())
def test_response_round_trip(datatype: str, binary: bool, data: st.DataObject) -> None:
    array = data.draw(arrays_for(datatype, utf8_only=not binary))
    response = InferResponse(
        model_name="mlp",
        model_version="3",
        id="req-7",
        parameters={"tier": "edge"},
        outputs={"y": array, "z": np.arange(3, dtype=np.int64)},
        output_parameters={"y": {"unit": "logit"}},
    )
    body, header_length = encode_response(response, binary_outputs=binary)
    assert (header_length is not None) == binary
    decoded = decode_response(body, header_length=header_length)
    assert (decoded.model_name, decoded.model_version, decoded.id) == ("mlp", "3", "req-7")
    assert decoded.parameters == {"tier": "edge"}
    assert decoded.output_parameters == {"y": {"unit": "logit"}}
    assert list(decoded.outputs) == ["y", "z"]
    assert_same_array(decoded.outputs["y"], array)
    assert_same_array(decoded.outputs["z"], np.arange(3, dtype=np.int64))


@SETTINGS
@given(array=hnp.arrays(hnp.floating_dtypes(endianness=">"), SHAPES))
def test_big_endian_arrays_encode_as_little_endian(array: np.ndarray[Any, Any]) -> None:
    native = array.astype(array.dtype.newbyteorder("="))
    for binary in (False, True):
        body, header_length = encode_request(InferRequest(inputs={"x": array}), binary=binary)
        assert_same_array(decode_request(body, header_length=header_length).inputs["x"], native)


@SETTINGS
@given(array=hnp.arrays(np.float32, (4, 6)))
def test_non_contiguous_arrays_encode_row_major(array: np.ndarray[Any, Any]) -> None:
    view = array.T[::2]
    for binary in (False, True):
        body, header_length = encode_request(InferRequest(inputs={"x": view}), binary=binary)
        assert_same_array(decode_request(body, header_length=header_length).inputs["x"], view)
