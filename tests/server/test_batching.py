from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

import numpy as np
import pytest

from tierwise.errors import BatchError, ConfigError, DeadlineExceededError, ServerBusyError
from tierwise.server.batching import Batcher, BatcherSettings, batch_key, merge, split

Tensors = dict[str, np.ndarray]


def test_merge_concatenates_and_split_restores() -> None:
    a = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "m": np.array([1, 2], np.int64)}
    b = {"x": np.arange(3, dtype=np.float32).reshape(1, 3) + 100, "m": np.array([3], np.int64)}
    merged, sizes = merge([a, b])
    assert sizes == [2, 1]
    assert merged["x"].shape == (3, 3)
    np.testing.assert_array_equal(merged["m"], [1, 2, 3])
    parts = split(merged, sizes)
    for original, part in zip([a, b], parts, strict=True):
        for name in original:
            np.testing.assert_array_equal(original[name], part[name])


def test_split_checks_result_count() -> None:
    with pytest.raises(BatchError, match="'y' has 4 rows for a batch of 3 rows"):
        split({"y": np.zeros((4, 2))}, [2, 1])
    with pytest.raises(BatchError, match="'y' has a scalar"):
        split({"y": np.float32(1.0) * np.ones(())}, [1, 1])
    with pytest.raises(BatchError, match="empty"):
        merge([])


