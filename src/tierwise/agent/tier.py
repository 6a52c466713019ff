"""The router's view of this node's own tier server: requests go straight to the data
plane in this process (no loopback HTTP hop), and follow every hot swap."""

from __future__ import annotations

from tierwise.errors import (
    AdmissionError,
    InferenceInputError,
    ModelError,
    ModelNotReadyError,
    ProtocolError,
    TierRejectedError,
    TierUnavailableError,
)
from tierwise.protocol import InferRequest, InferResponse
from tierwise.router.tiers import Tier, TierKind
from tierwise.server.dataplane import DataPlane

__all__ = ["ServedTier"]


class ServedTier(Tier):
    """Answers with ``model`` of a :class:`DataPlane`; a full queue, a model not loaded
    yet or a throttled node is unavailability (the router escalates), a bad input is the
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

    async def infer(self, request: InferRequest, *, timeout_s: float) -> InferResponse:
        try:
            served = self.dataplane.admit(self.model, None)
            return await self.dataplane.infer(served, request)
        except (AdmissionError, ModelNotReadyError) as exc:
            raise TierUnavailableError(str(exc), tier=self.name) from exc
        except (InferenceInputError, ProtocolError) as exc:
            raise TierRejectedError(str(exc), tier=self.name, status_code=400) from exc
        except ModelError as exc:
            raise TierUnavailableError(str(exc), tier=self.name) from exc
