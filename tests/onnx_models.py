"""Small ONNX models built with onnx.helper for tests across components."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

OPSET = 17
IR_VERSION = 8


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tierwise-tests"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def mixed_model(path: Path) -> Path:
    """Several inputs and outputs of mixed datatypes with a dynamic batch dimension.

    sum = a + float(b); half = b * 2; count = c + 1; flipped = not d; raw = e; text = s
    """
    t = helper.make_tensor_value_info
    inputs = [
        t("a", TensorProto.FLOAT, ["batch", 3]),
        t("b", TensorProto.FLOAT16, ["batch", 3]),
        t("c", TensorProto.INT64, ["batch"]),
        t("d", TensorProto.BOOL, ["batch", 2]),
        t("e", TensorProto.UINT8, ["batch", 4]),
        t("s", TensorProto.STRING, ["batch"]),
    ]
    outputs = [
        t("sum", TensorProto.FLOAT, ["batch", 3]),
        t("half", TensorProto.FLOAT16, ["batch", 3]),
        t("count", TensorProto.INT64, ["batch"]),
        t("flipped", TensorProto.BOOL, ["batch", 2]),
        t("raw", TensorProto.UINT8, ["batch", 4]),
        t("text", TensorProto.STRING, ["batch"]),
    ]
    inits = [
        helper.make_tensor("two", TensorProto.FLOAT16, [], [2.0]),
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
    ]
    nodes = [
        helper.make_node("Cast", ["b"], ["b32"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["a", "b32"], ["sum"]),
        helper.make_node("Mul", ["b", "two"], ["half"]),
        helper.make_node("Add", ["c", "one"], ["count"]),
        helper.make_node("Not", ["d"], ["flipped"]),
        helper.make_node("Identity", ["e"], ["raw"]),
        helper.make_node("Identity", ["s"], ["text"]),
    ]
    return _save(helper.make_graph(nodes, "mixed", inputs, outputs, inits), path)


def scale_model(path: Path, factor: float, *, width: int = 4) -> Path:
    """y = x * factor on FP32 [batch, width]; different factors tell versions apart."""
    t = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "scale",
        [t("x", TensorProto.FLOAT, ["batch", width])],
        [t("y", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor("k", TensorProto.FLOAT, [], [factor])],
    )
    return _save(graph, path)


def fixed_batch_model(path: Path) -> Path:
    """y = x + 1 on FP32 [1, 2]: a model whose first dimension is not dynamic."""
    t = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "k"], ["y"])],
        "fixed",
        [t("x", TensorProto.FLOAT, [1, 2])],
        [t("y", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor("k", TensorProto.FLOAT, [], [1.0])],
    )
    return _save(graph, path)
