"""The router's view of this node's own tier server: requests go straight to the data
plane in this process (no loopback HTTP hop), and follow every hot swap."""

from __future__ import annotations

from tierwise.errors import (
    AdmissionError,
    BackendError,
    DeadlineExceededError,
    InferenceInputError,
    ModelError,
    ModelNotReadyError,
    ProtocolError,
    TierRejectedError,
    TierTimeoutError,
    TierUnavailableError,
)
from tierwise.protocol import InferRequest, InferResponse
from tierwise.router.bounded import bounded
from tierwise.router.tiers import Tier
from tierwise.runtime import Signature
from tierwise.server.dataplane import DataPlane
from tierwise.spec.tiers import TierKind

__all__ = ["ServedTier"]


class ServedTier(Tier):
    """Answers with ``model`` of a :class:`DataPlane`; a full queue, a model not loaded
    yet, a runtime failure or a throttled node is unavailability and no answer within the
    time allowed is a timeout (the router escalates either way); a bad input is the
    client's mistake."""

    def __init__(
        self,
        name: str,
        dataplane: DataPlane,
        model: str,
        *,
        kind: TierKind = "edge",
        timeout_s: float = 5.0,
    ) -> None:
        super().__init__(name, kind, timeout_s=timeout_s)
        self.dataplane = dataplane
        self.model = model

    @property
    def model_label(self) -> str:
        return self.model

    async def model_signature(self) -> Signature | None:
        """The serving version's signature; None while the model has none serving (its
        stages are then checked on their first answer)."""
        try:
            return self.dataplane.manager.resolve(self.model, None).backend.signature
        except ModelError:
            return None

    async def infer(self, request: InferRequest, *, timeout_s: float) -> InferResponse:
        try:
            served = self.dataplane.admit(self.model, None)
            return await bounded(self.dataplane.infer(served, request), timeout_s)
        except (TimeoutError, DeadlineExceededError) as exc:  # ours, or the request's own
            raise TierTimeoutError(tier=self.name, timeout_s=timeout_s) from exc
        except (AdmissionError, ModelNotReadyError, BackendError) as exc:
            raise TierUnavailableError(str(exc), tier=self.name) from exc
        except (InferenceInputError, ProtocolError) as exc:
            raise TierRejectedError(str(exc), tier=self.name, status_code=400) from exc
        except ModelError as exc:
            raise TierUnavailableError(str(exc), tier=self.name) from exc
