"""Metadata documents, codec limits and the package's public names."""

from __future__ import annotations

import re

import orjson
import pydantic
import pytest

import tierwise.protocol as protocol
from tierwise.errors import ConfigError, ProtocolError
from tierwise.protocol import CodecLimits, ModelMetadata, ServerMetadata, TensorMetadata


def test_model_metadata_round_trips_through_json() -> None:
    meta = ModelMetadata(
        name="mlp",
        platform="onnxruntime_onnx",
        versions=["1", "2"],
        inputs=[TensorMetadata("x", "FP32", [-1, 64])],
        outputs=[TensorMetadata("y", "FP32", [-1, 10], {"unit": "logit"})],
    )
    doc = orjson.loads(orjson.dumps(meta.to_dict()))
    assert doc["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}]
    assert ModelMetadata.from_dict(doc) == meta


def test_server_metadata_round_trips() -> None:
    meta = ServerMetadata("tierwise", "0.1.0", ["binary_tensor_data", "model_repository"])
    assert ServerMetadata.from_dict(meta.to_dict()) == meta
    assert meta.to_dict() == {
        "name": "tierwise",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data", "model_repository"],
    }


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([], "model metadata must be a JSON object"),
        ({"platform": "p"}, "missing 'name'"),
        ({"name": "m"}, "missing 'platform'"),
        ({"name": "m", "platform": "p", "versions": [1]}, "'versions' must be a list of strings"),
        ({"name": "m", "platform": "p", "inputs": {}}, "'inputs' must be a list"),
        (
            {"name": "m", "platform": "p", "inputs": [{"name": "x", "datatype": "F", "shape": []}]},
            "tensor 'x': unknown datatype 'F'",
        ),
        (
            {
                "name": "m",
                "platform": "p",
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-2]}],
            },
            "tensor 'x': shape [-2]",
        ),
        (
            {"name": "m", "platform": "p", "outputs": [{"name": "y", "datatype": "FP32"}]},
            "tensor 'y': shape None",
        ),
        (
            {"name": "m", "platform": "p", "outputs": [{"datatype": "FP32", "shape": []}]},
            "missing 'name'",
        ),
        ({"name": "m", "platform": "p", "parameters": 3}, "'parameters' must be an object"),
    ],
)
def test_bad_model_metadata_is_rejected(doc: object, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(fragment)):
        ModelMetadata.from_dict(doc)


def test_bad_server_metadata_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="'extensions' must be a list of strings"):
        ServerMetadata.from_dict({"name": "s", "version": "1", "extensions": "x"})


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_tensors": -1}, "max_tensors"),
        ({"max_tensor_elements": 1.5}, "max_tensor_elements"),
        ({"max_dims": True}, "max_dims"),
        ({"max_dims": 65}, "max_dims"),
    ],
)
def test_codec_limits_are_validated(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        CodecLimits(**kwargs)  # type: ignore[arg-type]
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"{parameter}: expected ")


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(protocol) if not name.startswith("_")}
    modules = {
        "binary",
        "codec",
        "datatypes",
        "json_data",
        "limits",
        "messages",
        "metadata",
        "parameters",
        "wire",
    }
    assert set(protocol.__all__) == public - modules - {"annotations"}
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None


def test_codec_limits_work_as_a_pydantic_settings_field() -> None:
    class Settings(pydantic.BaseModel):
        limits: CodecLimits = protocol.DEFAULT_LIMITS

    assert Settings(limits={"max_dims": 4}).limits == CodecLimits(max_dims=4)
    with pytest.raises(pydantic.ValidationError, match="max_dims: expected at most 64"):
        Settings(limits={"max_dims": 99})
