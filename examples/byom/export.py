"""Make a model family the way a team would outside tierwise: train with scikit-learn,
export with skl2onnx, quantize with onnxruntime.

The task is scikit-learn's breast-cancer data (569 tumours, 30 measurements of cell
nuclei each, malignant or benign; it ships with scikit-learn). Three variants of one
model, all reading the same 30 measurements:

- ``small``: a logistic regression that looks at three of them (mean radius, texture and
  smoothness), cheap enough for an instrument's own computer, and visibly weaker;
- ``large``: a scaled 64x64 multilayer perceptron on all 30;
- ``large-int8``: ``large`` with its weights quantized to int8 (onnxruntime's dynamic
  quantization).

Every variant takes ``features`` (FP32 ``[N, 30]``) and answers ``diagnosis`` (INT64
``[N]``: 0 malignant, 1 benign) and ``scores`` (FP32 ``[N, 2]``, class probabilities):
names of our choosing, not tierwise's. Half the rows are held out, stratified, and written
as ``eval.npz`` (``features`` and ``labels``). The same seed gives the same files.

    python examples/byom/export.py --out byom

writes ``byom/models/<variant>/1/model.onnx`` (a model repository ``tierwise serve``
reads) and ``byom/eval.npz``, and prints each variant's held-out accuracy.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

INPUT = "features"
FEATURES = 30
CLASSES = 2
#: Mean radius, texture and smoothness: what the small model sees of the 30 measurements.
SMALL_FEATURES = [0, 1, 4]
OPSET = {"": 17, "ai.onnx.ml": 3}


def load_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and held-out rows (half each, stratified): x FP32 [N, 30], y INT64 [N]."""
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_eval, y_train, y_eval = train_test_split(
        x.astype(np.float32), y.astype(np.int64), test_size=0.5, stratify=y, random_state=seed
    )
    return x_train, x_eval, y_train, y_eval


def train(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Pipeline]:
    """The two trained models, by variant name."""
    small = make_pipeline(
        ColumnTransformer([("few", StandardScaler(), SMALL_FEATURES)]), LogisticRegression()
    )
    large = make_pipeline(
        StandardScaler(), MLPClassifier((64, 64), max_iter=2000, random_state=seed)
    )
    return {"small": small.fit(x, y), "large": large.fit(x, y)}


def export(model: Pipeline) -> onnx.ModelProto:
    """The ONNX graph of ``model``: ``features`` in, ``diagnosis`` and ``scores`` out."""
    return to_onnx(
        model,
        initial_types=[(INPUT, FloatTensorType([None, FEATURES]))],
        final_types=[
            ("diagnosis", Int64TensorType([None])),
            ("scores", FloatTensorType([None, CLASSES])),
        ],
        options={id(model.steps[-1][1]): {"zipmap": False}},  # a tensor, not a list of dicts
        target_opset=OPSET,
    )


def accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """The share of rows whose ``diagnosis`` is right."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (diagnosis,) = session.run(["diagnosis"], {INPUT: x})
    return float((diagnosis == y).mean())


def build(out: Path, seed: int = 0) -> dict[str, float]:
    """Train, export and quantize into ``out``; each variant's held-out accuracy."""
    x_train, x_eval, y_train, y_eval = load_split(seed)
    paths = {v: out / "models" / v / "1" / "model.onnx" for v in ("small", "large", "large-int8")}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    for name, model in train(x_train, y_train, seed).items():
        paths[name].write_bytes(export(model).SerializeToString())
    logging.disable(logging.WARNING)  # the quantizer's advice to pre-process first
    quantize_dynamic(paths["large"], paths["large-int8"], weight_type=QuantType.QInt8)
    logging.disable(logging.NOTSET)
    np.savez(out / "eval.npz", **{INPUT: x_eval, "labels": y_eval})
    return {name: round(accuracy(path, x_eval, y_eval), 4) for name, path in paths.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("byom"), help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps({"out": str(args.out), "accuracy": build(args.out, args.seed)}))


if __name__ == "__main__":
    main()
