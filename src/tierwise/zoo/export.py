"""Turn trained weights into ONNX graphs, and make their int8 variants.

The graph is written with ``onnx.helper`` rather than a converter, so every name is fixed
and two builds give byte-identical files. The contract other components rely on:

- input ``image``: FP32 ``[-1, 8, 8]``, pixels scaled to [0, 1];
- outputs ``probabilities``: FP32 ``[-1, 10]`` (softmax) and ``label``: INT64 ``[-1]``
  (argmax).

Layers are ``MatMul`` + ``Add`` (not ``Gemm``) so onnxruntime's quantizer handles them.
The int8 variants are static QDQ models (int8 weights and activations, scales calibrated
on a seeded sample of corrupted training images), which is what an edge box would run.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tierwise.errors import ZooError
from tierwise.zoo.data import IMAGE_SHAPE, NUM_CLASSES
from tierwise.zoo.train import DenseNet

__all__ = [
    "INPUT_NAME",
    "IR_VERSION",
    "LABEL_NAME",
    "OPSET",
    "PROBABILITIES_NAME",
    "quantize_int8",
    "to_onnx",
]

INPUT_NAME = "image"
PROBABILITIES_NAME = "probabilities"
LABEL_NAME = "label"
OPSET = 17
#: IR version 8 goes with opset 17 and loads in every onnxruntime since 1.13.
IR_VERSION = 8
_PRODUCER = "tierwise.zoo"
_BATCH = "batch"


def to_onnx(
    net: DenseNet, *, name: str, description: str, producer_version: str
) -> onnx.ModelProto:
    """The ONNX model computing ``net`` on the contract's tensors; checked before returning."""
    nodes = [helper.make_node("Flatten", [INPUT_NAME], ["flat"], name="flatten", axis=1)]
    initializers = []
    current = "flat"
    for i, layer in enumerate(net.layers):
        prefix = f"layer{i}"
        weight_name = f"{prefix}.weight"
        initializers.append(numpy_helper.from_array(layer.weight.astype(np.float32), weight_name))
        nodes.append(
            helper.make_node(
                "MatMul", [current, weight_name], [f"{prefix}.matmul"], name=f"{prefix}.matmul"
            )
        )
        current = f"{prefix}.matmul"
        if layer.bias is not None:
            bias_name = f"{prefix}.bias"
            initializers.append(numpy_helper.from_array(layer.bias.astype(np.float32), bias_name))
            nodes.append(
                helper.make_node(
                    "Add", [current, bias_name], [f"{prefix}.add"], name=f"{prefix}.add"
                )
            )
            current = f"{prefix}.add"
        if layer.relu:
            nodes.append(
                helper.make_node("Relu", [current], [f"{prefix}.relu"], name=f"{prefix}.relu")
            )
            current = f"{prefix}.relu"
    nodes.append(
        helper.make_node("Softmax", [current], [PROBABILITIES_NAME], name="softmax", axis=1)
    )
    nodes.append(
        helper.make_node(
            "ArgMax", [PROBABILITIES_NAME], [LABEL_NAME], name="argmax", axis=1, keepdims=0
        )
    )
    graph = helper.make_graph(
        nodes,
        name,
        inputs=[
            helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [_BATCH, *IMAGE_SHAPE])
        ],
        outputs=[
            helper.make_tensor_value_info(
                PROBABILITIES_NAME, TensorProto.FLOAT, [_BATCH, NUM_CLASSES]
            ),
            helper.make_tensor_value_info(LABEL_NAME, TensorProto.INT64, [_BATCH]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=_PRODUCER,
        producer_version=producer_version,
        doc_string=description,
    )
    model.ir_version = IR_VERSION
    model.model_version = 1
    _check(model, name)
    return model


def _check(model: onnx.ModelProto, name: str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ZooError(f"the ONNX graph of {name!r} is invalid: {exc}") from exc


class _Calibration:
    """Feeds calibration batches to onnxruntime's quantizer (its CalibrationDataReader API)."""

    def __init__(self, images: np.ndarray, batch_size: int = 128) -> None:
        self._images = images.astype(np.float32)
        self._batch_size = batch_size
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self._images), self._batch_size):
            yield {INPUT_NAME: self._images[start : start + self._batch_size]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self._batches()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


class _DropPreprocessAdvice(logging.Filter):
    """The quantizer logs advice to run its shape pre-processing on the root logger; our
    graphs are plain MatMul chains with static shapes, so the advice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    advice = _DropPreprocessAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def quantize_int8(
    model: onnx.ModelProto, calibration: np.ndarray, *, name: str, producer_version: str
) -> onnx.ModelProto:
    """The static int8 (QDQ) variant of ``model``, calibrated with min/max on ``calibration``.

    Weights are int8 per output channel, activations uint8 per tensor. onnxruntime's
    quantizer works on files, so it runs in a private temporary folder; only the resulting
    graph comes back, so the temporary names never reach the zoo.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(_Calibration, CalibrationDataReader):  # type: ignore[misc]
        pass

    with _quiet_quantizer(), tempfile.TemporaryDirectory(prefix="tierwise-quant-") as tmp:
        src = Path(tmp) / "fp32.onnx"
        dst = Path(tmp) / "int8.onnx"
        onnx.save_model(model, src)
        try:
            quantize_static(
                src,
                dst,
                Reader(calibration),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as exc:  # the quantizer raises untyped errors
            raise ZooError(f"int8 quantization of {name!r} failed: {exc}") from exc
        quantized = onnx.load_model(dst)
    quantized.graph.name = f"{model.graph.name}-int8"
    quantized.producer_name = _PRODUCER
    quantized.producer_version = producer_version
    quantized.doc_string = f"{model.doc_string}; static int8 (QDQ) quantization"
    quantized.model_version = model.model_version
    _check(quantized, name)
    return quantized