def test_batch_key_separates_incompatible_requests() -> None:
    one = {"x": np.zeros((1, 3), np.float32)}
    assert batch_key(one) == batch_key({"x": np.ones((5, 3), np.float32)})
    assert batch_key(one) != batch_key({"x": np.zeros((1, 4), np.float32)})
    assert batch_key(one) != batch_key({"x": np.zeros((1, 3), np.float64)})


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_queue_delay_ms": -1}, "max_queue_delay_ms"),
        ({"max_batch_size": 4, "preferred_batch_sizes": (8,)}, "preferred_batch_sizes"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"instances": 0}, "instances"),
    ],
)
def test_settings_name_the_bad_parameter(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(ConfigError, match=parameter):
        BatcherSettings(**kwargs)  # type: ignore[arg-type]


class Recorder:
    """A fake model call that doubles x and records the batch sizes it saw."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False, drop_row: bool = False) -> None:
        self.batches: list[int] = []
        self.delay_s = delay_s
        self.fail = fail
        self.drop_row = drop_row
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        await self.release.wait()
        self.batches.append(int(inputs["x"].shape[0]))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model exploded")
        y = inputs["x"] * 2
        return {"y": y[:-1] if self.drop_row else y}


def _req(value: float, rows: int = 1) -> Tensors:
    return {"x": np.full((rows, 2), value, np.float32)}


async def test_concurrent_requests_are_batched_and_answered_in_order() -> None:
    model = Recorder()
    model.release.clear()
    batcher = Batcher("m", model, BatcherSettings(max_batch_size=8), batchable=True)
    batcher.start()
    futures = [batcher.submit(_req(i), ["y"]) for i in range(10)]
    model.release.set()
    results = await asyncio.gather(*futures)
    assert [float(r["y"][0, 0]) for r in results] == [2.0 * i for i in range(10)]
    assert sum(model.batches) == 10
    assert max(model.batches) == 8  # capped by max_batch_size
    await batcher.stop()


async def test_queue_delay_waits_for_more_requests() -> None:
    model = Recorder()
    batcher = Batcher(
        "m", model, BatcherSettings(max_batch_size=4, max_queue_delay_ms=200), batchable=True
    )
    batcher.start()
    first = batcher.submit(_req(1), ["y"])
    await asyncio.sleep(0.02)
    rest = [batcher.submit(_req(v), ["y"]) for v in (2, 3, 4)]
    await asyncio.gather(first, *rest)
    assert model.batches == [4]
    await batcher.stop()


async def test_preferred_size_flushes_without_waiting() -> None:
    model = Recorder()
    settings = BatcherSettings(
        max_batch_size=8, max_queue_delay_ms=5000, preferred_batch_sizes=(2,)
    )
    batcher = Batcher("m", model, settings, batchable=True)
    batcher.start()
    futures = [batcher.submit(_req(v), ["y"]) for v in (1, 2)]
    await asyncio.wait_for(asyncio.gather(*futures), 2.0)  # far less than the 5 s delay
    assert model.batches == [2]
    await batcher.stop()


async def test_unbatchable_models_run_one_at_a_time() -> None:
    model = Recorder()
    batcher = Batcher("m", model, BatcherSettings(max_batch_size=8), batchable=False)
    batcher.start()
    await asyncio.gather(*(batcher.submit(_req(v), ["y"]) for v in range(5)))
    assert model.batches == [1, 1, 1, 1, 1]
    await batcher.stop()


async def test_incompatible_shapes_go_in_separate_batches() -> None:
    model = Recorder()
    model.release.clear()
    batcher = Batcher("m", model, BatcherSettings(max_batch_size=8), batchable=True)
    batcher.start()
    wide = {"x": np.ones((1, 3), np.float32)}
    futures = [
        batcher.submit(_req(1), ["y"]),
        batcher.submit(wide, ["y"]),
        batcher.submit(_req(2), ["y"]),
    ]
    model.release.set()
    results = await asyncio.gather(*futures)
    assert results[1]["y"].shape == (1, 3)
    assert float(results[0]["y"][0, 0]) == 2.0
    assert float(results[2]["y"][0, 0]) == 4.0
    # the two [*, 2] requests are grouped past the [*, 3] one; it runs on its own
    assert model.batches == [2, 1]
    await batcher.stop()


async def test_an_error_reaches_every_waiting_request() -> None:
    model = Recorder(fail=True)
    model.release.clear()
    batcher = Batcher("m", model, BatcherSettings(max_batch_size=8), batchable=True)
    batcher.start()
    futures = [batcher.submit(_req(v), ["y"]) for v in range(3)]
    model.release.set()
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)
    model.fail = False
    assert float((await batcher.submit(_req(5), ["y"]))["y"][0, 0]) == 10.0  # still serving
    await batcher.stop()


async def test_result_count_mismatch_fails_the_batch() -> None:
    model = Recorder(drop_row=True)
    model.release.clear()
    batcher = Batcher("m", model, BatcherSettings(max_batch_size=8), batchable=True)
    batcher.start()
    futures = [batcher.submit(_req(v), ["y"]) for v in range(3)]
    model.release.set()
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, BatchError) for r in results)
    await batcher.stop()


async def test_full_queue_is_refused_with_429() -> None:
    model = Recorder()
    model.release.clear()
    batcher = Batcher("m", model, BatcherSettings(max_queue_size=2), batchable=True)
    batcher.start()
    first = batcher.submit(_req(0), ["y"])
    await asyncio.sleep(0.01)  # the worker takes it and blocks in the model
    queued = [batcher.submit(_req(v), ["y"]) for v in (1, 2)]
    with pytest.raises(ServerBusyError) as info:
        batcher.submit(_req(3), ["y"])
    assert info.value.status_code == 429
    assert info.value.retry_after_s >= 1
    model.release.set()
    await asyncio.gather(first, *queued)
    await batcher.stop()


async def test_expired_deadline_is_dropped_unrun() -> None:
    model = Recorder()
    model.release.clear()
    batcher = Batcher("m", model, BatcherSettings(max_batch_size=1), batchable=True)
    batcher.start()
    blocker = batcher.submit(_req(0), ["y"])
    await asyncio.sleep(0.01)
    late = batcher.submit(_req(1), ["y"], timeout_us=1_000)
    await asyncio.sleep(0.02)
    model.release.set()
    await blocker
    with pytest.raises(DeadlineExceededError, match="deadline of 1000 us") as info:
        await late
    assert info.value.status_code == 408
    assert model.batches == [1]  # the late request never reached the model
    await batcher.stop()


async def test_drain_waits_for_in_flight_then_refuses() -> None:
    model = Recorder(delay_s=0.05)
    batcher = Batcher("m", model, BatcherSettings(max_batch_size=2), batchable=True)
    batcher.start()
    futures = [batcher.submit(_req(v), ["y"]) for v in range(4)]
    await batcher.drain(timeout_s=5)
    assert all(f.done() and not f.exception() for f in futures)
    with pytest.raises(ServerBusyError):
        batcher.submit(_req(9), ["y"])
    await batcher.stop()


async def test_observe_reports_batch_rows_and_times() -> None:
    seen: list[tuple[int, int, float]] = []
    model = Recorder()
    model.release.clear()
    batcher = Batcher(
        "m",
        model,
        BatcherSettings(max_batch_size=8),
        batchable=True,
        observe=lambda rows, waits, compute: seen.append((rows, len(waits), compute)),
    )
    batcher.start()
    futures = [batcher.submit(_req(v, rows=2), ["y"]) for v in range(3)]
    model.release.set()
    await asyncio.gather(*futures)
    assert sum(rows for rows, _, _ in seen) == 6
    assert sum(n for _, n, _ in seen) == 3
    assert all(c >= 0 for _, _, c in seen)
    await batcher.stop()


async def test_throttle_caps_concurrency_of_workers_already_waiting() -> None:
    running = 0
    peak = 0

    async def run(inputs: dict[str, np.ndarray], outputs: object) -> dict[str, np.ndarray]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return {"y": inputs["x"]}

    batcher = Batcher("m", run, BatcherSettings(max_batch_size=1, instances=4), batchable=False)
    batcher.start()
    await asyncio.sleep(0)  # every worker is now waiting for work
    batcher.limit(instances=1, max_queue_size=None)
    assert batcher.limits == (1, 512)
    futures = [batcher.submit({"x": np.ones((1, 1), np.float32)}, ["y"]) for _ in range(8)]
    await asyncio.gather(*futures)
    assert peak == 1
    batcher.limit(instances=None, max_queue_size=None)
    peak = 0
    futures = [batcher.submit({"x": np.ones((1, 1), np.float32)}, ["y"]) for _ in range(8)]
    await asyncio.gather(*futures)
    assert peak == 4
    await batcher.stop()


async def test_a_duty_cycle_makes_the_worker_rest_after_each_batch() -> None:
    spans: list[tuple[float, float]] = []

    async def run(inputs: dict[str, np.ndarray], outputs: object) -> dict[str, np.ndarray]:
        started = time.monotonic()
        await asyncio.sleep(0.02)  # the batch's compute
        spans.append((started, time.monotonic()))
        return {"y": inputs["x"]}

    batcher = Batcher("m", run, BatcherSettings(max_batch_size=1), batchable=False)
    batcher.start()
    batcher.limit(instances=None, max_queue_size=None, duty_cycle=0.25)
    assert batcher.duty_cycle == 0.25
    futures = [batcher.submit({"x": np.ones((1, 1), np.float32)}, ["y"]) for _ in range(3)]
    await asyncio.gather(*futures)
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        # after 20 ms of compute, a 25% duty cycle rests at least 3 x as long
        assert next_start - start >= 4 * (end - start) * 0.99
    batcher.limit(instances=None, max_queue_size=None)
    assert batcher.duty_cycle == 1.0
    with pytest.raises(ConfigError, match="duty_cycle"):
        batcher.limit(instances=None, max_queue_size=None, duty_cycle=0.0)
    await batcher.stop()


async def test_a_held_batch_answers_no_sooner_than_its_rows_allow() -> None:
    # a slower box rehearsed: 30 ms per row, whatever the model itself takes
    settings = BatcherSettings(max_batch_size=4, hold_ms_per_row=30.0)
    batcher = Batcher("m", Recorder(), settings, batchable=True)
    batcher.start()
    started = time.monotonic()
    await batcher.submit(_req(1.0), ["y"])
    one = time.monotonic() - started
    started = time.monotonic()
    results = await asyncio.gather(*(batcher.submit(_req(v), ["y"]) for v in range(3)))
    three = time.monotonic() - started
    assert [float(r["y"][0, 0]) for r in results] == [0.0, 2.0, 4.0]
    assert 0.03 <= one < 0.03 + 0.5
    assert three >= 0.09  # one batch of three rows: three rows' hold
    await batcher.stop()
    with pytest.raises(ConfigError, match="hold_ms_per_row"):
        BatcherSettings(hold_ms_per_row=-1.0)
