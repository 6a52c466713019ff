"""The node's own tier as the router sees it, on a real tier server in process: what
each failure becomes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tierwise.agent import ServedTier
from tierwise.bench.synthetic import dense_stack_model
from tierwise.errors import TierRejectedError, TierTimeoutError, TierUnavailableError
from tierwise.protocol import InferRequest
from tierwise.server import ServerSettings, create_app


def _request(width: int = 256) -> InferRequest:
    return InferRequest(inputs={"x": np.ones((1, width), np.float32)})


async def test_answers_and_maps_failures(tmp_path: Path) -> None:
    dense_stack_model(tmp_path / "heavy" / "1" / "model.onnx", width=256, depth=8)
    app = create_app(ServerSettings(model_repo=tmp_path))
    await app.startup()
    try:
        tier = ServedTier("edge", app.dataplane, "heavy")
        answer = await tier.infer(_request(), timeout_s=5.0)
        assert answer.outputs["y"].shape == (1, 256)
        with pytest.raises(TierRejectedError, match="x") as rejected:
            await tier.infer(_request(width=3), timeout_s=5.0)
        assert rejected.value.status_code == 400
        with pytest.raises(TierTimeoutError):
            await tier.infer(_request(), timeout_s=1e-6)
        # a throttled node with a full queue sends the router elsewhere
        app.manager.throttle(instances=1, max_queue_size=1)
        outcomes = await asyncio.gather(
            *(tier.infer(_request(), timeout_s=5.0) for _ in range(20)), return_exceptions=True
        )
        refused = [o for o in outcomes if isinstance(o, Exception)]
        assert refused
        assert all(isinstance(o, TierUnavailableError) for o in refused)
        assert "queue" in str(refused[0])
        missing = ServedTier("edge", app.dataplane, "nope")
        with pytest.raises(TierUnavailableError):
            await missing.infer(_request(), timeout_s=5.0)
    finally:
        await app.shutdown()


async def test_describes_its_model_for_the_start_up_checks(tmp_path: Path) -> None:
    dense_stack_model(tmp_path / "heavy" / "1" / "model.onnx", width=16, depth=1)
    app = create_app(ServerSettings(model_repo=tmp_path))
    await app.startup()
    try:
        tier = ServedTier("edge", app.dataplane, "heavy")
        assert tier.model_label == "heavy"
        signature = await tier.model_signature()
        assert signature is not None
        assert [(o.name, o.shape) for o in signature.outputs] == [("y", (-1, 16))]
        # a model the node does not serve (yet) is checked on its first answer instead
        assert await ServedTier("edge", app.dataplane, "nope").model_signature() is None
    finally:
        await app.shutdown()
