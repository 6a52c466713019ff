"""The onnxruntime backend: any ONNX file, its signature in V2 terms, run off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tierwise.errors import (
    BackendError,
    ConfigError,
    ModelLoadError,
    ModelNotReadyError,
    ProviderUnavailableError,
)
from tierwise.runtime.base import Backend, Signature, TensorSpec
from tierwise.runtime.warmup import WarmupSample, plan_warmup

__all__ = ["OnnxBackend", "OnnxSettings", "read_signature", "resolve_providers"]

#: Short names accepted in settings, mapped to onnxruntime's provider names.
PROVIDER_ALIASES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}

_ONNX_TYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


class OnnxSettings(BaseModel):
    """How an ONNX model is run. Handed to :class:`OnnxBackend`; nothing reads the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"], min_length=1)
    intra_op_threads: int = Field(default=1, ge=0, description="0 lets onnxruntime decide")
    inter_op_threads: int = Field(default=1, ge=0)
    executor_threads: int = Field(default=1, ge=1, le=64, description="concurrent sess.run calls")
    warmup_runs: int = Field(
        default=2, ge=0, le=100, description="runs of each warm-up input set; 0 turns it off"
    )
    executor: Literal["auto", "thread", "inline"] = Field(
        default="auto",
        description="where sess.run happens: a worker thread, the event loop's own thread, "
        "or inline only while the expected call time is under inline_below_ms",
    )
    inline_below_ms: float = Field(default=1.0, ge=0, le=100)
    graph_optimization: str = Field(default="all")

    @field_validator("graph_optimization")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value not in _OPT_LEVELS:
            raise ValueError(f"expected one of {', '.join(_OPT_LEVELS)}")
        return value


_OPT_LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def resolve_providers(names: Sequence[str]) -> list[str]:
    """Map short or full provider names to onnxruntime's, checked against this build."""
    available = ort.get_available_providers()
    resolved: list[str] = []
    for name in names:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in available:
            raise ProviderUnavailableError(name, available)
        resolved.append(full)
    return resolved


def _tensor_specs(args: Sequence[Any]) -> tuple[TensorSpec, ...]:
    specs = []
    for arg in args:
        datatype = _ONNX_TYPES.get(arg.type)
        if datatype is None:
            raise BackendError(
                f"{arg.name!r} has type {arg.type}, which has no V2 datatype",
                backend="onnxruntime",
            )
        dims = list(arg.shape or ())
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)
        symbols = tuple(d if isinstance(d, str) and d else None for d in dims)
        specs.append(TensorSpec(arg.name, datatype, shape, symbols))
    return tuple(specs)


def _signature_of(session: ort.InferenceSession) -> Signature:
    return Signature(_tensor_specs(session.get_inputs()), _tensor_specs(session.get_outputs()))


def _open_session(
    path: Path, settings: OnnxSettings, model: str
) -> tuple[ort.InferenceSession, Signature]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization]
    options.log_severity_level = 3
    providers = resolve_providers(settings.providers)
    if not path.is_file():
        raise ModelLoadError(f"no model file at {path}", model=model)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"onnxruntime could not load {path}: {exc}", model=model) from exc
    try:
        return session, _signature_of(session)
    except BackendError as exc:
        raise ModelLoadError(exc.reason, model=model) from exc


def read_signature(path: str | Path) -> Signature:
    """The V2 signature of an ONNX file, read with a CPU session."""
    _, signature = _open_session(Path(path), OnnxSettings(warmup_runs=0), Path(path).stem)
    return signature


def _to_onnx(array: np.ndarray, datatype: str) -> np.ndarray:
    # onnxruntime takes strings as str objects; V2 BYTES are bytes.
    if datatype == "BYTES":
        flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.ravel()]
        return np.array(flat, dtype=object).reshape(array.shape)
    return array


def _from_onnx(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind in ("O", "U"):
        flat = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.ravel()]
        return np.array(flat, dtype=object).reshape(array.shape)
    return array


def _rows(inputs: Mapping[str, np.ndarray]) -> int:
    first = next(iter(inputs.values()), None)
    return max(int(first.shape[0]) if first is not None and first.ndim else 1, 1)


