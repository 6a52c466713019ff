"""Runtimes by name: what a model's ``runtime:`` (in ``config.yaml`` or a plan's local
model) chooses.

A runtime is a factory that makes a :class:`~tierwise.runtime.Backend` for one model
file, and the file name it expects in each version folder. ``onnxruntime`` is built in;
another runtime plugs in with :func:`register_runtime` before the server or router reads
its settings, and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tierwise.errors import ConfigError
from tierwise.runtime.base import Backend
from tierwise.runtime.onnx import OnnxBackend, OnnxSettings
from tierwise.runtime.warmup import WarmupSample

__all__ = [
    "DEFAULT_RUNTIME",
    "Runtime",
    "RuntimeFactory",
    "check_runtime",
    "make_backend",
    "model_file_of",
    "register_runtime",
    "runtime_names",
    "unregister_runtime",
]

#: The runtime a model uses when its settings name none.
DEFAULT_RUNTIME = "onnxruntime"


class RuntimeFactory(Protocol):
    """Makes a backend for the model ``name`` stored at ``path``. ``onnx`` and ``warmup``
    are the model's settings of that name; a runtime reads the ones that apply to it."""

    def __call__(
        self,
        name: str,
        path: Path,
        *,
        onnx: OnnxSettings | None,
        warmup: Sequence[WarmupSample],
    ) -> Backend: ...


@dataclass(frozen=True, slots=True)
class Runtime:
    """A registered runtime: its factory and the model file each version folder holds."""

    name: str
    factory: RuntimeFactory
    model_file: str


_RUNTIMES: dict[str, Runtime] = {}


def register_runtime(
    name: str, factory: RuntimeFactory, *, model_file: str = "model.onnx", replace: bool = False
) -> None:
    """Make ``name`` a runtime that settings may choose. ConfigError when the name is taken
    (unless ``replace``) or either name is empty or holds a path separator."""
    if not name or not name.strip():
        raise ConfigError("name", "a non-empty runtime name", name)
    if not model_file or "/" in model_file or "\\" in model_file:
        raise ConfigError("model_file", "a file name without a folder", model_file)
    if name in _RUNTIMES and not replace:
        raise ConfigError("name", "a runtime name not registered yet", name)
    _RUNTIMES[name] = Runtime(name, factory, model_file)


def unregister_runtime(name: str) -> None:
    """Forget a runtime (a plug-in's tests clean up with it); unknown names are ignored."""
    _RUNTIMES.pop(name, None)


def runtime_names() -> list[str]:
    """The registered runtimes' names, sorted."""
    return sorted(_RUNTIMES)


def _get(name: str) -> Runtime:
    runtime = _RUNTIMES.get(name)
    if runtime is None:
        raise ConfigError(
            "runtime", f"one of the known runtimes ({', '.join(runtime_names())})", name
        )
    return runtime


def check_runtime(name: str) -> str:
    """``name`` when it is a registered runtime; ConfigError listing the known ones
    otherwise (a settings model's validator)."""
    return _get(name).name


def model_file_of(runtime: str) -> str:
    """The file name a version folder holds for ``runtime`` (``model.onnx``)."""
    return _get(runtime).model_file


def make_backend(
    runtime: str,
    name: str,
    model_path: str | Path,
    *,
    onnx: OnnxSettings | None = None,
    warmup: Sequence[WarmupSample] = (),
) -> Backend:
    """A backend of the runtime named ``runtime`` for the model ``name`` at ``model_path``
    (not loaded yet). ConfigError lists the known runtimes when ``runtime`` is not one."""
    return _get(runtime).factory(name, Path(model_path), onnx=onnx, warmup=tuple(warmup))


def _onnx_backend(
    name: str, path: Path, *, onnx: OnnxSettings | None, warmup: Sequence[WarmupSample]
) -> Backend:
    return OnnxBackend(name, path, onnx, warmup=warmup)


register_runtime(DEFAULT_RUNTIME, _onnx_backend)
