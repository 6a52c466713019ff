"""Measure ONNX variants on this machine: latency per batch size, throughput, peak memory
and accuracy, for each execution provider; the results make a :class:`ProfileSet`.

Each variant runs in its own onnxruntime session (``intra_op_threads`` threads, one caller
at a time). Every batch size is warmed up before it is timed. Each input is timed at the
shape the model really sees (:mod:`tierwise.bench.inputs`): samples of the eval set when
there is one, else a shape given per input (``input_shapes``), else the signature's own
when it is concrete apart from the batch dimension; a model with other dynamic dimensions
and neither is refused before anything is measured. A model without a batch dimension is
measured once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import Field, field_validator

from tierwise.bench.energy import BenchEnergy, RaplChoice
from tierwise.bench.evalset import EvalData, EvalSet, as_eval_set, predicted_labels
from tierwise.bench.host import PeakMemory, host_info
from tierwise.bench.inputs import TimedInputs, plan_inputs
from tierwise.bench.latency import measure_latency
from tierwise.bench.profiles import (
    BatchLatency,
    Host,
    ProfileSet,
    ProfileSettings,
    VariantProfile,
)
from tierwise.errors import ConfigError, ModelLoadError
from tierwise.runtime import resolve_providers
from tierwise.runtime.onnx import PROVIDER_ALIASES, _signature_of, read_signature
from tierwise.settings_errors import SettingsModel
from tierwise.spec.tiers import PowerModel
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


class MeasureSettings(SettingsModel):
    """How each variant is measured: batch sizes, timed runs per batch size (stopping
    early after ``max_seconds_per_batch``), untimed warm-up runs, onnxruntime threads;
    energy per inference from the RAPL counters ``rapl`` names where readable, else from
    ``power`` (see :mod:`tierwise.bench.energy`)."""

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    runs: int = Field(default=200, strict=True, ge=1)
    warmup_runs: int = Field(default=10, strict=True, ge=0)
    max_seconds_per_batch: float = Field(default=2.0, gt=0)
    intra_op_threads: int = Field(default=1, strict=True, ge=0)
    seed: int = 0
    power: PowerModel | None = None
    rapl: RaplChoice = "auto"

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _sizes(cls, value: object) -> tuple[int, ...]:
        sizes = list(value) if isinstance(value, list | tuple) else None
        if not sizes or any(
            isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= _MAX_BATCH for b in sizes
        ):
            raise ConfigError("batch_sizes", f"whole numbers in [1, {_MAX_BATCH}]", sizes or value)
        if len(set(sizes)) != len(sizes):
            raise ConfigError("batch_sizes", "distinct sizes", sizes)
        return tuple(sizes)

    def record(self) -> ProfileSettings:
        return ProfileSettings(
            runs=self.runs,
            warmup_runs=self.warmup_runs,
            max_seconds_per_batch=self.max_seconds_per_batch,
            intra_op_threads=self.intra_op_threads,
            power=self.power,
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


def _accuracy(session: ort.InferenceSession, names: list[str], inputs: TimedInputs) -> float | None:
    right = total = 0
    for feeds, labels in inputs.eval_chunks(_EVAL_CHUNK_ROWS):
        values = session.run(names, feeds)
        predicted = predicted_labels(dict(zip(names, values, strict=True)), labels.shape[0])
        if predicted is None:
            return None
        right += int((predicted == labels).sum())
        total += labels.shape[0]
    return float(right / total) if total else None


def profile_model(
    path: str | Path,
    *,
    variant: str,
    model: str | None = None,
    provider: str = "cpu",
    settings: MeasureSettings | None = None,
    eval_data: EvalData | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> VariantProfile:
    """Measure one ONNX file with one execution provider (``cpu``, ``cuda``... or a full
    onnxruntime name). ``eval_data`` (an :class:`EvalSet`, or inputs and labels of a
    single-input model) supplies the inputs timed and, with labels, the accuracy;
    ``input_shapes`` gives an input's shape by name (see :mod:`tierwise.bench.inputs`).

    ``peak_memory_mib`` is the model's own footprint: the growth of the process's peak
    resident memory (:class:`PeakMemory`, the kernel's high-water mark reset first) from
    just before the session is created to just after the last timed call, so it covers the
    weights, onnxruntime's arenas and the activations and tensors of one call at each batch
    size. The eval set is outside it on both sides: its arrays are loaded before the
    baseline is taken, and the accuracy pass, which runs the whole set through the model in
    chunks, happens after the figure is read.
    """
    settings = settings or MeasureSettings()
    file = Path(path)
    (full,) = resolve_providers([provider])
    evaluation = as_eval_set(eval_data)
    memory = PeakMemory()
    memory.start()
    session = _open(file, full, settings.intra_op_threads, variant)
    signature = _signature_of(session)
    inputs = plan_inputs(signature, model=variant, input_shapes=input_shapes, eval_set=evaluation)
    rng = np.random.default_rng(settings.seed)
    names = [t.name for t in signature.outputs]
    energy = BenchEnergy(settings.power, settings.rapl)
    batches = []
    for batch in inputs.batch_sizes(settings.batch_sizes):
        feeds = inputs.feeds(batch, rng)
        call = partial(session.run, names, feeds)
        for _ in range(settings.warmup_runs):  # outside the energy reading
            call()
        mark = energy.mark()
        stats = measure_latency(
            call,
            runs=settings.runs,
            warmup_runs=0,
            max_seconds=settings.max_seconds_per_batch,
            clock=clock,
        )
        del feeds
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
                energy_j_per_inference=energy.per_inference(
                    mark, batch=batch, runs=stats.runs, mean_ms=stats.mean_ms
                ),
            )
        )
    peak = memory.peak_mib()
    accuracy = _accuracy(session, names, inputs)
    samples = inputs.evaluation.samples if inputs.evaluation is not None else None
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
        eval_samples=samples if accuracy is not None else None,
        inputs=inputs.record(),
        energy_source=(
            energy.source if any(b.energy_j_per_inference is not None for b in batches) else None
        ),
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
    eval_data: EvalData | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    host: Host | None = None,
    tiers: Sequence[str] = (),
    progress: Callable[[str, str], None] | None = None,
) -> ProfileSet:
    """Profile ONNX files by variant name (``{"small": "models/small/1/model.onnx"}``)
    with each provider (default :func:`default_providers`). ``input_shapes`` apply to
    each variant with an input of that name (each must name an input of some variant).
    Every variant's inputs are decided (:func:`~tierwise.bench.inputs.plan_inputs`) before
    any is measured, so a shape that is missing or does not fit fails at once."""
    if not files:
        raise ConfigError("files", "at least one ONNX file")
    settings = settings or MeasureSettings()
    evaluation = as_eval_set(eval_data)
    given = dict(input_shapes or {})
    signatures = {variant: read_signature(path) for variant, path in files.items()}
    shapes: dict[str, dict[str, Sequence[int]]] = {}
    for variant, signature in signatures.items():
        names = {spec.name for spec in signature.inputs}
        shapes[variant] = {name: shape for name, shape in given.items() if name in names}
    unknown = sorted(set(given).difference(*(s.keys() for s in shapes.values())))
    if unknown:
        raise ConfigError("input_shapes", "names of inputs of the models measured", unknown)
    for variant, signature in signatures.items():
        plan_inputs(signature, model=variant, input_shapes=shapes[variant], eval_set=evaluation)
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
                    eval_data=evaluation,
                    input_shapes=shapes[variant],
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
    eval_data: EvalData | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    host: Host | None = None,
    tiers: Sequence[str] = (),
    progress: Callable[[str, str], None] | None = None,
) -> ProfileSet:
    """Profile a zoo's variants (default: all), timed on and with accuracy on its held-out
    split (or ``eval_data``)."""
    from tierwise.zoo import load_eval, load_zoo

    zoo = load_zoo(zoo_dir)
    names = list(variants) if variants is not None else [v.name for v in zoo.variants]
    files = {name: zoo.model_path(name) for name in names}
    if eval_data is None:
        eval_data = EvalSet.from_pair(*load_eval(zoo_dir), source=f"{zoo_dir}/eval.npz")
    return profile_files(
        files,
        model=model,
        providers=providers,
        settings=settings,
        eval_data=eval_data,
        input_shapes=input_shapes,
        host=host,
        tiers=tiers,
        progress=progress,
    )
