"""What a timing run feeds a model: a concrete shape for every input, never a guess.

A model's signature fixes some dimensions and leaves others dynamic. The batch dimension
(axis 0 of every input and output, when :attr:`~tierwise.runtime.Signature.batch_problem`,
the rule the server merges requests by, finds the model has one) takes each batch size
measured. Every other dynamic
dimension (an OCR model's height and width, an audio model's samples) has sizes only the
user knows, and timing a guessed size (1) measures a different, much cheaper computation.
So each input's shape comes from, in this order:

- ``eval``: the samples of the eval set (:mod:`tierwise.bench.evalset`), which are also
  what the calls carry (a flag for the same input must agree with them);
- ``flag``: a shape the user gives (``--input-shape x=3,48,192``; ``input_shapes=`` in
  Python): without the batch dimension when the model has one; the full shape is accepted
  too (its rank tells them apart), its first entry standing for the batch dimension,
  which the batch sizes measured then fill; calls carry seeded random values;
- ``signature``: the signature itself, when every dimension besides the batch is fixed.

An input with dynamic dimensions and neither of the first two is refused (ConfigError
naming the input, its dimensions and the flags to add). A model without a batch dimension
takes whole shapes and is timed once, at one call per request.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tierwise.bench.evalset import EvalMatch, EvalSet
from tierwise.bench.profiles import InputSource, TimedInput
from tierwise.errors import ConfigError
from tierwise.protocol import dtype_of
from tierwise.runtime import Signature, TensorSpec

__all__ = ["MAX_SAMPLE_ELEMENTS", "TimedInputs", "plan_inputs"]

#: Largest sample (one row, or one call without a batch dimension) a shape may ask for.
MAX_SAMPLE_ELEMENTS = 1 << 28
_FLAG = "--input-shape"
_MAX_DIM = 1 << 24


def _render(spec: TensorSpec) -> str:
    dims = [
        str(d) if d >= 0 else ((spec.symbols[i] if spec.symbols else None) or "?")
        for i, d in enumerate(spec.shape)
    ]
    return f"[{', '.join(dims)}]"


def _placeholder(spec: TensorSpec, axis: int) -> str:
    symbol = spec.symbols[axis] if spec.symbols is not None else None
    return f"<{symbol}>" if symbol else f"<axis{axis}>"


def _refusal(spec: TensorSpec, model: str, batched: bool, why_unbatched: str | None) -> str:
    start = 1 if batched else 0
    loose = [i for i in range(start, len(spec.shape)) if spec.shape[i] < 0]
    named = ", ".join(
        f"{spec.symbols[i]!r} (axis {i})" if spec.symbols and spec.symbols[i] else f"axis {i}"
        for i in loose
    )
    example = ",".join(
        str(d) if d >= 0 else _placeholder(spec, i) for i, d in enumerate(spec.shape) if i >= start
    )
    why = (
        "not its batch dimension"
        if batched
        else f"the model has no batch dimension: {why_unbatched}"
    )
    form = "the shape without the batch dimension" if batched else "the whole shape"
    return (
        f"sizes for the dynamic dimensions {named} of input {spec.name!r} {_render(spec)} of "
        f"{model!r} ({why}; sizes are never guessed): add {_FLAG} {spec.name}={example} "
        f"({form}), or --eval FILE.npz with an array {spec.name!r} of samples"
    )


def _fits(want: Sequence[int], got: Sequence[int]) -> bool:
    return len(want) == len(got) and all(w < 0 or w == g for w, g in zip(want, got, strict=True))


def _given_shape(
    spec: TensorSpec, given: Sequence[int], model: str, batched: bool
) -> tuple[int, ...]:
    """The flag's shape for ``spec``, without the batch dimension when ``batched``."""
    shape = tuple(given)
    if any(
        isinstance(d, bool) or not isinstance(d, int | np.integer) or not 1 <= d <= _MAX_DIM
        for d in shape
    ):
        raise ConfigError("input_shapes", f"sizes in [1, {_MAX_DIM}] for {spec.name!r}", shape)
    shape = tuple(int(d) for d in shape)
    if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        raise ConfigError(
            "input_shapes", f"at most {MAX_SAMPLE_ELEMENTS} elements in {spec.name!r}", shape
        )
    tail = spec.shape[1:] if batched else spec.shape
    if batched and len(shape) == len(spec.shape):
        shape = shape[1:]  # a full shape: its first entry is the batch dimension
    if not _fits(tail, shape):
        form = "without the batch dimension" if batched else "the whole shape"
        raise ConfigError(
            "input_shapes",
            f"a shape of input {spec.name!r} of {model!r} that fits {_render(spec)} ({form}, "
            f"{len(tail)} sizes{', or the full shape' if batched else ''})",
            list(given),
        )
    return shape


