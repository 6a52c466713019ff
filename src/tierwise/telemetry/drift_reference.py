"""Drift references: what a model's evaluation data looked like, as ``reference.json``.

A :class:`Reference` holds the model's confidence (the top class probability) as a
histogram of fixed bins on [0, 1] and as a sample, how often it predicts each class, and,
for one input tensor, the mean and the standard deviation of each row's values. It is
built from evaluation inputs and the scores the model answered
(:func:`reference_from_outputs`; :func:`tierwise.zoo.reference_for_model` runs any ONNX
model for it) and read back with every field checked (:meth:`Reference.load`), since a
reference travels in bundles and is read by tier servers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tierwise.errors import ConfigError
from tierwise.escalation.rules import SCORE_KINDS, MaxProbability, ScoreKind

__all__ = [
    "CONFIDENCE_BINS",
    "MAX_CLASSES",
    "MAX_REFERENCE_BYTES",
    "MAX_SAMPLES",
    "REFERENCE_FILE",
    "Reference",
    "class_scores",
    "reference_from_outputs",
    "row_summary",
]

REFERENCE_FILE = "reference.json"
#: Equal-width bins on [0, 1] of a reference's confidence histogram.
CONFIDENCE_BINS = 100
#: Most values kept per reference sample; larger sets keep evenly spaced order statistics.
MAX_SAMPLES = 2000
#: Most classes a reference counts.
MAX_CLASSES = 100_000
#: Reference files past this size are refused before they are parsed.
MAX_REFERENCE_BYTES = 4 * 1024 * 1024
_FORMAT = 1


def _sample(values: np.ndarray) -> tuple[float, ...]:
    """Sorted values (evenly spaced order statistics past MAX_SAMPLES), six digits each."""
    ordered = np.sort(values[np.isfinite(values)])
    if ordered.size > MAX_SAMPLES:
        ordered = ordered[np.round(np.linspace(0, ordered.size - 1, MAX_SAMPLES)).astype(int)]
    return tuple(float(f"{v:.6g}") for v in ordered.tolist())


def row_summary(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-row mean and standard deviation of a numeric tensor (rows first); None for a
    tensor with no rows or no values in them, or one that is not numeric."""
    if inputs.ndim == 0 or inputs.size == 0 or inputs.dtype.kind not in "fiub":
        return None
    flat = inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:]))
    return flat.mean(axis=1, dtype=np.float64), flat.std(axis=1, dtype=np.float64)


