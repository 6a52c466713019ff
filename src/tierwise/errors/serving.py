"""Errors of HTTP requests, the wire protocol, models, admission control and backends."""

from __future__ import annotations

from collections.abc import Sequence

from tierwise.errors.base import TierwiseError

__all__ = [
    "AdmissionError",
    "BackendError",
    "BatchError",
    "DeadlineExceededError",
    "HttpError",
    "InferenceInputError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "PayloadTooLargeError",
    "ProtocolError",
    "ProviderUnavailableError",
    "ServerBusyError",
]


class HttpError(TierwiseError):
    """An HTTP request the server answers before any handler runs, or refuses as a whole:
    no such path (404), a method the path does not take (405, ``allow`` lists the methods
    it does take, for the ``Allow`` header), an unsupported content encoding (415), a
    missing credential (401) or a body of the wrong shape (400)."""

    def __init__(self, status_code: int, message: str, allow: str | None = None) -> None:
        self.status_code = status_code
        self.allow = allow
        super().__init__(message)


class ProtocolError(TierwiseError):
    """A V2 payload is malformed. ``tensor`` names the tensor at fault when there is one."""

    status_code = 400

    def __init__(self, reason: str, *, tensor: str | None = None) -> None:
        self.reason = reason
        self.tensor = tensor
        prefix = f"tensor {tensor!r}: " if tensor is not None else ""
        super().__init__(prefix + reason)


class PayloadTooLargeError(ProtocolError):
    """A payload (or one tensor of it) is larger than the configured limit."""

    status_code = 413

    def __init__(self, size_bytes: int, limit_bytes: int, *, tensor: str | None = None) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(
            f"payload of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes",
            tensor=tensor,
        )


class ModelError(TierwiseError):
    """Something about one model; ``model`` and ``version`` say which."""

    def __init__(self, reason: str, *, model: str, version: str | None = None) -> None:
        self.reason = reason
        self.model = model
        self.version = version
        where = f"model {model!r}" + ("" if version is None else f" version {version!r}")
        super().__init__(f"{where}: {reason}")


class ModelNotFoundError(ModelError):
    """No such model (or version) is known here."""

    status_code = 404

    def __init__(self, *, model: str, version: str | None = None) -> None:
        super().__init__("not found", model=model, version=version)


class ModelLoadError(ModelError):
    """A model file could not be loaded (missing, corrupt, unsupported). Status 400 as
    Triton answers a failed repository load: the files given were at fault."""

    status_code = 400


class InferenceInputError(ModelError):
    """The inputs given to a model do not match its signature."""

    status_code = 400

    def __init__(
        self, reason: str, *, model: str, tensor: str | None = None, kind: str = "input"
    ) -> None:
        self.tensor = tensor
        prefix = f"{kind} {tensor!r}: " if tensor is not None else ""
        super().__init__(prefix + reason, model=model)


class ModelNotReadyError(ModelError):
    """The model is known but has no version ready to serve (loading, or failed to load)."""

    status_code = 503

    def __init__(
        self, *, model: str, version: str | None = None, reason: str = "not ready"
    ) -> None:
        super().__init__(reason, model=model, version=version)


class AdmissionError(TierwiseError):
    """The server declines a request it could otherwise run (capacity, deadline)."""

    status_code = 503

    def __init__(self, reason: str, *, model: str) -> None:
        self.reason = reason
        self.model = model
        super().__init__(f"model {model!r}: {reason}")


class ServerBusyError(AdmissionError):
    """The model's queue is full. ``retry_after_s`` goes into the Retry-After header."""

    def __init__(
        self,
        *,
        model: str,
        queue_size: int,
        retry_after_s: int = 1,
        status_code: int = 503,
        reason: str | None = None,
    ) -> None:
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self.status_code = status_code
        why = reason or f"queue full ({queue_size} requests waiting)"
        super().__init__(f"{why}; retry after {retry_after_s} s", model=model)


class DeadlineExceededError(AdmissionError):
    """The request's deadline passed before it could be answered: dropped unrun from a
    tier server's queue, or not answered by any tier the router could still ask.
    ``where`` says which (the default is the tier server's queue)."""

    status_code = 408

    def __init__(
        self, *, model: str, timeout_us: int, waited_ms: float, where: str = "in queue; not run"
    ) -> None:
        self.timeout_us = timeout_us
        self.waited_ms = waited_ms
        super().__init__(
            f"deadline of {timeout_us} us passed after {waited_ms:.1f} ms {where}",
            model=model,
        )


class BackendError(TierwiseError):
    """The runtime failed while running a model."""

    def __init__(self, reason: str, *, backend: str) -> None:
        self.reason = reason
        self.backend = backend
        super().__init__(f"{backend}: {reason}")


class BatchError(BackendError):
    """A batched call returned results that cannot be split back onto its requests."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, backend="batcher")


class ProviderUnavailableError(BackendError):
    """An execution provider was asked for that this onnxruntime build does not offer."""

    status_code = 400

    def __init__(self, provider: str, available: Sequence[str]) -> None:
        self.provider = provider
        self.available = list(available)
        super().__init__(
            f"execution provider {provider!r} is not available; this onnxruntime offers "
            + ", ".join(self.available),
            backend="onnxruntime",
        )
