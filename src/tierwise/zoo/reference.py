"""Drift references for any ONNX model: run it on evaluation inputs, summarise what it saw
and answered (:class:`~tierwise.telemetry.drift.Reference`).

The score output is chosen as the router chooses it: the output named, else one called
``probabilities``, else the model's only float ``[rows, classes >= 2]`` output; a model
with none gets an input-only reference, one with several must be told which. Whether the
scores are probabilities or logits is read from the values when not given: rows of
numbers in [0, 1] summing to one are probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tierwise.errors import ConfigError, TierwiseError
from tierwise.escalation import ScoreKind
from tierwise.runtime import Signature, TensorSpec, read_signature
from tierwise.telemetry.drift import REFERENCE_FILE, Reference, reference_from_outputs

__all__ = ["model_feeds", "reference_for_model", "reference_path", "run_output"]

_FLOATS = frozenset({"FP16", "FP32", "FP64"})
_DEFAULT_OUTPUT = "probabilities"
_BATCH_ROWS = 1024


def reference_path(variant: str) -> str:
    """Where a zoo variant's reference lies, relative to the zoo directory (beside its
    model, inside the version folder)."""
    return f"{variant}/1/{REFERENCE_FILE}"


def _holds_scores(spec: TensorSpec) -> bool:
    return spec.datatype in _FLOATS and len(spec.shape) == 2 and not 0 <= spec.shape[1] < 2


def _score_output(signature: Signature, declared: str | None) -> str | None:
    names = [t.name for t in signature.outputs]
    if declared is not None:
        if declared not in names:
            raise ConfigError("output", f"one of the model's outputs {names}", declared)
        return declared
    if _DEFAULT_OUTPUT in names:
        return _DEFAULT_OUTPUT
    fit = [t.name for t in signature.outputs if _holds_scores(t)]
    if len(fit) > 1:
        raise ConfigError("output", f"the name of the score output, one of {fit}")
    return fit[0] if fit else None


def _input_name(signature: Signature, feeds: Mapping[str, np.ndarray], declared: str | None) -> str:
    if declared is not None:
        if declared not in feeds:
            raise ConfigError("input_name", f"one of the inputs given {sorted(feeds)}", declared)
        return declared
    numeric = [t.name for t in signature.inputs if t.datatype != "BYTES"]
    if len(signature.inputs) == 1 or len(numeric) == 1:
        return (numeric or [signature.inputs[0].name])[0]
    raise ConfigError("input_name", f"the input to summarise, one of {numeric}")


def _guess_kind(scores: np.ndarray) -> ScoreKind:
    finite = scores[np.isfinite(scores).all(axis=1)]
    if finite.size == 0:
        return "probabilities"
    unit = bool(((finite >= 0.0) & (finite <= 1.0)).all())
    summed = bool(np.allclose(finite.sum(axis=1), 1.0, atol=1e-3))
    return "probabilities" if unit and summed else "logits"


def run_output(path: Path, feeds: Mapping[str, np.ndarray], output: str) -> np.ndarray:
    """One output of the ONNX model at ``path`` on ``feeds`` (run in batches, on the CPU);
    ConfigError when the model refuses the inputs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = next(iter(feeds.values())).shape[0]
    parts = []
    for start in range(0, rows, _BATCH_ROWS):
        batch = {name: value[start : start + _BATCH_ROWS] for name, value in feeds.items()}
        try:
            (answer,) = session.run([output], batch)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError("inputs", f"inputs {path.name} accepts", str(exc)) from exc
        parts.append(np.asarray(answer))
    return np.concatenate(parts)


def model_feeds(
    model_path: str | Path, inputs: np.ndarray | Mapping[str, np.ndarray]
) -> tuple[Signature, dict[str, np.ndarray]]:
    """The model's signature and ``inputs`` as input name to array (an array alone feeds a
    one-input model), every array with the same number of rows (at least one)."""
    path = Path(model_path)
    try:
        signature = read_signature(path)
    except TierwiseError as exc:
        raise ConfigError("model_path", "a loadable ONNX model", str(path)) from exc
    if isinstance(inputs, np.ndarray):
        if len(signature.inputs) != 1:
            names = [t.name for t in signature.inputs]
            raise ConfigError("inputs", f"a mapping of the model's inputs {names}", "one array")
        inputs = {signature.inputs[0].name: inputs}
    feeds = {name: np.asarray(value) for name, value in inputs.items()}
    rows = {value.shape[0] if value.ndim else 0 for value in feeds.values()}
    if len(rows) != 1 or 0 in rows:
        raise ConfigError("inputs", "arrays with the same number of rows (at least one)", rows)
    return signature, feeds


def reference_for_model(
    model_path: str | Path,
    inputs: np.ndarray | Mapping[str, np.ndarray],
    *,
    output: str | None = None,
    scores: ScoreKind | None = None,
    input_name: str | None = None,
) -> Reference:
    """Run the ONNX model at ``model_path`` on ``inputs`` (an array for a one-input model,
    else input name to array; rows first) and build its drift reference (module docs).

    ``input_name`` picks the input to summarise (default: the only input, or the only
    numeric one). Raises ConfigError naming what is wrong or ambiguous.
    """
    path = Path(model_path)
    signature, feeds = model_feeds(path, inputs)
    summarised = _input_name(signature, feeds, input_name)
    chosen = _score_output(signature, output)
    if chosen is None:
        if scores is not None:
            raise ConfigError("scores", "None for a model with no score output", scores)
        return reference_from_outputs(feeds[summarised], None, output=None, input_name=summarised)
    answer = run_output(path, feeds, chosen)
    kind = scores if scores is not None else _guess_kind(answer.astype(np.float64))
    return reference_from_outputs(
        feeds[summarised], answer, output=chosen, input_name=summarised, score_kind=kind
    )