def class_scores(rule: MaxProbability, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row confidence in [0, 1] (NaN as 0) and predicted class of a score tensor."""
    probabilities = rule.tensor({str(rule.output): scores}, min_columns=2)
    top = probabilities.max(axis=1)
    return np.where(top > 0.0, np.minimum(top, 1.0), 0.0), probabilities.argmax(axis=1)


@dataclass(frozen=True)
class Reference:
    """What a model's evaluation data looked like (module docs). ``output`` is None for an
    input-only reference; ``rows`` is how many rows it was built from."""

    rows: int
    input_name: str
    input_mean: tuple[float, ...]
    input_std: tuple[float, ...]
    output: str | None = None
    score_kind: ScoreKind = "probabilities"
    class_counts: tuple[int, ...] = ()
    confidence_histogram: tuple[int, ...] = ()
    confidence: tuple[float, ...] = ()

    @property
    def classes(self) -> int:
        return len(self.class_counts)

    def to_dict(self) -> dict[str, Any]:
        output = None
        if self.output is not None:
            output = {
                "name": self.output,
                "scores": self.score_kind,
                "class_counts": list(self.class_counts),
                "confidence_histogram": list(self.confidence_histogram),
                "confidence": list(self.confidence),
            }
        return {
            "format": _FORMAT,
            "rows": self.rows,
            "input": {"name": self.input_name, "mean": list(self.input_mean),
                      "std": list(self.input_std)},
            "output": output,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: object, *, source: str = "reference") -> Reference:
        """Check a reference document; ConfigError naming ``source`` and the field."""
        try:
            doc = _Document.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "<top level>"
            raise ConfigError(f"{source}: {where}", str(error["msg"])) from exc
        out = doc.output
        if out is not None and len(out.confidence_histogram) != CONFIDENCE_BINS:
            raise ConfigError(
                f"{source}: output.confidence_histogram",
                f"{CONFIDENCE_BINS} counts",
                len(out.confidence_histogram),
            )
        return cls(
            rows=doc.rows,
            input_name=doc.input.name,
            input_mean=tuple(sorted(doc.input.mean)),
            input_std=tuple(sorted(doc.input.std)),
            output=None if out is None else out.name,
            score_kind="probabilities" if out is None else out.scores,
            class_counts=() if out is None else tuple(out.class_counts),
            confidence_histogram=() if out is None else tuple(out.confidence_histogram),
            confidence=() if out is None else tuple(sorted(out.confidence)),
        )

    def to_json(self) -> bytes:
        """Stable bytes: sorted keys, a trailing newline."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS) + b"\n"

    def save(self, path: Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_bytes(self.to_json())

    @classmethod
    def load(cls, path: Path) -> Reference:
        """Read a reference file; ConfigError naming the file (and the field) when wrong."""
        try:
            with Path(path).open("rb") as file:
                raw = file.read(MAX_REFERENCE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(str(path), "a readable reference file", str(exc)) from exc
        if len(raw) > MAX_REFERENCE_BYTES:
            raise ConfigError(
                str(path), f"a reference file of at most {MAX_REFERENCE_BYTES} bytes", "larger"
            )
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(str(path), "a JSON drift reference", str(exc)) from exc
        return cls.from_dict(data, source=str(path))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


_Finite = Field(min_length=1, max_length=MAX_SAMPLES)


class _InputDoc(_Strict):
    name: str = Field(min_length=1)
    mean: list[float] = _Finite
    std: list[float] = _Finite


class _OutputDoc(_Strict):
    name: str = Field(min_length=1)
    scores: ScoreKind
    class_counts: list[int] = Field(min_length=2, max_length=MAX_CLASSES)
    confidence_histogram: list[int] = Field(max_length=CONFIDENCE_BINS)
    confidence: list[float] = _Finite

    @model_validator(mode="after")
    def _counts(self) -> _OutputDoc:
        if min(self.class_counts) < 0 or sum(self.class_counts) == 0:
            raise ValueError("class_counts must be non-negative with a positive total")
        if min(self.confidence_histogram, default=0) < 0 or sum(self.confidence_histogram) == 0:
            raise ValueError("confidence_histogram must be non-negative with a positive total")
        if not all(0.0 <= c <= 1.0 for c in self.confidence):
            raise ValueError("confidence values must lie in [0, 1]")
        return self


class _Document(_Strict):
    format: Literal[1]
    rows: int = Field(ge=1)
    input: _InputDoc
    output: _OutputDoc | None

    @model_validator(mode="after")
    def _finite(self) -> _Document:
        if not all(math.isfinite(v) for v in (*self.input.mean, *self.input.std)):
            raise ValueError("input.mean and input.std must hold finite numbers")
        return self


def reference_from_outputs(
    inputs: np.ndarray,
    scores: np.ndarray | None,
    *,
    output: str | None,
    input_name: str,
    score_kind: ScoreKind = "probabilities",
) -> Reference:
    """A reference from a model's evaluation inputs (one tensor, rows first) and the score
    tensor it answered (``[rows, classes]``, probabilities or logits); with ``scores`` and
    ``output`` None, an input-only reference."""
    x = np.asarray(inputs)
    summary = row_summary(x) if x.ndim >= 1 and x.shape[0] > 0 else None
    if summary is None:
        raise ConfigError("inputs", "a numeric tensor with at least one row of values", x.shape)
    if score_kind not in SCORE_KINDS:
        raise ConfigError("score_kind", f"one of {', '.join(SCORE_KINDS)}", score_kind)
    means, stds = (_sample(values) for values in summary)
    if not means or not stds:
        raise ConfigError("inputs", "rows with finite values", "no finite row summary")
    base = Reference(x.shape[0], input_name, means, stds)
    if scores is None or output is None:
        if scores is not None or output is not None:
            raise ConfigError("output", "given together with scores (or both None)", output)
        return base
    s = np.asarray(scores)
    if s.ndim != 2 or s.shape[0] != x.shape[0] or s.shape[1] < 2 or s.dtype.kind != "f":
        raise ConfigError("scores", f"float [{x.shape[0]}, classes >= 2]", list(s.shape))
    confidence, predicted = class_scores(MaxProbability(output, score_kind), s)
    fine = np.minimum((confidence * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)
    return replace(
        base,
        output=output,
        score_kind=score_kind,
        class_counts=tuple(np.bincount(predicted, minlength=s.shape[1]).tolist()),
        confidence_histogram=tuple(np.bincount(fine, minlength=CONFIDENCE_BINS).tolist()),
        confidence=_sample(confidence),
    )
