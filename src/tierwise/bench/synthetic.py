"""Synthetic ONNX models of a chosen cost, for capacity and batching measurements.

A stack of dense layers (MatMul + bias + Relu) with seeded weights: at batch 1 each layer
reads its whole weight matrix for one row, so batching many rows into one call amortises
that read; this is the model shape where dynamic batching pays off most.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tierwise.errors import ConfigError

__all__ = ["dense_stack_model"]


def dense_stack_model(
    path: Path,
    *,
    width: int = 1024,
    depth: int = 8,
    in_width: int | None = None,
    out_width: int | None = None,
    seed: int = 0,
    opset: int = 17,
) -> Path:
    """Write an FP32 model ``x [batch, in_width] -> y [batch, out_width]`` of ``depth``
    dense layers, the inner ones ``width`` wide (in and out default to ``width``)."""
    in_width = width if in_width is None else in_width
    out_width = width if out_width is None else out_width
    for name, value in (("width", width), ("in_width", in_width), ("out_width", out_width)):
        if not 1 <= value <= 16384:
            raise ConfigError(name, "between 1 and 16384", value)
    if not 1 <= depth <= 256:
        raise ConfigError("depth", "between 1 and 256", depth)
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    for i in range(depth):
        rows = in_width if i == 0 else width
        cols = out_width if i == depth - 1 else width
        w = (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)
        b = np.zeros(cols, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "y" if i == depth - 1 else f"h{i}"
        nodes += [
            helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
            helper.make_node("Relu", [f"a{i}"], [out]),
        ]
        current = out
    graph = helper.make_graph(
        nodes,
        "dense_stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", out_width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
