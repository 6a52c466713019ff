"""Streams of zoo digits for drift checks and benchmarks.

:func:`drift_stream` draws rows the way the zoo's held-out split was made (the same
held-out source images, corrupted afresh), so with the defaults it is unshifted traffic
for every variant's reference. ``severity`` above 1 makes it more corrupted than the
models were checked on; ``class_mix`` changes how often each digit comes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tierwise.errors import ConfigError
from tierwise.telemetry.drift import DriftMonitor, DriftSettings, Reference
from tierwise.zoo.build import split_rng
from tierwise.zoo.data import NUM_CLASSES, corrupt, load_splits, source_images
from tierwise.zoo.export import INPUT_NAME, PROBABILITIES_NAME
from tierwise.zoo.manifest import Zoo, load_zoo

__all__ = [
    "NO_SHIFT",
    "SHIFTS",
    "Shift",
    "detection_trial",
    "drift_stream",
    "eval_sources",
    "false_alarm_share",
]

_INPUT, _SCORES = INPUT_NAME, PROBABILITIES_NAME


@functools.lru_cache(maxsize=4)
def eval_sources(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The clean held-out images (float32 ``[N, 8, 8]``, read-only) and their labels that
    the eval split of the zoo built with ``seed`` was corrupted from."""
    splits = load_splits(split_rng(seed))
    images, labels = source_images()
    held_x, held_y = images[splits.eval_index], labels[splits.eval_index]
    held_x.flags.writeable = held_y.flags.writeable = False
    return held_x, held_y


def _class_weights(class_mix: Sequence[float] | Mapping[int, float]) -> np.ndarray:
    if isinstance(class_mix, Mapping):
        unknown = [c for c in class_mix if not (isinstance(c, int) and 0 <= c < NUM_CLASSES)]
        if unknown:
            raise ConfigError("class_mix", f"classes 0..{NUM_CLASSES - 1}", unknown)
        values = [float(class_mix.get(c, 0.0)) for c in range(NUM_CLASSES)]
    else:
        values = [float(v) for v in class_mix]
    if len(values) != NUM_CLASSES or not all(math.isfinite(v) and v >= 0 for v in values):
        raise ConfigError("class_mix", f"{NUM_CLASSES} weights >= 0, one per digit", class_mix)
    total = sum(values)
    if total <= 0:
        raise ConfigError("class_mix", "at least one positive weight", class_mix)
    return np.asarray(values, dtype=np.float64) / total


