"""The batcher merges only requests that onnxruntime can run as one: same non-batch
dimensions and dtypes, inputs that agree on their rows, and a model whose every input
and output starts with its batch dimension."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from onnx_models import detector_model
from tierwise.runtime import OnnxBackend
from tierwise.server.batching import Batcher, BatcherSettings, batch_rows

Tensors = dict[str, np.ndarray]


async def test_queued_requests_are_grouped_by_their_other_dimensions(tmp_path: Path) -> None:
    backend = OnnxBackend("detector", detector_model(tmp_path / "d.onnx"))
    await backend.load()
    assert backend.signature.batch_dynamic
    gate = asyncio.Event()
    seen: list[tuple[int, ...]] = []

    async def run(inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        await gate.wait()
        seen.append(inputs["images"].shape)
        return await backend.predict(inputs, outputs)

    batcher = Batcher("detector", run, BatcherSettings(max_batch_size=8), batchable=True)
    batcher.start()
    rng = np.random.default_rng(5)
    sizes = [(1, 32, 32), (2, 64, 48), (2, 32, 32), (1, 64, 48), (1, 96, 64), (1, 32, 32)]
    requests = [{"images": rng.random((b, 3, h, w), dtype=np.float32)} for b, h, w in sizes]
    futures = [batcher.submit(r, ["features"]) for r in requests]
    gate.set()
    results = await asyncio.gather(*futures)
    # oldest first, each with every queued request of its size; never a mixed batch
    assert seen == [(4, 3, 32, 32), (3, 3, 64, 48), (1, 3, 96, 64)]
    session = ort.InferenceSession(str(backend.path), providers=["CPUExecutionProvider"])
    for request, result in zip(requests, results, strict=True):
        want = session.run(None, request)[0]
        assert result["features"].shape == want.shape
        np.testing.assert_allclose(result["features"], want, rtol=1e-5, atol=1e-6)
    await batcher.stop()
    await backend.unload()


def test_rows_are_the_first_dimension_every_input_shares() -> None:
    assert batch_rows({"a": np.zeros((3, 2)), "b": np.zeros((3,))}) == 3
    assert batch_rows({"a": np.zeros((3, 2)), "b": np.zeros((1, 2))}) is None
    assert batch_rows({"a": np.zeros((3, 2)), "sr": np.array(16000)}) is None


async def test_a_request_whose_inputs_disagree_on_rows_runs_alone() -> None:
    calls: list[tuple[int, int]] = []
    gate = asyncio.Event()

    async def run(inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        await gate.wait()
        calls.append((inputs["a"].shape[0], inputs["b"].shape[0]))
        return {"y": inputs["a"] + inputs["b"][:1]}

    batcher = Batcher("m", run, BatcherSettings(max_batch_size=8), batchable=True)
    batcher.start()
    even = {"a": np.ones((1, 2), np.float32), "b": np.ones((1, 2), np.float32)}
    odd = {"a": np.ones((2, 2), np.float32), "b": np.ones((1, 2), np.float32)}
    futures = [batcher.submit(even, ["y"]), batcher.submit(odd, ["y"]), batcher.submit(even, ["y"])]
    gate.set()
    results = await asyncio.gather(*futures)
    # merged, the odd one would have looked like a valid batch of 3 rows
    assert calls == [(2, 2), (2, 1)]
    assert results[1]["y"].shape == (2, 2)  # its own answer, not split by a guessed row count
    await batcher.stop()
