"""Measure ONNX variants on this machine: latency per batch size, throughput, peak memory
and accuracy, for each execution provider; the results make a :class:`ProfileSet`.

Each variant runs in its own onnxruntime session (``intra_op_threads`` threads, one caller
at a time). Every batch size is warmed up before it is timed. Inputs are rows of the zoo's
held-out split when they fit the model, else seeded random values of the model's
signature. A model whose first dimension is fixed is measured at that batch size only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tierwise.bench.host import PeakMemory, host_info
from tierwise.bench.latency import measure_latency
from tierwise.bench.profiles import (
    BatchLatency,
    Host,
    ProfileSet,
    ProfileSettings,
    VariantProfile,
)
from tierwise.errors import ConfigError, ModelLoadError
from tierwise.protocol import dtype_of
from tierwise.runtime import Signature, resolve_providers
from tierwise.runtime.onnx import PROVIDER_ALIASES, _signature_of
from tierwise.zoo.files import sha256_of

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "MeasureSettings",
    "default_providers",
    "profile_files",
    "profile_model",
    "profile_zoo",
]

#: Batch sizes measured when none are given.
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 8, 32, 64)
_EVAL_CHUNK_ROWS = 512
_MAX_BATCH = 65_536


@dataclass(frozen=True)
class MeasureSettings:
    """How each variant is measured: batch sizes, timed runs per batch size (stopping
    early after ``max_seconds_per_batch``), untimed warm-up runs, onnxruntime threads."""

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    runs: int = 200
    warmup_runs: int = 10
    max_seconds_per_batch: float = 2.0
    intra_op_threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        sizes = self.batch_sizes
        if not sizes or any(
            isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= _MAX_BATCH for b in sizes
        ):
            raise ConfigError("batch_sizes", f"whole numbers in [1, {_MAX_BATCH}]", list(sizes))
        if len(set(sizes)) != len(sizes):
            raise ConfigError("batch_sizes", "distinct sizes", list(sizes))
        if self.runs < 1:
            raise ConfigError("runs", "a whole number >= 1", self.runs)
        if self.warmup_runs < 0:
            raise ConfigError("warmup_runs", "a whole number >= 0", self.warmup_runs)
        if not self.max_seconds_per_batch > 0:
            raise ConfigError("max_seconds_per_batch", "a number > 0", self.max_seconds_per_batch)
        if self.intra_op_threads < 0:
            raise ConfigError("intra_op_threads", "a whole number >= 0", self.intra_op_threads)

    def record(self) -> ProfileSettings:
        return ProfileSettings(
            runs=self.runs,
            warmup_runs=self.warmup_runs,
            max_seconds_per_batch=self.max_seconds_per_batch,
            intra_op_threads=self.intra_op_threads,
        )


def default_providers() -> list[str]:
    """``cpu``, and ``cuda`` when this onnxruntime build offers it."""
    available = ort.get_available_providers()
    return [p for p in ("cpu", "cuda") if PROVIDER_ALIASES[p] in available]


def _open(path: Path, provider: str, threads: int, variant: str) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelLoadError(f"no model file at {path}", model=variant)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"onnxruntime could not load {path}: {exc}", model=variant) from exc


def _batch_sizes(signature: Signature, wanted: Sequence[int]) -> list[int]:
    fixed = {t.shape[0] for t in signature.inputs if t.shape and t.shape[0] >= 0}
    if not signature.inputs or any(not t.shape for t in signature.inputs):
        return [1]
    if fixed:
        return [min(fixed)]
    return sorted(wanted)


def _feeds(
    signature: Signature,
    batch: int,
    rows: np.ndarray | None,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    feeds = signature.example_inputs(batch)
    for spec in signature.inputs:
        array = feeds[spec.name]
        if rows is not None and len(signature.inputs) == 1 and rows.shape[1:] == array.shape[1:]:
            take = np.resize(np.arange(rows.shape[0]), batch)
            feeds[spec.name] = np.ascontiguousarray(rows[take].astype(array.dtype, copy=False))
        elif array.dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(array.shape).astype(array.dtype)
    return feeds


def _predicted(outputs: Mapping[str, np.ndarray], rows: int) -> np.ndarray | None:
    label = outputs.get("label")
    if label is not None and label.reshape(-1).shape[0] == rows:
        return label.reshape(-1)
    for name in ("probabilities", *outputs):
        value = outputs.get(name)
        if value is not None and value.ndim == 2 and value.shape[0] == rows and value.shape[1] > 1:
            return np.asarray(value.argmax(axis=1))
    return None


def _accuracy(
    session: ort.InferenceSession, signature: Signature, x: np.ndarray, y: np.ndarray
) -> float | None:
    if len(signature.inputs) != 1 or x.shape[0] != y.shape[0]:
        return None
    spec = signature.inputs[0]
    if not spec.accepts_shape((1, *x.shape[1:])) or spec.shape[0] >= 0:
        return None
    names = [t.name for t in signature.outputs]
    right = 0
    for start in range(0, x.shape[0], _EVAL_CHUNK_ROWS):
        chunk = x[start : start + _EVAL_CHUNK_ROWS].astype(dtype_of(spec.datatype), copy=False)
        values = session.run(names, {spec.name: chunk})
        predicted = _predicted(dict(zip(names, values, strict=True)), chunk.shape[0])
        if predicted is None:
            return None
        right += int((predicted == y[start : start + chunk.shape[0]]).sum())
    return float(right / x.shape[0])


def profile_model(
    path: str | Path,
    *,
    variant: str,
    model: str | None = None,
    provider: str = "cpu",
    settings: MeasureSettings | None = None,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> VariantProfile:
    """Measure one ONNX file with one execution provider (``cpu``, ``cuda``... or a full
    onnxruntime name). ``eval_data`` (inputs, labels) adds the accuracy."""
    settings = settings or MeasureSettings()
    file = Path(path)
    (full,) = resolve_providers([provider])
    memory = PeakMemory()
    memory.start()
    session = _open(file, full, settings.intra_op_threads, variant)
    signature = _signature_of(session)
    rng = np.random.default_rng(settings.seed)
    names = [t.name for t in signature.outputs]
    rows = eval_data[0] if eval_data is not None else None
    batches = []
    for batch in _batch_sizes(signature, settings.batch_sizes):
        feeds = _feeds(signature, batch, rows, rng)
        stats = measure_latency(
            partial(session.run, names, feeds),
            runs=settings.runs,
            warmup_runs=settings.warmup_runs,
            max_seconds=settings.max_seconds_per_batch,
            clock=clock,
        )
        floor = 1e-6  # a timer tick; keeps the schema's "> 0" true on the fastest models
        p50, p95, p99 = (max(v, floor) for v in (stats.p50_ms, stats.p95_ms, stats.p99_ms))
        mean = max(stats.mean_ms, floor)
        batches.append(
            BatchLatency(
                batch_size=batch,
                runs=stats.runs,
                mean_ms=mean,
                p50_ms=p50,
                p95_ms=max(p95, p50),
                p99_ms=max(p99, p95, p50),
                throughput_per_s=batch * 1000.0 / mean,
            )
        )
    accuracy = None
    if eval_data is not None:
        accuracy = _accuracy(session, signature, *eval_data)
    peak = memory.peak_mib()
    return VariantProfile(
        model=model,
        variant=variant,
        provider=full,
        source="onnxruntime",
        path=str(file.resolve()),
        sha256=sha256_of(file),
        size_bytes=file.stat().st_size,
        peak_memory_mib=peak,
        accuracy=accuracy,
        eval_samples=int(eval_data[1].shape[0]) if accuracy is not None and eval_data else None,
        batches=batches,
    )


def _profile_set(
    profiles: list[VariantProfile],
    settings: MeasureSettings,
    host: Host | None,
    tiers: Sequence[str],
) -> ProfileSet:
    return ProfileSet(
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        host=host or host_info(),
        tiers=list(tiers),
        settings=settings.record(),
        profiles=profiles,
    )


def profile_files(
    files: Mapping[str, str | Path],
    *,
    model: str | None = None,
    providers: Sequence[str] | None = None,
    settings: MeasureSettings | None = None,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    host: Host | None = None,
    tiers: Sequence[str] = (),
    progress: Callable[[str, str], None] | None = None,
) -> ProfileSet:
    """Profile ONNX files by variant name (``{"small": "models/small/1/model.onnx"}``)
    with each provider (default :func:`default_providers`)."""
    if not files:
        raise ConfigError("files", "at least one ONNX file")
    settings = settings or MeasureSettings()
    out = []
    for provider in providers or default_providers():
        # The first session a process opens pays onnxruntime's one-time set-up; pay it
        # here so the first variant's peak memory is its own.
        first = Path(next(iter(files.values())))
        if first.is_file():
            (full,) = resolve_providers([provider])
            _open(first, full, settings.intra_op_threads, "warm-up")
        for variant, path in files.items():
            if progress is not None:
                progress(variant, provider)
            out.append(
                profile_model(
                    path,
                    variant=variant,
                    model=model,
                    provider=provider,
                    settings=settings,
                    eval_data=eval_data,
                )
            )
    return _profile_set(out, settings, host, tiers)


def profile_zoo(
    zoo_dir: str | Path,
    *,
    variants: Sequence[str] | None = None,
    model: str | None = None,
    providers: Sequence[str] | None = None,
    settings: MeasureSettings | None = None,
    host: Host | None = None,
    tiers: Sequence[str] = (),
    progress: Callable[[str, str], None] | None = None,
) -> ProfileSet:
    """Profile a zoo's variants (default: all), with accuracy on its held-out split."""
    from tierwise.zoo import load_eval, load_zoo

    zoo = load_zoo(zoo_dir)
    names = list(variants) if variants is not None else [v.name for v in zoo.variants]
    files = {name: zoo.model_path(name) for name in names}
    return profile_files(
        files,
        model=model,
        providers=providers,
        settings=settings,
        eval_data=load_eval(zoo_dir),
        host=host,
        tiers=tiers,
        progress=progress,
    )
