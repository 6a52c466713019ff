"""Classifiers the digits zoo did not make, built with onnx.helper, and labelled data for
them: an image model on ``x['batch', 3, H, W]`` (the issue's OCR-style 48 x 192) whose one
output is named as PaddlePaddle exports name theirs, holding two class probabilities or
logits; optionally a second float output (so no output is obviously the scores) and an
integer ``label``.

The class of a row is 1 when its channel 1 is brighter on average than its channel 0.
``weights`` decide how well a model sees that: :data:`SHARP` exactly, :data:`BLURRY`
with channel 2 mixed in (so it is wrong on some rows)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from onnx_models import save_graph

#: The output name of the user's model in the issue.
PADDLE_OUTPUT = "save_infer_model/scale_0.tmp_1"
#: Per-channel weights to two classes: logit1 - logit0 = 2 * 3 * (c1 - c0).
SHARP = np.array([[3.0, -3.0], [-3.0, 3.0], [0.0, 0.0]], np.float32)
BLURRY = np.array([[1.5, -1.5], [-1.5, 1.5], [1.2, -1.2]], np.float32)


def image_classifier(
    path: Path,
    weights: np.ndarray = SHARP,
    *,
    logits: bool = False,
    output: str = PADDLE_OUTPUT,
    height: int = 48,
    width: int = 192,
    second_output: str | None = None,
    label: bool = False,
) -> Path:
    """``output['batch', 2]`` = softmax (or, with ``logits``, the logits) of the
    per-channel means of ``x`` times ``weights``; ``second_output``: the logits again, as a
    second float ``[batch, 2]`` output; ``label``: the argmax as INT64 ``label['batch']``."""
    t = helper.make_tensor_value_info
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["means"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["means", "w"], ["z"]),
        helper.make_node("Identity", ["z"], [output])
        if logits
        else helper.make_node("Softmax", ["z"], [output], axis=1),
    ]
    outputs = [t(output, TensorProto.FLOAT, ["batch", 2])]
    if second_output is not None:
        nodes.append(helper.make_node("Identity", ["z"], [second_output]))
        outputs.append(t(second_output, TensorProto.FLOAT, ["batch", 2]))
    if label:
        nodes.append(helper.make_node("ArgMax", ["z"], ["label"], axis=1, keepdims=0))
        outputs.append(t("label", TensorProto.INT64, ["batch"]))
    graph = helper.make_graph(
        nodes,
        "image_classifier",
        [t("x", TensorProto.FLOAT, ["batch", 3, height, width])],
        outputs,
        [helper.make_tensor("w", TensorProto.FLOAT, [3, 2], weights.ravel())],
    )
    return save_graph(graph, path, producer="paddle2onnx-like")


def images(rows: int, *, height: int = 48, width: int = 192, seed: int = 0) -> np.ndarray:
    """``rows`` FP32 images ``[rows, 3, height, width]``, each channel around its own mean."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, size=(rows, 3, 1, 1))
    noise = rng.normal(0.0, 0.05, size=(rows, 3, height, width))
    return (means + noise).astype(np.float32)


def true_labels(x: np.ndarray) -> np.ndarray:
    """The class of each image: 1 when channel 1 is brighter than channel 0."""
    means = x.mean(axis=(2, 3))
    return (means[:, 1] > means[:, 0]).astype(np.int64)


def logits_of(x: np.ndarray, weights: np.ndarray = SHARP) -> np.ndarray:
    """What :func:`image_classifier` computes before its softmax, in float64."""
    return np.asarray(x.astype(np.float64).mean(axis=(2, 3)) @ weights.astype(np.float64))


def v2_request(x: np.ndarray, name: str = "x", outputs: Sequence[str] = ()) -> dict[str, object]:
    """A V2 inference request body for ``x``."""
    body: dict[str, object] = {
        "inputs": [
            {"name": name, "shape": list(x.shape), "datatype": "FP32",
             "data": x.ravel().tolist()}
        ]
    }  # fmt: skip
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


def run_cli(
    args: Sequence[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``tierwise ARGS`` in this process, through the same entry point as the console
    script (errors to exit codes): the exit code, stdout and stderr."""
    from tierwise.cli.app import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["tierwise", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err
