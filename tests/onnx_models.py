"""Small ONNX models built with onnx.helper for tests across components."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = 17
IR_VERSION = 8


def save_graph(graph: onnx.GraphProto, path: Path, producer: str = "tierwise-tests") -> Path:
    """``graph`` as a checked model file at ``path`` (folders made as needed)."""
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=producer
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
    return save_graph(helper.make_graph(nodes, "mixed", inputs, outputs, inits), path)


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
    return save_graph(graph, path)


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
    return save_graph(graph, path)


def _weights(name: str, shape: tuple[int, ...], seed: int) -> onnx.TensorProto:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return helper.make_tensor(name, TensorProto.FLOAT, shape, values.ravel())


def detector_model(path: Path) -> Path:
    """A YOLO-style neck on FP32 ``images['batch', 3, 'height', 'width']``: two stride-2
    convolutions, the deeper map upsampled (Resize x2) and concatenated with the earlier
    one, giving ``features['batch', 8, 'out_h', 'out_w']``. Height and width must be
    multiples of 4: with 1 (or 6) the upsampled map is off by one and onnxruntime's Concat
    fails, as a real detector's does."""
    t = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["p3"]),
        helper.make_node("Conv", ["p3", "w2"], ["p4"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["p4", "", "scales"], ["up"], mode="nearest"),
        helper.make_node("Concat", ["p3", "up"], ["features"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "detector",
        [t("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [t("features", TensorProto.FLOAT, ["batch", 8, "out_h", "out_w"])],
        [
            _weights("w1", (4, 3, 3, 3), 1),
            _weights("w2", (4, 4, 3, 3), 2),
            helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0]),
        ],
    )
    return save_graph(graph, path)


def reflect_pad_model(path: Path) -> Path:
    """An audio front end on FP32 ``audio['batch', 'samples']``: reflect-pad 4 samples on
    each side (as an STFT with ``center=True`` does), then a strided 8-tap filter bank,
    giving ``spec['batch', 4, 'frames']``. Fewer than 5 samples fail in onnxruntime's Pad."""
    t = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Unsqueeze", ["audio", "axis1"], ["mono"]),
        helper.make_node("Pad", ["mono", "pads"], ["padded"], mode="reflect"),
        helper.make_node("Conv", ["padded", "bank"], ["spec"], strides=[4]),
    ]
    graph = helper.make_graph(
        nodes,
        "reflect_pad",
        [t("audio", TensorProto.FLOAT, ["batch", "samples"])],
        [t("spec", TensorProto.FLOAT, ["batch", 4, "frames"])],
        [
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor("pads", TensorProto.INT64, [6], [0, 0, 4, 0, 0, 4]),
            _weights("bank", (4, 1, 8), 3),
        ],
    )
    return save_graph(graph, path)


def stateful_model(path: Path) -> Path:
    """A voice-activity-style model: FP32 ``input['batch', 16]``, a 0-d INT64 ``sr`` (the
    sample rate) and a recurrent FP32 ``state[2, 'batch', 8]`` whose batch dimension is
    not the first. ``output['batch', 1]`` = mean(input) * sr / 16000 + mean of the row's
    state; ``stateN`` = tanh(state + mean(input)). Merging two requests along axis 0
    would be wrong for ``state`` and impossible for ``sr``."""
    t = helper.make_tensor_value_info
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["level"], axes=[1], keepdims=1),
        helper.make_node("Cast", ["sr"], ["sr32"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["sr32", "base_rate"], ["rate"]),
        helper.make_node("Mul", ["level", "rate"], ["scaled"]),
        helper.make_node("ReduceMean", ["state"], ["memory"], axes=[0, 2], keepdims=0),
        helper.make_node("Unsqueeze", ["memory", "axis1"], ["memory2"]),
        helper.make_node("Add", ["scaled", "memory2"], ["output"]),
        helper.make_node("Unsqueeze", ["level", "axis0"], ["level3"]),
        helper.make_node("Add", ["state", "level3"], ["raised"]),
        helper.make_node("Tanh", ["raised"], ["stateN"]),
    ]
    graph = helper.make_graph(
        nodes,
        "stateful",
        [
            t("input", TensorProto.FLOAT, ["batch", 16]),
            t("sr", TensorProto.INT64, []),
            t("state", TensorProto.FLOAT, [2, "batch", 8]),
        ],
        [
            t("output", TensorProto.FLOAT, ["batch", 1]),
            t("stateN", TensorProto.FLOAT, [2, "batch", 8]),
        ],
        [
            helper.make_tensor("base_rate", TensorProto.FLOAT, [], [16000.0]),
            helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        ],
    )
    return save_graph(graph, path)


def failing_model(path: Path, *, input_name: str = "x") -> Path:
    """A valid graph on FP32 ``x['batch', 4]`` whose every run fails in onnxruntime: it
    gathers column 10 of a 4-column input."""
    t = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Gather", [input_name, "column"], ["y"], axis=1)],
        "failing",
        [t(input_name, TensorProto.FLOAT, ["batch", 4])],
        [t("y", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor("column", TensorProto.INT64, [1], [10])],
    )
    return save_graph(graph, path)
