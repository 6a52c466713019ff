"""Models and eval files for the shape tests: made here with onnx.helper, not by the zoo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnx_models import IR_VERSION, OPSET

CLASSES = 4


def _weights(name: str, shape: tuple[int, ...], seed: int) -> onnx.TensorProto:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.1
    return helper.make_tensor(name, TensorProto.FLOAT, shape, values.ravel())


def conv_pool_model(path: Path, *, input_name: str = "x") -> Path:
    """An OCR-style classifier on FP32 ``x['N', 3, 'H', 'W']``: two 3x3 convolutions
    (16 channels, padded), a global average pool and a dense layer to ``probabilities
    ['N', 4]``. Its cost grows with H x W, and it runs at any H, W >= 1."""
    t = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Conv", [input_name, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_pool",
        [t(input_name, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [t("probabilities", TensorProto.FLOAT, ["N", CLASSES])],
        [
            _weights("w1", (16, 3, 3, 3), 1),
            _weights("b1", (16,), 2),
            _weights("w2", (16, 16, 3, 3), 3),
            _weights("b2", (16,), 4),
            _weights("w3", (16, CLASSES), 5),
            _weights("b3", (CLASSES,), 6),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def eval_file(path: Path, rows: int, sample: tuple[int, ...], *, name: str = "x") -> Path:
    """An eval npz: ``name`` [rows, *sample] FP32 in [0, 1) and ``labels`` [rows]."""
    rng = np.random.default_rng(0)
    x = rng.random((rows, *sample), dtype=np.float32)
    np.savez(path, **{name: x, "labels": rng.integers(0, CLASSES, rows)})
    return path


def tierwise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
