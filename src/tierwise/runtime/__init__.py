"""Runtimes: the :class:`Backend` contract and the onnxruntime implementation."""

from tierwise.runtime.base import Backend, Signature, TensorSpec
from tierwise.runtime.onnx import OnnxBackend, OnnxSettings, read_signature, resolve_providers

__all__ = [
    "Backend",
    "OnnxBackend",
    "OnnxSettings",
    "Signature",
    "TensorSpec",
    "read_signature",
    "resolve_providers",
]
