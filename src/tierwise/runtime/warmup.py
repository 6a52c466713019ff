"""Warm-up inputs that never guess a dimension.

A model is warmed up with the inputs its ``config.yaml`` declares (``warmup:``, in the
spirit of Triton's ``model_warmup``), or else with inputs derived from its signature, but
only when every dimension is known: fixed, or the batch dimension (filled with 1). A
model with other dynamic dimensions (a detector's ``height`` and ``width``, an audio
model's ``samples``) is loaded without warm-up, because a guessed size (1) is invalid
for many real models (an upsample concatenated with an earlier feature map, a
reflect-padded STFT) and would fail a model that serves real inputs correctly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tierwise.errors import ConfigError
from tierwise.protocol.datatypes import DATATYPES
from tierwise.runtime.base import Signature, TensorSpec

__all__ = ["MAX_WARMUP_ELEMENTS", "WarmupInput", "WarmupPlan", "WarmupSample", "plan_warmup"]

#: Largest tensor a declared warm-up input may ask for (elements).
MAX_WARMUP_ELEMENTS = 1 << 26

Tensors = dict[str, np.ndarray]
_FILLS = ("zeros", "random")


class WarmupInput(BaseModel):
    """One declared warm-up tensor: its shape, V2 datatype and what fills it (``zeros``,
    seeded ``random`` values, or a number such as a sample rate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: list[int] = Field(max_length=16)
    datatype: str
    fill: Literal["zeros", "random"] | float = "zeros"

    @field_validator("shape")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if any(d < 0 for d in value):
            raise ValueError("every dimension must be >= 0 (warm-up shapes are concrete)")
        if math.prod(value) > MAX_WARMUP_ELEMENTS:
            raise ValueError(f"at most {MAX_WARMUP_ELEMENTS} elements")
        return value

    @field_validator("fill", mode="before")
    @classmethod
    def _fill_kind(cls, value: object) -> object:
        if isinstance(value, bool) or (isinstance(value, str) and value not in _FILLS):
            raise ValueError("expected zeros, random or a number")
        return value

    @field_validator("datatype")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in DATATYPES:
            raise ValueError(f"expected one of {', '.join(DATATYPES)}")
        return value

    @model_validator(mode="after")
    def _fill_fits(self) -> WarmupInput:
        fill = self.fill
        if isinstance(fill, str) or self.datatype == "BYTES":
            return self
        dtype = DATATYPES[self.datatype]
        if not math.isfinite(fill):
            raise ValueError("fill must be zeros, random or a finite number")
        if dtype.kind in "iub":
            low, high = (0, 1) if dtype.kind == "b" else _int_range(dtype)
            if fill != int(fill) or not low <= fill <= high:
                raise ValueError(
                    f"fill {fill:g} is not a whole number from {low} to {high} ({self.datatype})"
                )
        return self

    def array(self, rng: np.random.Generator) -> np.ndarray:
        """The tensor this declaration describes."""
        return _filled(tuple(self.shape), self.datatype, self.fill, rng)


class WarmupSample(BaseModel):
    """One declared warm-up request: a tensor for every input of the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: dict[str, WarmupInput] = Field(min_length=1)


def _int_range(dtype: np.dtype[Any]) -> tuple[int, int]:
    info = np.iinfo(dtype.type)
    return int(info.min), int(info.max)


def _filled(
    shape: tuple[int, ...], datatype: str, fill: str | float, rng: np.random.Generator
) -> np.ndarray:
    dtype = DATATYPES[datatype]
    if datatype == "BYTES":
        if fill == "random":
            values = [str(v).encode() for v in rng.integers(0, 1000, size=shape).ravel()]
            return np.array(values, dtype=object).reshape(shape)
        text = b"" if fill == "zeros" else f"{fill:g}".encode()
        return np.full(shape, text, dtype=object)
    if fill == "zeros":
        return np.zeros(shape, dtype=dtype)
    if fill == "random":
        if dtype.kind == "f":
            return rng.random(shape).astype(dtype)
        if dtype.kind == "b":
            return rng.integers(0, 2, size=shape).astype(bool)
        high = min(_int_range(dtype)[1], 255)
        return rng.integers(0, high, size=shape, endpoint=True).astype(dtype)
    return np.full(shape, fill, dtype=dtype)


@dataclass(frozen=True, slots=True)
class WarmupPlan:
    """What a load runs to warm a model up: ``feeds`` (one dict of inputs per warm-up
    request) and where they came from, or ``skipped`` saying why there are none."""

    feeds: tuple[Tensors, ...]
    source: str
    skipped: str | None = None

    def describe(self, index: int) -> str:
        """The shapes of warm-up request ``index``, for messages."""
        return ", ".join(
            f"{name} {_datatype_name(array)} {list(array.shape)}"
            for name, array in self.feeds[index].items()
        )


def _datatype_name(array: np.ndarray) -> str:
    for name, dtype in DATATYPES.items():
        if array.dtype == dtype:
            return name
    return str(array.dtype)


def _declared(signature: Signature, index: int, sample: WarmupSample) -> Tensors:
    """Check one declared sample against the signature; ConfigError names the field."""
    where = f"warmup.{index}.inputs"
    specs = {spec.name: spec for spec in signature.inputs}
    for name in sample.inputs:
        if name not in specs:
            raise ConfigError(
                f"{where}.{name}", f"an input of the model ({', '.join(specs)})", name
            )
    missing = [name for name in specs if name not in sample.inputs]
    if missing:
        raise ConfigError(where, f"a tensor for every input of the model; missing {missing}")
    rng = np.random.default_rng(index)
    feeds: Tensors = {}
    for name, spec in specs.items():
        declared = sample.inputs[name]
        if declared.datatype != spec.datatype:
            raise ConfigError(
                f"{where}.{name}.datatype", f"{spec.datatype}, the model's", declared.datatype
            )
        if not spec.accepts_shape(declared.shape):
            raise ConfigError(
                f"{where}.{name}.shape",
                f"a shape the model takes, {list(spec.shape)} (-1 is any size)",
                declared.shape,
            )
        feeds[name] = declared.array(rng)
    return feeds


def _dims(spec: TensorSpec, axes: Sequence[int]) -> str:
    names = []
    for axis in axes:
        symbol = spec.symbols[axis] if spec.symbols is not None else None
        names.append(f"{symbol!r} (axis {axis})" if symbol else f"axis {axis}")
    return ", ".join(names)


def _derived(signature: Signature) -> Tensors | str:
    """Zero inputs when every dimension is known, else why not."""
    batchable = signature.batch_dynamic
    feeds: Tensors = {}
    for spec in signature.inputs:
        loose = [i for i, d in enumerate(spec.shape) if d < 0 and not (i == 0 and batchable)]
        if loose:
            if batchable:
                return (
                    f"input {spec.name!r} has dynamic dimensions besides the batch "
                    f"dimension: {_dims(spec, loose)}"
                )
            return (
                f"input {spec.name!r} has dynamic dimensions ({_dims(spec, loose)}) and the "
                f"model has no batch dimension to fill ({signature.batch_problem})"
            )
        shape = tuple(1 if d < 0 else d for d in spec.shape)
        feeds[spec.name] = _filled(shape, spec.datatype, "zeros", np.random.default_rng(0))
    return feeds


def plan_warmup(signature: Signature, declared: Sequence[WarmupSample] = ()) -> WarmupPlan:
    """The warm-up for a model: its declared samples (checked against ``signature``;
    ConfigError names the field at fault), or inputs derived from ``signature`` when
    every dimension is known, or none, with the reason."""
    if declared:
        feeds = tuple(_declared(signature, i, sample) for i, sample in enumerate(declared))
        return WarmupPlan(feeds, "config.yaml warmup")
    derived = _derived(signature)
    if isinstance(derived, str):
        return WarmupPlan((), "none", skipped=derived)
    return WarmupPlan((derived,), "the signature (batch of 1)")
