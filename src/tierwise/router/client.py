"""``tierwise.Client``: the SDK an app or device embeds. The device's model runs in the
app's own process; edge and cloud tiers sit behind it, reached over V2 HTTP, with the same
router and policy the gateway runs."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from tierwise.planfile.load import load_plan
from tierwise.planfile.schema import Plan
from tierwise.protocol import InferRequest, RequestedOutput
from tierwise.router.answer import RoutedAnswer
from tierwise.router.build import build_router
from tierwise.router.router import Router
from tierwise.router.settings import RouterSettings
from tierwise.router.trace import Trace
from tierwise.router.types import Cause, RequestMeta
from tierwise.runtime import OnnxSettings
from tierwise.spec.workloads import Privacy, Residency, Urgency

__all__ = ["Client", "Result"]


@dataclass(frozen=True, slots=True)
class Result:
    """An answer: the outputs, the tier that gave them, whether the router had to settle
    for less than the plan wanted (``degraded``, and ``degraded_reason``: why), and the
    trace (built when first read)."""

    outputs: dict[str, np.ndarray]
    tier: str | None
    degraded: bool
    answer: RoutedAnswer = field(repr=False)
    deferred_id: str | None = None
    degraded_reason: Cause | None = None

    @property
    def trace(self) -> Trace:
        """Everything the router did for this request."""
        return self.answer.trace


class Client:
    """Route inferences through a plan from inside an application.

    ::

        async with Client("plan.yaml") as client:
            result = await client.infer({"image": x}, workload="digits")
    """

    def __init__(
        self,
        plan: Plan | str | Path,
        *,
        env: Mapping[str, str] | None = None,
        onnx: OnnxSettings | None = None,
        settings: RouterSettings | None = None,
        router: Router | None = None,
    ) -> None:
        self.plan = plan if isinstance(plan, Plan) else load_plan(Path(plan))
        # The SDK is an entry point like the CLI: without ``env`` it reads the process
        # environment, and only for the variables the plan names for auth headers.
        self.router = router or build_router(
            self.plan, env=os.environ if env is None else env, onnx=onnx, settings=settings
        )
        self._started = False

    async def start(self) -> None:
        """Load the in-process models and check every cascade stage's score output against
        its tier's model (the first ``infer`` does it too): ConfigError names a stage
        whose ``output`` the model lacks or that holds no scores."""
        if not self._started:
            await self.router.start()
            self._started = True

    async def infer(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        workload: str,
        privacy: Privacy | None = None,
        residency: Residency | None = None,
        deadline_ms: float | None = None,
        urgency: Urgency | None = None,
        outputs: Sequence[str] | None = None,
        request_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Result:
        """Run one request through the workload's cascade."""
        await self.start()
        request = InferRequest(
            inputs=dict(inputs),
            id=request_id,
            parameters=dict(parameters or {}),
            outputs=None if outputs is None else [RequestedOutput(n) for n in outputs],
        )
        meta = RequestMeta(
            workload=workload,
            privacy=privacy,
            residency=residency,
            deadline_ms=deadline_ms,
            urgency=urgency,
            received_s=time.time(),
        )
        answer = await self.router.infer(request, meta)
        response = answer.response
        return Result(
            outputs=dict(response.outputs) if response is not None else {},
            tier=answer.answered_by,
            degraded=answer.degraded,
            answer=answer,
            deferred_id=answer.deferred_id,
            degraded_reason=answer.degraded_reason,
        )

    async def close(self) -> None:
        await self.router.close()

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