def _eval_shape(spec: TensorSpec, array: np.ndarray, model: str, batched: bool) -> tuple[int, ...]:
    shape = tuple(int(d) for d in array.shape[1:])
    tail = spec.shape[1:] if batched else spec.shape
    if not _fits(tail, shape):
        form = "rows, the shape without the batch dimension" if batched else "whole inputs"
        raise ConfigError(
            "eval",
            f"samples of input {spec.name!r} of {model!r} shaped to fit {_render(spec)} "
            f"({form}: {len(tail)} sizes)",
            list(shape),
        )
    dtype = dtype_of(spec.datatype)
    ok = (
        array.dtype.kind in "OSU"
        if spec.datatype == "BYTES"
        else np.can_cast(array.dtype, dtype, casting="same_kind")
    )
    if not ok:
        raise ConfigError(
            "eval",
            f"samples of input {spec.name!r} that convert to {spec.datatype}",
            str(array.dtype),
        )
    return shape


def _as_input(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.datatype == "BYTES":
        flat = [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel()]
        return np.array(flat, dtype=object).reshape(array.shape)
    return np.ascontiguousarray(array.astype(dtype_of(spec.datatype), copy=False))


@dataclass(frozen=True)
class TimedInputs:
    """The inputs of one model as a measurement feeds them. ``shapes`` are without the
    batch dimension when ``batched``; ``evaluation`` holds the eval set matched to the
    model, when there is one (it then feeds every input)."""

    model: str
    specs: tuple[TensorSpec, ...]
    batched: bool
    shapes: Mapping[str, tuple[int, ...]]
    sources: Mapping[str, InputSource]
    evaluation: EvalMatch | None

    def batch_sizes(self, wanted: Sequence[int]) -> list[int]:
        """``wanted`` (sorted) with a batch dimension; else one size: the rows of a call
        when every input's first dimension agrees, or 1."""
        if self.batched:
            return sorted(wanted)
        firsts = {shape[0] if shape else None for shape in self.shapes.values()}
        first = firsts.pop() if len(firsts) == 1 else None
        return [first if first else 1]

    def feeds(self, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One call's inputs at ``batch`` rows (ignored without a batch dimension):
        samples of the eval set, cycled, when there is one (without a batch dimension, its
        first sample), else seeded random values (zeros for non-float datatypes)."""
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            if self.evaluation is not None:
                array = self.evaluation.inputs[spec.name]
                if self.batched:
                    take = np.resize(np.arange(array.shape[0]), batch)
                    out[spec.name] = _as_input(array[take], spec)
                else:
                    out[spec.name] = _as_input(array[0], spec)
                continue
            shape = (batch, *self.shapes[spec.name]) if self.batched else self.shapes[spec.name]
            dtype = dtype_of(spec.datatype)
            if spec.datatype == "BYTES":
                out[spec.name] = np.full(shape, b"", dtype=object)
            elif dtype.kind == "f":
                out[spec.name] = rng.standard_normal(shape).astype(dtype)
            else:
                out[spec.name] = np.zeros(shape, dtype=dtype)
        return out

    def eval_chunks(self, rows: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """The eval set in calls of at most ``rows`` rows with their labels, for the
        accuracy; none without labels or a batch dimension."""
        match = self.evaluation
        if match is None or match.labels is None or not self.batched:
            return
        for start in range(0, match.samples, rows):
            feeds = {
                spec.name: _as_input(match.inputs[spec.name][start : start + rows], spec)
                for spec in self.specs
            }
            yield feeds, match.labels[start : start + rows]

    def record(self) -> list[TimedInput]:
        """What ``profiles.json`` records about the inputs."""
        return [
            TimedInput(
                name=spec.name,
                datatype=spec.datatype,
                shape=list(self.shapes[spec.name]),
                batched=self.batched,
                source=self.sources[spec.name],
            )
            for spec in self.specs
        ]


def plan_inputs(
    signature: Signature,
    *,
    model: str,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    eval_set: EvalSet | None = None,
) -> TimedInputs:
    """Decide every input's shape (see the module docstring); ConfigError naming the input
    when one cannot be decided or a given shape or eval array does not fit."""
    given = dict(input_shapes or {})
    specs = signature.inputs
    known = [spec.name for spec in specs]
    unknown = [name for name in given if name not in known]
    if unknown:
        raise ConfigError(
            "input_shapes", f"inputs of {model!r} ({', '.join(known) or 'none'})", unknown
        )
    batched = signature.batch_dynamic
    match = eval_set.match(specs, model) if eval_set is not None else None
    shapes: dict[str, tuple[int, ...]] = {}
    sources: dict[str, InputSource] = {}
    for spec in specs:
        if match is not None:
            shape = _eval_shape(spec, match.inputs[spec.name], model, batched)
            if spec.name in given and _given_shape(spec, given[spec.name], model, batched) != shape:
                raise ConfigError(
                    "input_shapes",
                    f"the shape of the eval samples of {spec.name!r} ({list(shape)}), or no "
                    f"{_FLAG} for it (the eval set's samples are what is timed)",
                    list(given[spec.name]),
                )
            shapes[spec.name], sources[spec.name] = shape, "eval"
        elif spec.name in given:
            shape = _given_shape(spec, given[spec.name], model, batched)
            shapes[spec.name], sources[spec.name] = shape, "flag"
        else:
            tail = spec.shape[1:] if batched else spec.shape
            if any(d < 0 for d in tail):
                raise ConfigError(
                    "input_shapes", _refusal(spec, model, batched, signature.batch_problem)
                )
            shapes[spec.name], sources[spec.name] = tuple(tail), "signature"
    return TimedInputs(model, tuple(specs), batched, shapes, sources, match)
