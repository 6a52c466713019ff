"""The backend contract every runtime implements, and model signatures in V2 terms."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from tierwise.errors import ConfigError, InferenceInputError, ModelNotReadyError
from tierwise.protocol.datatypes import datatype_of, dtype_of

__all__ = ["Backend", "Signature", "TensorSpec"]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output: its name, V2 datatype and shape (-1 marks a dynamic dimension).

    ``symbols`` holds, for each dimension, the model's symbolic name of a dynamic one
    (``"batch"``, ``"height"``; None for a fixed or unnamed one), or is None as a whole
    when the names are unknown (a signature read from V2 metadata). It is not part of the
    V2 contract, so equality and :meth:`to_dict` leave it out.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    symbols: tuple[str | None, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.symbols is not None and len(self.symbols) != len(self.shape):
            raise ConfigError(
                "symbols", f"one entry per dimension of {self.name!r} ({len(self.shape)})",
                len(self.symbols),
            )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["datatype"]), tuple(int(d) for d in data["shape"]))

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        """True when ``shape`` has this spec's rank and matches every fixed dimension."""
        if len(shape) != len(self.shape):
            return False
        return all(want < 0 or want == got for want, got in zip(self.shape, shape, strict=True))


@dataclass(frozen=True)
class Signature:
    """A model's inputs and outputs, in the order the model declares them."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
        )

    @property
    def batch_dynamic(self) -> bool:
        """True when requests may be concatenated along the first dimension (batchable):
        see :attr:`batch_problem`."""
        return self.batch_problem is None

    @cached_property
    def batch_problem(self) -> str | None:
        """Why requests may not be merged along axis 0, or None when they may: every input
        and output must have a dynamic first dimension, and where the model names those
        dimensions, the same name on all that are named (the batch dimension). A state shaped
        ``[2, batch, 128]``, a 0-d input or an output with its own first dimension (a
        detection count) all rule merging out."""
        tensors = [("input", t) for t in self.inputs] + [("output", t) for t in self.outputs]
        if not tensors:
            return "the model declares no inputs or outputs"
        batch: tuple[str, str] | None = None  # (symbol, the tensor that set it)
        for kind, spec in tensors:
            where = f"{kind} {spec.name!r}"
            if not spec.shape:
                return f"{where} is a scalar (0-d), so it has no batch dimension"
            if spec.shape[0] >= 0:
                return f"{where} has a fixed first dimension ({spec.shape[0]})"
            # names unknown (V2 metadata) or left out (skl2onnx's [None, n]): nothing says
            # this is not the batch dimension, so only named dimensions must agree
            symbol = None if spec.symbols is None else spec.symbols[0]
            if symbol is None:
                continue
            if batch is None:
                batch = (symbol, where)
            elif symbol != batch[0]:
                return f"{where} has first dimension {symbol!r}, but {batch[1]} has {batch[0]!r}"
        return None

    @cached_property
    def _expected(
        self,
    ) -> tuple[tuple[str, np.dtype[np.generic], tuple[int, ...], tuple[int, ...] | None], ...]:
        # (name, dtype, shape, the fixed tail when only the first dimension is dynamic)
        return tuple(
            (
                t.name,
                dtype_of(t.datatype),
                t.shape,
                t.shape[1:] if t.shape and all(d >= 0 for d in t.shape[1:]) else None,
            )
            for t in self.inputs
        )

    @cached_property
    def _all_outputs(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def check_inputs(self, model: str, inputs: Mapping[str, np.ndarray]) -> None:
        """Raise InferenceInputError naming the tensor when ``inputs`` do not fit."""
        if len(inputs) == len(self._expected):
            for name, dtype, shape, tail in self._expected:
                array = inputs.get(name)
                if array is None or array.dtype != dtype or len(array.shape) != len(shape):
                    break
                if tail is not None:
                    if array.shape[1:] != tail or (shape[0] >= 0 and array.shape[0] != shape[0]):
                        break
                elif any(w >= 0 and w != g for w, g in zip(shape, array.shape, strict=True)):
                    break
            else:
                return
        self._explain_mismatch(model, inputs)

    def _explain_mismatch(self, model: str, inputs: Mapping[str, np.ndarray]) -> None:
        known = {t.name for t in self.inputs}
        for name in inputs:
            if name not in known:
                raise InferenceInputError(
                    f"unknown input; the model takes {', '.join(sorted(known))}",
                    model=model,
                    tensor=name,
                )
        for spec in self.inputs:
            array = inputs.get(spec.name)
            if array is None:
                raise InferenceInputError("missing input", model=model, tensor=spec.name)
            got = datatype_of(array, tensor=spec.name)
            if got != spec.datatype:
                raise InferenceInputError(
                    f"expected datatype {spec.datatype}, got {got}", model=model, tensor=spec.name
                )
            if not spec.accepts_shape(array.shape):
                raise InferenceInputError(
                    f"expected shape {list(spec.shape)} (-1 is any), got {list(array.shape)}",
                    model=model,
                    tensor=spec.name,
                )

    def output_names(self, requested: Sequence[str] | None, model: str) -> Sequence[str]:
        """The outputs to compute: all of them, or the requested subset checked by name."""
        names = self._all_outputs
        if requested is None:
            return names
        for name in requested:
            if name not in names:
                raise InferenceInputError(
                    f"unknown output requested; the model produces {', '.join(names)}",
                    model=model,
                    tensor=name,
                    kind="output",
                )
        return list(requested)

    def example_inputs(self, batch_size: int = 1) -> dict[str, np.ndarray]:
        """Zero-filled inputs that fit the signature; dynamic dimensions become ``batch_size``
        for the first and 1 elsewhere. For timing runs; the server's warm-up does not guess
        dimensions this way (see :mod:`tierwise.runtime.warmup`)."""
        out: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            shape = tuple(
                (batch_size if i == 0 else 1) if d < 0 else d for i, d in enumerate(spec.shape)
            )
            dtype = dtype_of(spec.datatype)
            if spec.datatype == "BYTES":
                out[spec.name] = np.full(shape, b"", dtype=object)
            else:
                out[spec.name] = np.zeros(shape, dtype=dtype)
        return out


class Backend(abc.ABC):
    """One loaded model on one runtime.

    Override points: :meth:`load`, :meth:`predict`, :meth:`unload` and :attr:`signature`.
    ``predict`` receives inputs already checked against the signature by :meth:`infer`,
    which is what callers use.
    """

    #: the runtime's name in config (e.g. ``onnxruntime``)
    runtime: str = "base"

    def __init__(self, name: str) -> None:
        self.name = name
        self._loaded = False
        #: why the last load ran no warm-up although warm-up is on (None when it ran)
        self.warmup_note: str | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    @abc.abstractmethod
    def signature(self) -> Signature:
        """Inputs and outputs in V2 terms; valid once loaded."""

    @abc.abstractmethod
    async def load(self) -> None:
        """Load the model and warm it up; raise ModelLoadError when it cannot be loaded or
        its warm-up fails, and set :attr:`warmup_note` when it skips the warm-up."""

    @abc.abstractmethod
    async def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Run the model on checked inputs and return the named outputs."""

    @abc.abstractmethod
    async def unload(self) -> None:
        """Release the model's resources."""

    async def infer(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Check ``inputs`` against the signature, then run :meth:`predict`."""
        if not self._loaded:
            raise ModelNotReadyError(model=self.name, reason="not loaded")
        signature = self.signature
        signature.check_inputs(self.name, inputs)
        return await self.predict(inputs, signature.output_names(outputs, self.name))