class OnnxBackend(Backend):
    """An ONNX model on onnxruntime; ``sess.run`` happens in a small thread pool so the
    event loop keeps serving while the model computes."""

    runtime = "onnxruntime"

    def __init__(
        self,
        name: str,
        path: str | Path,
        settings: OnnxSettings | None = None,
        *,
        warmup: Sequence[WarmupSample] = (),
    ) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.settings = settings or OnnxSettings()
        self.warmup = tuple(warmup)
        self._session: ort.InferenceSession | None = None
        self._signature: Signature | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._string_inputs: list[str] = []
        self._ms_per_row: float | None = None

    @property
    def signature(self) -> Signature:
        if self._signature is None:
            raise ModelNotReadyError(model=self.name, reason="not loaded")
        return self._signature

    @property
    def providers(self) -> list[str]:
        """The providers the loaded session actually uses."""
        return list(self._session.get_providers()) if self._session is not None else []

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(
            max_workers=self.settings.executor_threads, thread_name_prefix=f"ort-{self.name}"
        )
        try:
            session, signature = await loop.run_in_executor(
                executor, _open_session, self.path, self.settings, self.name
            )
            self._session, self._signature, self._executor = session, signature, executor
            self._string_inputs = [t.name for t in signature.inputs if t.datatype == "BYTES"]
            await self._warm_up(signature)
        except BaseException:
            executor.shutdown(wait=False)
            self._session = self._signature = self._executor = None
            raise
        self._loaded = True

    async def _warm_up(self, signature: Signature) -> None:
        """Run the declared or derived warm-up ``warmup_runs`` times; ModelLoadError says
        which inputs failed. Never runs guessed shapes (see :mod:`tierwise.runtime.warmup`)."""
        try:
            plan = plan_warmup(signature, self.warmup)
        except ConfigError as exc:
            raise ModelLoadError(f"config.yaml {exc}", model=self.name) from exc
        runs = self.settings.warmup_runs
        self.warmup_note = plan.skipped if runs else None
        outputs = [t.name for t in signature.outputs]
        for run in range(runs):
            if run == 1:
                self._ms_per_row = None  # the first, cold run says little about cost
            for index, feeds in enumerate(plan.feeds):
                try:
                    await self._run(feeds, outputs)
                except BackendError as exc:
                    detail = exc.__cause__ if exc.__cause__ is not None else exc.reason
                    raise ModelLoadError(
                        f"warm-up failed on inputs from {plan.source} "
                        f"({plan.describe(index)}): {detail}",
                        model=self.name,
                    ) from exc

    async def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        return await self._run(inputs, outputs)

    def predict_sync(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Blocking call on the caller's thread (benchmarks and offline evaluation)."""
        signature = self.signature
        signature.check_inputs(self.name, inputs)
        return self._call(inputs, signature.output_names(outputs, self.name))

    async def _run(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        if self._runs_inline(inputs):
            return self._call(inputs, outputs, time.perf_counter)
        loop = asyncio.get_running_loop()
        # On a worker thread, wall time includes waiting for the GIL after the run, so the
        # cost is measured as this thread's CPU time instead.
        return await loop.run_in_executor(
            self._executor, self._call, inputs, outputs, time.thread_time
        )

    def _runs_inline(self, inputs: Mapping[str, np.ndarray]) -> bool:
        # Handing a call to a worker thread and back costs tens of microseconds, more
        # under GIL contention; a model that answers faster than that runs on the event
        # loop's thread. The estimate is per row, so large batches still go to a thread.
        mode = self.settings.executor
        if mode != "auto":
            return mode == "inline"
        if self._ms_per_row is None:
            return False
        return self._ms_per_row * _rows(inputs) < self.settings.inline_below_ms

    def _call(
        self,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        clock: Callable[[], float] = time.perf_counter,
    ) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:
            raise ModelNotReadyError(model=self.name, reason="not loaded")
        feeds = dict(inputs)
        for name in self._string_inputs:
            if name in feeds:
                feeds[name] = _to_onnx(feeds[name], "BYTES")
        started = clock()
        try:
            values = session.run(list(outputs), feeds)
        except Exception as exc:  # onnxruntime's own error types are not importable stably
            raise BackendError(f"model {self.name!r} failed: {exc}", backend=self.runtime) from exc
        per_row = (clock() - started) * 1000.0 / _rows(inputs)
        previous = self._ms_per_row
        self._ms_per_row = per_row if previous is None else 0.8 * previous + 0.2 * per_row
        return {name: _from_onnx(v) for name, v in zip(outputs, values, strict=True)}

    async def unload(self) -> None:
        executor, self._executor = self._executor, None
        self._session = None
        self._loaded = False
        if executor is not None:
            executor.shutdown(wait=True)
