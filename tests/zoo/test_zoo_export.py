"""The hand-built ONNX graph computes exactly what the trained weights compute."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from tierwise.errors import ZooError
from tierwise.zoo.data import load_splits
from tierwise.zoo.export import IR_VERSION, OPSET, to_onnx
from tierwise.zoo.train import RECIPES, DenseLayer, DenseNet, pooling_matrix, train_model

Runner = Callable[[Path, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def test_pooling_matrix_averages_2x2_blocks() -> None:
    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    pooled = (image.reshape(1, 64) @ pooling_matrix()).reshape(4, 4)
    expected = image.reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(pooled, expected)


def test_graph_matches_numpy_forward_pass(tmp_path: Path, run_model: Runner) -> None:
    splits = load_splits(np.random.default_rng(0))
    tiny = next(r for r in RECIPES if r.name == "tiny")
    net = train_model(tiny, splits, np.random.default_rng(1))
    model = to_onnx(net, name="tiny", description="test", producer_version="test")
    assert model.ir_version == IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert {n.op_type for n in model.graph.node} >= {"MatMul", "Add", "Softmax", "ArgMax"}
    assert "Gemm" not in {n.op_type for n in model.graph.node}
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    probabilities, labels = run_model(path, splits.eval_x[:200])
    expected = _softmax(net.logits(splits.eval_x[:200]))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))


def test_invalid_weights_are_a_zoo_error() -> None:
    broken = DenseNet(
        layers=(
            DenseLayer(np.zeros((64, 4), np.float32), None, relu=True),
            DenseLayer(np.zeros((5, 10), np.float32), np.zeros(10, np.float32), relu=False),
        )
    )
    with pytest.raises(ZooError, match="'broken' is invalid"):
        to_onnx(broken, name="broken", description="", producer_version="test")
