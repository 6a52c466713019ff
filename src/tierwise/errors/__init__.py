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
    ├── HttpError                       status 4xx  no such path (404), wrong method (405
    │                                               with ``allow``), unsupported encoding
    ├── AccessError                     status 403  refused because of who asked
    │   ├── UnauthenticatedError        status 401  no bearer token, or an unknown one
    │   ├── ForbiddenError              status 403  the token lacks the endpoint's scope
    │   └── RateLimitedError            status 429  a client over its rate or its budget
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
    ├── PlanError                       status 400  the planner cannot work with its inputs
    │   └── InfeasiblePlanError         status 400  no placement meets a constraint; names it
    ├── ProfileError                    status 400  a profiles file is unreadable or does not fit
    ├── ReportError                     status 400  a report's plan or files lack what it shows
    ├── DemoError                       status 500  a step of the demo could not run
    ├── RouteError (ValueError)         status 400  request metadata the router cannot honour
    ├── NoRouteError                    status 503  no allowed tier could answer
    ├── OutboxError                     status 500  the outbox's store failed
    │   ├── OutboxFullError             status 503  max_items undelivered items queued
    │   └── OutboxItemNotFoundError     status 404
    ├── IdempotencyError                status 500  the idempotency store failed
    ├── RegistryError                   status 500  a bundle could not be stored or fetched
    │   ├── BundleError                 status 400  malformed bundle or manifest, unsafe path
    │   ├── IntegrityError              status 422  content differs from the manifest; ``check``
    │   ├── SignatureError              status 422  unsigned, untrusted key or bad signature
    │   ├── BundleNotFoundError         status 404
    │   ├── BundleExistsError           status 409  versions are immutable
    │   └── RegistryUnavailableError    status 503  unreachable, or dropped the connection
    ├── AgentError                      status 409  the edge agent cannot do what was asked
    ├── RolloutError                    status 409  a rollout change the control plane refuses
    └── TierError                       status 502  a tier failed to answer
        ├── TierRejectedError           status 4xx  the tier said the request was wrong
        └── TierUnavailableError        status 503  down, overloaded or refused (breaker)
            └── TierTimeoutError        status 504  no answer within the time allowed
"""

from __future__ import annotations

from tierwise.errors.access import (
    AccessError,
    ForbiddenError,
    RateLimitedError,
    UnauthenticatedError,
)
from tierwise.errors.base import (
    ConfigError,
    SpecError,
    SpecProblem,
    TierwiseError,
    ZooError,
)
from tierwise.errors.planning import InfeasiblePlanError, PlanError, ProfileError
from tierwise.errors.registry import (
    AgentError,
    BundleError,
    BundleExistsError,
    BundleNotFoundError,
    IntegrityError,
    RegistryError,
    RegistryUnavailableError,
    RolloutError,
    SignatureError,
)
from tierwise.errors.reporting import DemoError, ReportError
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
    HttpError,
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
    "AccessError",
    "ForbiddenError",
    "RateLimitedError",
    "UnauthenticatedError",
    "AgentError",
    "BundleError",
    "BundleExistsError",
    "BundleNotFoundError",
    "IntegrityError",
    "RegistryError",
    "RegistryUnavailableError",
    "RolloutError",
    "SignatureError",
    "AdmissionError",
    "BackendError",
    "BatchError",
    "ConfigError",
    "DeadlineExceededError",
    "DemoError",
    "HttpError",
    "IdempotencyError",
    "InfeasiblePlanError",
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
    "PlanError",
    "ProtocolError",
    "ProfileError",
    "ProviderUnavailableError",
    "ReportError",
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
