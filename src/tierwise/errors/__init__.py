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

from tierwise.errors.base import (
    ConfigError,
    SpecError,
    SpecProblem,
    TierwiseError,
    ZooError,
)
from tierwise.errors.routing import (
    IdempotencyError,
    NoRouteError,
    OutboxError,
    OutboxFullError,
    OutboxItemNotFoundError,
    RouteError,
    TierError,
    TierRejectedError,
    TierTimeoutError,
    TierUnavailableError,
)
from tierwise.errors.serving import (
    AdmissionError,
    BackendError,
    BatchError,
    DeadlineExceededError,
    InferenceInputError,
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    PayloadTooLargeError,
    ProtocolError,
    ProviderUnavailableError,
    ServerBusyError,
)

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
    "NoRouteError",
    "OutboxError",
    "OutboxFullError",
    "OutboxItemNotFoundError",
    "PayloadTooLargeError",
    "ProtocolError",
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
