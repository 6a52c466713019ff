"""Warm-up never guesses a dimension, and which models may be batched along axis 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from onnx_models import (
    detector_model,
    failing_model,
    fixed_batch_model,
    reflect_pad_model,
    scale_model,
    stateful_model,
)
from tierwise.errors import BackendError, ConfigError, ModelLoadError
from tierwise.runtime import (
    OnnxBackend,
    OnnxSettings,
    Signature,
    TensorSpec,
    WarmupInput,
    WarmupSample,
    plan_warmup,
    read_signature,
)


def _sample(**inputs: dict[str, object]) -> WarmupSample:
    return WarmupSample.model_validate({"inputs": inputs})


# -- which models are batchable -------------------------------------------------------


def test_batch_dimension_is_read_from_the_models_dimension_names(tmp_path: Path) -> None:
    detector = read_signature(detector_model(tmp_path / "d.onnx"))
    assert detector.inputs[0].shape == (-1, 3, -1, -1)
    assert detector.inputs[0].symbols == ("batch", None, "height", "width")
    assert detector.batch_dynamic
    assert read_signature(reflect_pad_model(tmp_path / "a.onnx")).batch_dynamic

    stateful = read_signature(stateful_model(tmp_path / "s.onnx"))
    assert not stateful.batch_dynamic
    assert stateful.batch_problem == "input 'sr' is a scalar (0-d), so it has no batch dimension"


def test_a_state_whose_batch_is_not_first_or_a_count_output_rules_merging_out() -> None:
    image = TensorSpec("x", "FP32", (-1, 4), ("batch", None))
    state = TensorSpec("state", "FP32", (2, -1, 8), (None, "batch", None))
    boxes = TensorSpec("boxes", "FP32", (-1, 6), ("num_boxes", None))
    y = TensorSpec("y", "FP32", (-1, 1), ("batch", None))
    unnamed = TensorSpec("y", "FP32", (-1, 1), (None, None))

    assert Signature((image, state), (y,)).batch_problem == (
        "input 'state' has a fixed first dimension (2)"
    )
    assert Signature((image,), (boxes,)).batch_problem == (
        "output 'boxes' has first dimension 'num_boxes', but input 'x' has 'batch'"
    )
    # an unnamed first dimension (skl2onnx writes [None, n]) may be the batch one
    assert Signature((image,), (unnamed,)).batch_problem is None
    assert Signature((image, state), (unnamed,)).batch_problem is not None
    assert Signature((image,), (y,)).batch_problem is None


def test_signatures_without_dimension_names_keep_the_first_dimension_rule() -> None:
    # read from V2 metadata (or written by hand): only -1 is known
    plain = Signature((TensorSpec("x", "FP32", (-1, 4)),), (TensorSpec("y", "FP32", (-1,)),))
    assert plain.batch_dynamic
    named = Signature(
        (TensorSpec("x", "FP32", (-1, 4), ("batch", None)),),
        (TensorSpec("y", "FP32", (-1,), ("batch",)),),
    )
    assert named == plain  # the names are not part of the V2 contract
    assert named.to_dict() == plain.to_dict()
    with pytest.raises(ConfigError, match="symbols"):
        TensorSpec("x", "FP32", (-1, 4), ("batch",))


# -- derived warm-up -------------------------------------------------------------------


def test_derived_warmup_only_for_known_dimensions(tmp_path: Path) -> None:
    scale = plan_warmup(read_signature(scale_model(tmp_path / "s.onnx", 2.0)))
    assert scale.skipped is None
    assert [{k: v.shape for k, v in feeds.items()} for feeds in scale.feeds] == [{"x": (1, 4)}]
    fixed = plan_warmup(read_signature(fixed_batch_model(tmp_path / "f.onnx")))
    assert fixed.feeds[0]["x"].shape == (1, 2)

    detector = plan_warmup(read_signature(detector_model(tmp_path / "d.onnx")))
    assert detector.feeds == ()
    assert detector.skipped == (
        "input 'images' has dynamic dimensions besides the batch dimension: "
        "'height' (axis 2), 'width' (axis 3)"
    )
    audio = plan_warmup(read_signature(reflect_pad_model(tmp_path / "a.onnx")))
    assert audio.skipped is not None
    assert "'samples' (axis 1)" in audio.skipped

    stateful = plan_warmup(read_signature(stateful_model(tmp_path / "v.onnx")))
    assert stateful.feeds == ()
    assert stateful.skipped == (
        "input 'input' has dynamic dimensions ('batch' (axis 0)) and the model has no batch "
        "dimension to fill (input 'sr' is a scalar (0-d), so it has no batch dimension)"
    )


# -- declared warm-up ------------------------------------------------------------------


def test_declared_warmup_fills_as_asked(tmp_path: Path) -> None:
    signature = read_signature(stateful_model(tmp_path / "v.onnx"))
    sample = _sample(
        input={"shape": [2, 16], "datatype": "FP32", "fill": "random"},
        sr={"shape": [], "datatype": "INT64", "fill": 16000},
        state={"shape": [2, 2, 8], "datatype": "FP32"},
    )
    plan = plan_warmup(signature, [sample])
    (feeds,) = plan.feeds
    assert plan.source == "config.yaml warmup"
    assert feeds["sr"].shape == ()
    assert feeds["sr"].dtype == np.int64
    assert int(feeds["sr"]) == 16000
    assert not feeds["state"].any()
    assert feeds["input"].std() > 0  # random, and the same every time
    np.testing.assert_array_equal(
        plan_warmup(signature, [sample]).feeds[0]["input"], feeds["input"]
    )
    assert plan.describe(0) == "input FP32 [2, 16], sr INT64 [], state FP32 [2, 2, 8]"


@pytest.mark.parametrize(
    ("inputs", "parameter", "expected"),
    [
        (
            {"imgs": {"shape": [1, 3, 8, 8], "datatype": "FP32"}},
            "warmup.0.inputs.imgs",
            "an input of the model (images)",
        ),
        (
            {"images": {"shape": [1, 3, 8, 8], "datatype": "FP16"}},
            "warmup.0.inputs.images.datatype",
            "FP32, the model's",
        ),
        (
            {"images": {"shape": [1, 4, 8, 8], "datatype": "FP32"}},
            "warmup.0.inputs.images.shape",
            "a shape the model takes, [-1, 3, -1, -1] (-1 is any size)",
        ),
        (
            {"images": {"shape": [3, 8, 8], "datatype": "FP32"}},
            "warmup.0.inputs.images.shape",
            "a shape the model takes",
        ),
    ],
)
def test_declared_warmup_that_does_not_fit_names_the_field(
    tmp_path: Path, inputs: dict[str, dict[str, object]], parameter: str, expected: str
) -> None:
    signature = read_signature(detector_model(tmp_path / "d.onnx"))
    with pytest.raises(ConfigError) as info:
        plan_warmup(signature, [_sample(**inputs)])
    assert info.value.parameter == parameter
    assert info.value.expected.startswith(expected)


def test_declared_warmup_must_give_every_input(tmp_path: Path) -> None:
    signature = read_signature(stateful_model(tmp_path / "v.onnx"))
    sample = _sample(input={"shape": [1, 16], "datatype": "FP32"})
    with pytest.raises(ConfigError, match=r"warmup\.0\.inputs: .*missing \['sr', 'state'\]"):
        plan_warmup(signature, [sample])


@pytest.mark.parametrize(
    ("declared", "field"),
    [
        ({"shape": [1, -3], "datatype": "FP32"}, "shape"),
        ({"shape": [1, 3], "datatype": "FLOAT"}, "datatype"),
        ({"shape": [1, 3], "datatype": "FP32", "fill": "ones"}, "fill"),
        ({"shape": [1, 3], "datatype": "UINT8", "fill": 300}, "UINT8"),
        ({"shape": [1, 3], "datatype": "INT64", "fill": 0.5}, "INT64"),
        ({"shape": [1 << 14, 1 << 14], "datatype": "FP32"}, "elements"),
        ({"shape": [1, 3], "datatype": "FP32", "size": 3}, "size"),
    ],
)
def test_declared_warmup_inputs_are_validated(declared: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        WarmupInput.model_validate(declared)


# -- the onnxruntime backend -----------------------------------------------------------


async def test_backend_skips_a_warmup_it_would_have_to_guess(tmp_path: Path) -> None:
    backend = OnnxBackend("detector", detector_model(tmp_path / "d.onnx"))
    await backend.load()  # 1s for height and width would fail in Concat
    assert backend.warmup_note is not None
    assert "'height' (axis 2)" in backend.warmup_note
    images = np.random.default_rng(0).random((2, 3, 32, 48), dtype=np.float32)
    got = await backend.infer({"images": images})
    session = ort.InferenceSession(str(backend.path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(got["features"], session.run(None, {"images": images})[0])
    await backend.unload()


async def test_backend_runs_the_declared_warmup(tmp_path: Path) -> None:
    path = detector_model(tmp_path / "d.onnx")
    good = _sample(images={"shape": [1, 3, 64, 64], "datatype": "FP32", "fill": "random"})
    backend = OnnxBackend("detector", path, warmup=[good])
    await backend.load()
    assert backend.warmup_note is None
    await backend.unload()
    # a shape the signature allows but the graph does not: proof that it really runs
    odd = _sample(images={"shape": [1, 3, 6, 6], "datatype": "FP32"})
    with pytest.raises(ModelLoadError) as info:
        await OnnxBackend("detector", path, warmup=[good, odd]).load()
    message = str(info.value)
    assert message.startswith(
        "model 'detector': warm-up failed on inputs from config.yaml warmup "
        "(images FP32 [1, 3, 6, 6]): "
    )
    assert "Concat" in message


async def test_declared_warmup_that_does_not_fit_fails_the_load(tmp_path: Path) -> None:
    bad = _sample(imgs={"shape": [1, 3, 8, 8], "datatype": "FP32"})
    backend = OnnxBackend("detector", detector_model(tmp_path / "d.onnx"), warmup=[bad])
    with pytest.raises(ModelLoadError, match=r"config\.yaml warmup\.0\.inputs\.imgs: expected"):
        await backend.load()
    assert not backend.loaded


async def test_a_failing_warmup_is_a_load_error_and_off_means_off(tmp_path: Path) -> None:
    path = failing_model(tmp_path / "f.onnx")
    with pytest.raises(ModelLoadError) as info:
        await OnnxBackend("boom", path).load()
    assert "warm-up failed on inputs from the signature (batch of 1) (x FP32 [1, 4])" in str(
        info.value
    )
    assert "Gather" in str(info.value)
    assert isinstance(info.value.__cause__, BackendError)

    off = OnnxBackend("boom", path, OnnxSettings(warmup_runs=0))
    await off.load()
    assert off.warmup_note is None  # turned off on purpose: nothing to report
    with pytest.raises(BackendError, match="Gather"):
        await off.infer({"x": np.zeros((1, 4), np.float32)})
    await off.unload()
