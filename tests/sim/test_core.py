"""The simulator's core against closed forms: M/M/1 and M/D/1 mean waits (event by event
and in vectorised blocks), a batching server's saturated throughput and its queue bound;
runs are a pure function of the seed."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from tierwise.errors import ConfigError
from tierwise.sim import Simulation, batching_server, fifo_departures, spread_departures

LAMBDA, MU = 0.5, 1.0  # utilisation 0.5
MM1_WAIT = LAMBDA / (MU * (MU - LAMBDA))  # 1.0 s in the queue
MD1_WAIT = LAMBDA / MU / (2 * MU * (1 - LAMBDA / MU))  # 0.5 s


def _event_driven_waits(sim: Simulation, n: int, deterministic: bool) -> np.ndarray:
    """One FIFO server run event by event on ``sim``: each customer's wait in queue."""
    arrivals = sim.stream("arrivals")
    services = sim.stream("services")
    waits = np.empty(n)
    queue: deque[tuple[int, float]] = deque()
    busy = [False]
    count = [0]

    def start(index: int, arrived_s: float) -> None:
        busy[0] = True
        waits[index] = sim.now_s - arrived_s
        service = 1.0 / MU if deterministic else services.exponential(1.0 / MU)
        sim.after(service, finish)

    def finish() -> None:
        busy[0] = False
        if queue:
            start(*queue.popleft())

    def arrive() -> None:
        index = count[0]
        count[0] += 1
        if busy[0]:
            queue.append((index, sim.now_s))
        else:
            start(index, sim.now_s)
        if count[0] < n:
            sim.after(arrivals.exponential(1.0 / LAMBDA), arrive)

    sim.at(0.0, arrive)
    sim.run()
    return waits


@pytest.mark.parametrize(("deterministic", "expected"), [(False, MM1_WAIT), (True, MD1_WAIT)])
def test_event_by_event_mean_waits_match_the_closed_forms(
    deterministic: bool, expected: float
) -> None:
    waits = _event_driven_waits(Simulation(seed=11), 200_000, deterministic)
    assert waits.mean() == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize(("deterministic", "expected"), [(False, MM1_WAIT), (True, MD1_WAIT)])
def test_vectorised_fifo_matches_the_closed_forms(deterministic: bool, expected: float) -> None:
    sim = Simulation(seed=5)
    n = 1_000_000
    arrivals = np.cumsum(sim.stream("arrivals").exponential(1.0 / LAMBDA, n))
    service = np.full(n, 1.0 / MU) if deterministic else sim.stream("s").exponential(1 / MU, n)
    departures = fifo_departures(arrivals, service)
    waits = departures - service - arrivals
    assert waits.min() >= -1e-9
    assert waits.mean() == pytest.approx(expected, rel=0.02)


def test_fifo_and_replicas_by_hand() -> None:
    arrivals = np.array([0.0, 0.5, 0.6, 3.0, 3.1, 3.2])
    service = np.array([1.0, 1.0, 0.2, 0.1, 0.5, 0.5])
    # by hand: starts 0, 1, 2, 3, 3.1, 3.6
    assert fifo_departures(arrivals, service).tolist() == pytest.approx(
        [1.0, 2.0, 2.2, 3.1, 3.6, 4.1]
    )
    two = spread_departures(arrivals, service, 2)  # 0,2,4 and 1,3,5 each on their own
    assert two.tolist() == pytest.approx([1.0, 1.5, 1.2, 3.1, 3.6, 3.7])


def test_a_saturated_batcher_runs_full_batches() -> None:
    costs = np.array([0.0] + [0.002 + 0.0005 * b for b in range(1, 9)])
    n = 20_000
    arrivals = np.linspace(0.0, 0.01, n)  # all queued at once
    run = batching_server(arrivals, costs, max_batch=8, max_delay_s=0.001, max_queue=n,
                          instances=1)  # fmt: skip
    assert not run.refused.any()
    throughput = n / (np.nanmax(run.done_s) - arrivals[0])
    assert throughput == pytest.approx(8 / costs[8], rel=0.02)
    assert np.mean(run.batch_rows == 8) > 0.99
    # two instances run twice as many
    both = batching_server(arrivals, costs, max_batch=8, max_delay_s=0.001, max_queue=n,
                           instances=2)  # fmt: skip
    assert n / np.nanmax(both.done_s) == pytest.approx(2 * 8 / costs[8], rel=0.02)


