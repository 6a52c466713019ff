"""The one error tree of tierwise.

Every error raised on purpose by tierwise derives from :class:`TierwiseError`.
Errors carry fields (``model``, ``tensor``, ``status_code``...) and build their
own message from them, so the HTTP layer and the CLI can render any of them
without knowing where it came from. Foreign exceptions are converted at the
boundary with ``raise X from exc``.

::

    TierwiseError                       status 500
    ├── ConfigError (ValueError)        status 400  bad argument or setting
    ├── SpecError                       status 400  fleet spec file problems
    ├── ProtocolError                   status 400  malformed V2 payload
    │   └── PayloadTooLargeError        status 413
    ├── ModelError                      status 500  about one model
    │   ├── ModelNotFoundError          status 404
    │   ├── ModelLoadError              status 400  the file could not be loaded
    │   ├── InferenceInputError         status 400  inputs do not match the signature
    │   └── ModelNotReadyError          status 503  known but not loaded (yet)
    ├── AdmissionError                  status 503  the server will not take this request now
    │   ├── ServerBusyError             status 429/503  queue full; ``retry_after_s`` says when
    │   └── DeadlineExceededError       status 408  the request's deadline passed before it ran
    ├── BackendError                    status 500  the runtime failed while running
    │   ├── BatchError                  status 500  a batch's results do not match its requests
    │   └── ProviderUnavailableError    status 400  execution provider not offered here
    ├── ZooError                        status 500  the model family could not be built
    ├── RouteError (ValueError)         status 400  request metadata the router cannot honour
    ├── NoRouteError                    status 503  no allowed tier could answer
    ├── OutboxError                     status 500  the outbox's store failed
    │   ├── OutboxFullError             status 503  max_items undelivered items queued
    │   └── OutboxItemNotFoundError     status 404
    ├── IdempotencyError                status 500  the idempotency store failed
    └── TierError                       status 502  a tier failed to answer
        ├── TierRejectedError           status 4xx  the tier said the request was wrong
        └── TierUnavailableError        status 503  down, overloaded or refused (breaker)
            └── TierTimeoutError        status 504  no answer within the time allowed
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AdmissionError",
    "BackendError",
    "BatchError",
    "ConfigError",
    "DeadlineExceededError",
    "IdempotencyError",
    "InferenceInputError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "PayloadTooLargeError",
    "ProtocolError",
    "NoRouteError",
    "OutboxError",
    "OutboxFullError",
    "OutboxItemNotFoundError",
    "ProviderUnavailableError",
    "RouteError",
    "ServerBusyError",
    "SpecError",
    "SpecProblem",
    "TierError",
    "TierRejectedError",
    "TierTimeoutError",
    "TierUnavailableError",
    "TierwiseError",
    "ZooError",
]


class TierwiseError(Exception):
    """Base of every tierwise error. ``status_code`` is the HTTP status to answer with."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(TierwiseError, ValueError):
    """An argument or setting is out of its bounds.

    ``parameter`` names it, ``expected`` says what would be accepted.
    """

    status_code = 400

    def __init__(self, parameter: str, expected: str, got: object = None) -> None:
        self.parameter = parameter
        self.expected = expected
        self.got = got
        suffix = "" if got is None else f", got {got!r}"
        super().__init__(f"{parameter}: expected {expected}{suffix}")


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec file: where it is and what was expected there."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = self.path or "<root>"
        return f"{self.file}: {where}: {self.message}"


class SpecError(TierwiseError):
    """A fleet spec could not be loaded; ``problems`` lists every problem found."""

    status_code = 400

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid spec")


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

    def __init__(self, reason: str, *, model: str, tensor: str | None = None) -> None:
        self.tensor = tensor
        prefix = f"input {tensor!r}: " if tensor is not None else ""
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
    """The request's deadline passed before it could run, so it was dropped unrun."""

    status_code = 408

    def __init__(self, *, model: str, timeout_us: int, waited_ms: float) -> None:
        self.timeout_us = timeout_us
        self.waited_ms = waited_ms
        super().__init__(
            f"deadline of {timeout_us} us passed after {waited_ms:.1f} ms in queue; not run",
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


class ZooError(TierwiseError):
    """The model family could not be built or read."""


class RouteError(TierwiseError, ValueError):
    """Request metadata the router cannot honour: an unknown workload, a privacy class or
    residency outside the allowed values, a deadline already past. ``parameter`` names it."""

    status_code = 400

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"{parameter}: {reason}")


class NoRouteError(TierwiseError):
    """No tier the policy allowed could answer, and there was no earlier answer to fall
    back on. ``attempts`` lists what was tried and why each failed."""

    status_code = 503

    def __init__(self, workload: str, attempts: Sequence[str]) -> None:
        self.workload = workload
        self.attempts = list(attempts)
        tried = "; ".join(self.attempts) or "no tier was allowed"
        super().__init__(f"workload {workload!r}: no tier could answer ({tried})")


class TierError(TierwiseError):
    """A tier failed to answer. ``tier`` names it."""

    status_code = 502

    def __init__(self, reason: str, *, tier: str) -> None:
        self.reason = reason
        self.tier = tier
        super().__init__(f"tier {tier!r}: {reason}")


class TierRejectedError(TierError):
    """The tier answered that the request itself was wrong (a 4xx); trying another tier
    would not help, so the router passes it on with the tier's status."""

    def __init__(self, reason: str, *, tier: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(reason, tier=tier)


class TierUnavailableError(TierError):
    """The tier is down, overloaded, or its breaker is open: fall back to another."""

    status_code = 503


class TierTimeoutError(TierUnavailableError):
    """The tier gave no answer within the time allowed."""

    status_code = 504

    def __init__(self, *, tier: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(f"no answer within {timeout_s * 1000:.0f} ms", tier=tier)


class OutboxError(TierwiseError):
    """The outbox could not do what was asked (its database failed, or a bound was hit)."""

    status_code = 500

    def __init__(self, reason: str, *, path: str) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"outbox {path}: {reason}")


class OutboxFullError(OutboxError):
    """The outbox holds ``max_items`` undelivered items; retry once some have drained."""

    status_code = 503

    def __init__(self, *, path: str, tier: str, max_items: int, pending: int) -> None:
        self.tier = tier
        self.max_items = max_items
        self.pending = pending
        super().__init__(
            f"full: {pending} undelivered items reach max_items={max_items}; "
            f"request for tier {tier!r} not queued",
            path=path,
        )


class OutboxItemNotFoundError(OutboxError):
    """No item with this id (never queued, or purged after it was done)."""

    status_code = 404

    def __init__(self, *, path: str, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(f"no item {item_id!r}", path=path)


class IdempotencyError(TierwiseError):
    """The idempotency store's database failed."""

    status_code = 500

    def __init__(self, reason: str, *, path: str) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"idempotency store {path}: {reason}")
