"""The protocol-free data plane: decoded requests in, responses out, metrics on the way.

The HTTP layer only decodes and encodes; everything about models, batching, deadlines
and outcomes happens here, so other front ends (gRPC, the router's local tier) reuse it.
"""

from __future__ import annotations

import time
from typing import Any

from tierwise.errors import (
    AdmissionError,
    DeadlineExceededError,
    InferenceInputError,
    ModelError,
    ProtocolError,
)
from tierwise.protocol import InferRequest, InferResponse, timeout_us_of
from tierwise.server.manager import ModelManager, ServedVersion
from tierwise.server.metrics import ServerMetrics

__all__ = ["DataPlane"]


def _timeout_us(model: str, parameters: dict[str, Any]) -> int:
    try:
        return timeout_us_of(parameters)
    except ProtocolError as exc:
        raise InferenceInputError(exc.reason, model=model) from exc


class DataPlane:
    """Runs inference requests against the manager's serving versions."""

    def __init__(self, manager: ModelManager, metrics: ServerMetrics) -> None:
        self.manager = manager
        self.metrics = metrics
        self.in_flight = 0
        metrics.in_flight.set_function(lambda: self.in_flight)

    def admit(self, model: str, version: str | None) -> ServedVersion:
        """The version to run on, refused early (before the body is read) when its queue is
        already full."""
        served = self.manager.resolve(model, version)
        served.batcher.check_capacity()
        return served

    async def infer(
        self,
        served: ServedVersion,
        request: InferRequest,
        *,
        version: str | None = None,
        received_s: float | None = None,
    ) -> InferResponse:
        """Check, queue and run one request on ``served`` (``version`` is what the client
        asked for); every outcome is counted."""
        started = received_s if received_s is not None else time.monotonic()
        model = served.model
        if served.batcher.closing:  # swapped out while the body was being read
            served = self.manager.resolve(model, version)
        metrics = served.metrics
        self.in_flight += 1
        outcome = "error"
        try:
            signature = served.backend.signature
            signature.check_inputs(model, request.inputs)
            outputs = signature.output_names(
                request.requested_output_names() if request.outputs else None, model
            )
            timeout_us = _timeout_us(model, request.parameters) if request.parameters else 0
            result = await served.batcher.submit(request.inputs, outputs, timeout_us=timeout_us)
            outcome = "success"
        except (InferenceInputError, ProtocolError):
            outcome = "client_error"
            raise
        except DeadlineExceededError:
            outcome = "deadline"
            raise
        except AdmissionError:
            outcome = "rejected"
            raise
        except ModelError:
            outcome = "client_error"
            raise
        finally:
            self.in_flight -= 1
            metrics.requests[outcome].inc()
            metrics.request_s.observe(time.monotonic() - started)
        return InferResponse(
            model_name=model, model_version=served.version, id=request.id, outputs=result
        )
