"""Runtimes: the :class:`Backend` contract, the onnxruntime implementation, warm-up, and
the registry that chooses a runtime by name."""

from tierwise.runtime.base import Backend, Signature, TensorSpec
from tierwise.runtime.onnx import OnnxBackend, OnnxSettings, read_signature, resolve_providers
from tierwise.runtime.registry import (
    DEFAULT_RUNTIME,
    Runtime,
    RuntimeFactory,
    check_runtime,
    make_backend,
    model_file_of,
    register_runtime,
    runtime_names,
    unregister_runtime,
)
from tierwise.runtime.warmup import WarmupInput, WarmupPlan, WarmupSample, plan_warmup

__all__ = [
    "DEFAULT_RUNTIME",
    "Backend",
    "OnnxBackend",
    "OnnxSettings",
    "Runtime",
    "RuntimeFactory",
    "Signature",
    "TensorSpec",
    "WarmupInput",
    "WarmupPlan",
    "WarmupSample",
    "check_runtime",
    "make_backend",
    "model_file_of",
    "plan_warmup",
    "read_signature",
    "register_runtime",
    "resolve_providers",
    "runtime_names",
    "unregister_runtime",
]