def drift_stream(
    zoo: str | Path | Zoo,
    *,
    rows: int,
    seed: int,
    severity: float = 1.0,
    class_mix: Sequence[float] | Mapping[int, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` digits (float32 ``[rows, 8, 8]``) and their labels, drawn with ``seed``
    from the held-out images of ``zoo`` (a directory or a loaded zoo) and corrupted at
    ``severity`` (1.0: as in the eval split). ``class_mix`` gives each digit a weight (a
    sequence of ten, or digit to weight); None keeps the held-out split's mix."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigError("rows", "an integer >= 1", rows)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", "a non-negative integer", seed)
    loaded = zoo if isinstance(zoo, Zoo) else load_zoo(zoo)
    images, labels = eval_sources(loaded.seed)
    rng = np.random.default_rng(seed)
    if class_mix is None:
        picked = rng.integers(0, labels.size, size=rows)
    else:
        digits = rng.choice(NUM_CLASSES, size=rows, p=_class_weights(class_mix))
        picked = np.empty(rows, dtype=np.int64)
        for digit in range(NUM_CLASSES):
            where = np.flatnonzero(digits == digit)
            members = np.flatnonzero(labels == digit)
            if where.size and not members.size:
                raise ConfigError("class_mix", "weights only for digits the zoo holds", digit)
            if where.size:
                picked[where] = members[rng.integers(0, members.size, size=where.size)]
    x = corrupt(images[picked], rng, severity=severity)
    return x, labels[picked].copy()


@dataclass(frozen=True)
class Shift:
    """A change of traffic: corruption ``severity`` (1.0: as in the eval split) and the
    digits' ``class_mix`` (None: the held-out mix); the default is no shift."""

    severity: float = 1.0
    class_mix: Sequence[float] | Mapping[int, float] | None = None


NO_SHIFT = Shift()
#: The named shifts the drift checks inject: corruption raised to 2.5 times the eval
#: split's, and traffic of digits 0-2 only.
SHIFTS: dict[str, Shift] = {
    "severity": Shift(severity=2.5),
    "class_mix": Shift(class_mix={0: 1.0, 1: 1.0, 2: 1.0}),
}


def _shift(shift: Shift | str) -> Shift:
    if isinstance(shift, Shift):
        return shift
    if shift not in SHIFTS:
        raise ConfigError("shift", f"a Shift or one of {', '.join(SHIFTS)}", shift)
    return SHIFTS[shift]


@functools.lru_cache(maxsize=16)
def _session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _monitor(loaded: Zoo, variant: str, settings: DriftSettings | None) -> DriftMonitor:
    path = loaded.reference_path(variant)
    if path is None:
        raise ConfigError("zoo", f"a zoo whose variant {variant!r} has a drift reference")
    return DriftMonitor(Reference.load(path), settings)


def _feed(
    monitor: DriftMonitor, loaded: Zoo, variant: str, images: np.ndarray, batch_rows: int
) -> Iterator[int]:
    """Run the variant on ``images`` batch by batch, let ``monitor`` observe each batch,
    and yield the rows fed so far after every batch that triggered a comparison."""
    session = _session(str(loaded.model_path(variant)))
    fed = 0
    for start in range(0, images.shape[0], batch_rows):
        batch = images[start : start + batch_rows]
        (probabilities,) = session.run([_SCORES], {_INPUT: batch})
        windows = monitor.windows
        monitor.observe({_INPUT: batch}, {_SCORES: np.asarray(probabilities)})
        fed += batch.shape[0]
        if monitor.windows > windows:
            yield fed


def detection_trial(
    zoo: str | Path | Zoo,
    variant: str,
    *,
    seed: int,
    shift: Shift | str,
    max_rows: int = 500,
    batch_rows: int = 10,
    settings: DriftSettings | None = None,
) -> int | None:
    """Rows of shifted traffic a variant's monitor sees before it alerts (level 2), or
    None when it has not alerted after ``max_rows``. The monitor first sees one window
    of unshifted traffic, then ``shift`` (a :class:`Shift` or a name in :data:`SHIFTS`),
    both drawn from ``seed``, in batches of ``batch_rows``: what a tier sees when its
    traffic changes."""
    change = _shift(shift)
    loaded = zoo if isinstance(zoo, Zoo) else load_zoo(zoo)
    monitor = _monitor(loaded, variant, settings)
    before, _ = drift_stream(loaded, rows=monitor.settings.window_rows, seed=2 * seed)
    for _ in _feed(monitor, loaded, variant, before, batch_rows):
        pass
    after, _ = drift_stream(
        loaded,
        rows=max_rows,
        seed=2 * seed + 1,
        severity=change.severity,
        class_mix=change.class_mix,
    )
    for fed in _feed(monitor, loaded, variant, after, batch_rows):
        if monitor.level() == 2:
            return fed
    return None


def false_alarm_share(
    zoo: str | Path | Zoo,
    variant: str,
    *,
    seed: int,
    rows: int,
    batch_rows: int = 10,
    settings: DriftSettings | None = None,
) -> tuple[int, int]:
    """``(alerting windows, windows)`` of a variant's monitor over ``rows`` rows of
    unshifted traffic drawn with ``seed``."""
    loaded = zoo if isinstance(zoo, Zoo) else load_zoo(zoo)
    monitor = _monitor(loaded, variant, settings)
    images, _ = drift_stream(loaded, rows=rows, seed=seed)
    for _ in _feed(monitor, loaded, variant, images, batch_rows):
        pass
    return monitor.alerts, monitor.windows
