"""Runtimes: the :class:`Backend` contract, the onnxruntime implementation and warm-up."""

from tierwise.runtime.base import Backend, Signature, TensorSpec
from tierwise.runtime.onnx import OnnxBackend, OnnxSettings, read_signature, resolve_providers
from tierwise.runtime.warmup import WarmupInput, WarmupPlan, WarmupSample, plan_warmup

__all__ = [
    "Backend",
    "OnnxBackend",
    "OnnxSettings",
    "Signature",
    "TensorSpec",
    "WarmupInput",
    "WarmupPlan",
    "WarmupSample",
    "plan_warmup",
    "read_signature",
    "resolve_providers",
]
