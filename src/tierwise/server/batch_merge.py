"""Pure functions of dynamic batching: which requests may be merged, merging them along
the batch dimension, and splitting the results back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tierwise.errors import BatchError

__all__ = ["Tensors", "batch_key", "batch_rows", "merge", "split"]

Tensors = dict[str, np.ndarray]


def batch_key(inputs: Mapping[str, np.ndarray]) -> tuple[object, ...]:
    """Requests with equal keys can be concatenated: same names, dtypes and trailing dims."""
    if len(inputs) == 1:
        ((name, a),) = inputs.items()
        return (name, a.dtype.char, a.shape[1:])
    return tuple((name, a.dtype.char, a.shape[1:]) for name, a in sorted(inputs.items()))


def batch_rows(inputs: Mapping[str, np.ndarray]) -> int | None:
    """The request's row count: the first dimension every input shares, or None when
    they disagree (or one is 0-d); such a request is never merged with another."""
    rows: int | None = None
    for array in inputs.values():
        if not array.ndim:
            return None
        if rows is None:
            rows = int(array.shape[0])
        elif array.shape[0] != rows:
            return None
    return rows


def merge(requests: Sequence[Mapping[str, np.ndarray]]) -> tuple[Tensors, list[int]]:
    """Concatenate requests along the first dimension; returns the batch and each row count."""
    if not requests:
        raise BatchError("cannot merge an empty batch")
    first = requests[0]
    sizes = [int(next(iter(r.values())).shape[0]) if r else 0 for r in requests]
    if len(requests) == 1:
        return dict(first), sizes
    merged = {name: np.concatenate([r[name] for r in requests], axis=0) for name in first}
    return merged, sizes


def split(outputs: Mapping[str, np.ndarray], sizes: Sequence[int]) -> list[Tensors]:
    """Cut batched outputs back into one dict per request; checks the result count."""
    total = sum(sizes)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} rows"
            raise BatchError(f"output {name!r} has {got} for a batch of {total} rows")
    if len(sizes) == 1:
        return [dict(outputs)]
    parts: list[Tensors] = []
    start = 0
    for size in sizes:
        end = start + size
        parts.append({name: array[start:end] for name, array in outputs.items()})
        start = end
    return parts