def test_batcher_waits_for_company_then_bounds_its_queue() -> None:
    costs = np.array([0.0, 0.01, 0.012, 0.014, 0.016])
    # a lone request waits max_delay_s for company, then runs alone
    lone = batching_server(np.array([1.0]), costs, max_batch=4, max_delay_s=0.005, max_queue=8)
    assert (lone.start_s[0], lone.done_s[0], lone.batch_rows[0]) == pytest.approx((1.005, 1.015, 1))
    # three within the delay run together, the fourth fills the batch at once
    four = batching_server(np.array([1.0, 1.001, 1.002, 1.003]), costs, max_batch=4,
                           max_delay_s=0.005, max_queue=8)  # fmt: skip
    assert four.start_s.tolist() == pytest.approx([1.003] * 4)
    assert four.batch_rows.tolist() == [4, 4, 4, 4]
    # without batching it is a FIFO server
    arrivals = np.cumsum(np.random.default_rng(2).exponential(0.02, 1000))
    single = batching_server(arrivals, costs, max_batch=1, max_delay_s=0.0, max_queue=10_000)
    assert single.done_s == pytest.approx(fifo_departures(arrivals, np.full(1000, 0.01)))
    # a burst past the queue's bound is refused (429), the rest served: arriving at once,
    # four are taken together and the others refused
    burst = batching_server(np.zeros(100), costs, max_batch=4, max_delay_s=0.0, max_queue=4)
    assert burst.refused.sum() == 96
    assert burst.batches == 1
    # queued one at a time behind a busy worker, requests run alone (FIFO) ...
    spaced = batching_server(np.array([0.0, 0.004, 0.012]), costs, max_batch=4,
                             max_delay_s=0.0, max_queue=8)  # fmt: skip
    assert spaced.done_s.tolist() == pytest.approx([0.01, 0.02, 0.03])
    # ... and two waiting when it frees run together
    pair = batching_server(np.array([0.0, 0.004, 0.006]), costs, max_batch=4,
                           max_delay_s=0.0, max_queue=8)  # fmt: skip
    assert pair.done_s.tolist() == pytest.approx([0.01, 0.022, 0.022])


def test_runs_are_a_pure_function_of_the_seed() -> None:
    first = Simulation(seed=3)
    numbers = first.stream("devices").random(5)
    again = Simulation(seed=3)
    again.stream("a-new-stream").random(100)  # another stream drawn first changes nothing
    assert again.stream("devices").random(5).tolist() == numbers.tolist()
    assert Simulation(seed=4).stream("devices").random(5).tolist() != numbers.tolist()
    assert _event_driven_waits(Simulation(seed=9), 2000, False).tolist() == (
        _event_driven_waits(Simulation(seed=9), 2000, False).tolist()
    )


def test_events_run_in_time_then_schedule_order() -> None:
    sim = Simulation()
    seen: list[str] = []
    sim.at(2.0, seen.append, "late")
    sim.at(1.0, seen.append, "first")
    sim.at(1.0, seen.append, "second")  # same time: scheduled after
    assert sim.run(until_s=1.5) == 2
    assert (seen, sim.now_s, sim.pending) == (["first", "second"], 1.5, 1)
    with pytest.raises(ConfigError, match="time_s"):
        sim.at(1.0, seen.append, "the past")
    with pytest.raises(ConfigError, match="time_s"):
        sim.at(float("nan"), seen.append, "never")
    sim.run()
    assert seen[-1] == "late"
    with pytest.raises(ConfigError, match="seed"):
        Simulation(seed=-1)


def test_bad_queue_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="arrivals_s"):
        fifo_departures(np.array([1.0, 0.5]), np.array([1.0, 1.0]))
    with pytest.raises(ConfigError, match="service_s"):
        fifo_departures(np.array([1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ConfigError, match="replicas"):
        spread_departures(np.array([1.0]), np.array([1.0]), 0)
    with pytest.raises(ConfigError, match="service_s"):
        batching_server(np.array([1.0]), np.array([0.0, 1.0]), max_batch=4, max_delay_s=0,
                        max_queue=1)  # fmt: skip


def test_the_compiled_batcher_gives_the_python_loops_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tierwise.sim import kernel, queues

    assert kernel.COMPILED  # numba is installed with the dev extra
    rng = np.random.default_rng(4)
    times = np.cumsum(rng.exponential(0.004, 20_000))
    costs = np.array([0.0, 0.01, 0.012, 0.014, 0.016])
    factors = rng.lognormal(0.0, 0.2, times.size)
    args = (times, costs, factors, 4, 0.002, 16, 0.5)
    compiled = kernel.one_worker(*args)
    plain = kernel._one_worker(*args)
    for a, b in zip(compiled[:4], plain[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    assert compiled[4] == plain[4]
    assert plain[3].any()  # the queue bound was reached: the test covers refusals
    assert plain[2].max() == 4  # and full batches
    # without numba, batching_server's own loop (with its vectorised stretches) agrees
    compiled_run = batching_server(times, costs, max_batch=4, max_delay_s=0.0, max_queue=16,
                                   jitter=factors, free_s=[0.5])  # fmt: skip
    monkeypatch.setattr(queues, "COMPILED", False)
    python_run = batching_server(times, costs, max_batch=4, max_delay_s=0.0, max_queue=16,
                                 jitter=factors, free_s=[0.5])  # fmt: skip
    np.testing.assert_allclose(python_run.done_s, compiled_run.done_s, rtol=1e-12)
    np.testing.assert_array_equal(python_run.refused, compiled_run.refused)
