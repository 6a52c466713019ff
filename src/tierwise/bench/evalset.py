"""Held-out data for measurements: what ``--eval FILE.npz`` holds, matched to a model.

An eval file is an ``.npz`` with one array per model input, named as the input and shaped
``[N, *sample]`` (a sample is one row: the input's shape without the batch dimension, or
the whole input of one call for a model without a batch dimension), plus optional
``labels`` ``[N]`` for the accuracy. For compatibility with the zoo's ``eval.npz``
(``x`` and ``y``), labels may be named ``y``, and a model with a single input takes the
one array that is not labels, whatever its name. The arrays are matched to each model's
inputs when it is measured (:meth:`EvalSet.match`), since variants may name them
differently.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tierwise.errors import ConfigError
from tierwise.runtime import TensorSpec

__all__ = ["EvalData", "EvalMatch", "EvalSet", "as_eval_set", "predicted_labels"]

#: Names an eval file may give its labels, in order of preference.
LABEL_NAMES = ("labels", "y")


@dataclass(frozen=True)
class EvalMatch:
    """An eval set matched to one model: an array per input (keyed by input name) and the
    labels, when the file has them."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    samples: int


@dataclass(frozen=True)
class EvalSet:
    """Held-out samples as arrays ``[N, ...]`` by name (see the module docstring);
    ``source`` names them in messages (the file)."""

    arrays: Mapping[str, np.ndarray]
    source: str = "the eval data"

    def __post_init__(self) -> None:
        if not self.arrays:
            raise ConfigError("eval", f"at least one array in {self.source}", {})
        counts = {name: (a.shape[0] if a.ndim else None) for name, a in self.arrays.items()}
        if any(n is None for n in counts.values()) or len(set(counts.values())) != 1:
            shapes = {name: list(a.shape) for name, a in self.arrays.items()}
            raise ConfigError(
                "eval", f"arrays of {self.source} with the same number of samples N first",
                shapes,
            )  # fmt: skip
        if self.samples < 1:
            raise ConfigError("eval", f"at least one sample in {self.source}", 0)

    @classmethod
    def from_pair(cls, x: np.ndarray, y: np.ndarray, source: str = "the eval data") -> EvalSet:
        """Inputs ``x`` of a single-input model and labels ``y`` (the zoo's split)."""
        return cls({"x": x, "y": y}, source)

    @classmethod
    def load(cls, path: str | Path) -> EvalSet:
        """Every array of an ``.npz`` (no pickles); ConfigError naming the file when it
        cannot be read."""
        from tierwise.zoo.files import read_npz

        file = Path(path)
        try:
            arrays = read_npz(file)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise ConfigError("eval", "a readable .npz file", f"{file}: {exc}") from exc
        return cls(arrays, str(file))

    @property
    def samples(self) -> int:
        """N, the number of samples."""
        return int(next(iter(self.arrays.values())).shape[0])

    def match(self, inputs: Sequence[TensorSpec], model: str) -> EvalMatch:
        """The arrays for ``inputs`` (by name; a single input takes the one array that is
        not labels) and the labels; ConfigError naming what is missing or left over."""
        names = [spec.name for spec in inputs]
        found = {name: self.arrays[name] for name in names if name in self.arrays}
        spare = [name for name in self.arrays if name not in found]
        label = next((name for name in LABEL_NAMES if name in spare), None)
        if label is not None:
            spare.remove(label)
        if len(names) == 1 and not found and len(spare) == 1:
            found[names[0]] = self.arrays[spare.pop()]
        missing = [name for name in names if name not in found]
        if missing or spare:
            what = "; ".join(
                [f"missing {missing}"] * bool(missing) + [f"unknown arrays {spare}"] * bool(spare)
            )
            raise ConfigError(
                "eval",
                f"arrays in {self.source} named as the inputs of {model!r} ({', '.join(names)})"
                f" plus optional labels ({what})",
                sorted(self.arrays),
            )
        labels = self.arrays[label] if label is not None else None
        if labels is not None and labels.ndim != 1:
            raise ConfigError(
                "eval", f"labels {label!r} in {self.source} shaped [N]", list(labels.shape)
            )
        return EvalMatch(found, labels, self.samples)


def predicted_labels(outputs: Mapping[str, np.ndarray], rows: int) -> np.ndarray | None:
    """The class each of ``rows`` rows was given: an output ``label`` of one value per row,
    else the argmax of ``probabilities`` or of the first output shaped ``[rows, classes]``;
    None when no output looks like either."""
    label = outputs.get("label")
    if label is not None and label.reshape(-1).shape[0] == rows:
        return label.reshape(-1)
    for name in ("probabilities", *outputs):
        value = outputs.get(name)
        if value is not None and value.ndim == 2 and value.shape[0] == rows and value.shape[1] > 1:
            return np.asarray(value.argmax(axis=1))
    return None


#: What measurements take as eval data: an eval set, or inputs and labels of a
#: single-input model (the zoo's split).
EvalData = EvalSet | tuple[np.ndarray, np.ndarray]


def as_eval_set(data: EvalData | None) -> EvalSet | None:
    """An eval set from an :class:`EvalSet` or an ``(inputs, labels)`` pair."""
    if data is None or isinstance(data, EvalSet):
        return data
    return EvalSet.from_pair(*data)
