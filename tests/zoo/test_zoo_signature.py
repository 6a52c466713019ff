"""Every variant honours the contract: image FP32 [-1,8,8] -> probabilities, label."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tierwise.runtime import OnnxBackend, Signature, TensorSpec, read_signature
from tierwise.zoo import ZOO_SIGNATURE, Zoo, load_eval

Runner = Callable[[Path, np.ndarray], tuple[np.ndarray, np.ndarray]]
VARIANTS = ["tiny", "tiny-int8", "small", "small-int8", "large", "large-int8"]

CONTRACT = Signature(
    inputs=(TensorSpec("image", "FP32", (-1, 8, 8)),),
    outputs=(TensorSpec("probabilities", "FP32", (-1, 10)), TensorSpec("label", "INT64", (-1,))),
)


def test_contract_constant() -> None:
    assert ZOO_SIGNATURE == CONTRACT
    assert CONTRACT.batch_dynamic


@pytest.mark.parametrize("name", VARIANTS)
def test_signature_in_file_and_manifest(zoo: Zoo, name: str) -> None:
    variant = zoo.variant(name)
    assert read_signature(zoo.root / variant.path) == CONTRACT
    assert variant.signature == CONTRACT


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("batch", [1, 7])
def test_outputs_are_softmax_and_argmax(zoo: Zoo, run_model: Runner, name: str, batch: int) -> None:
    x, _ = load_eval(zoo.root)
    probabilities, labels = run_model(zoo.model_path(name), x[:batch])
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (batch, 10)
    assert labels.dtype == np.int64
    assert labels.shape == (batch,)
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels, probabilities.argmax(axis=1))


async def test_runs_on_the_tierwise_backend(zoo: Zoo) -> None:
    x, y = load_eval(zoo.root)
    backend = OnnxBackend("large-int8", zoo.model_path("large-int8"))
    await backend.load()
    try:
        assert backend.signature == CONTRACT
        outputs = await backend.infer({"image": x[:64]})
        assert set(outputs) == {"probabilities", "label"}
        assert np.mean(outputs["label"] == y[:64]) > 0.8
    finally:
        await backend.unload()
