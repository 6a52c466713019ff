"""Shared pieces of the outbox tests: a settable clock and small request bodies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from tierwise.protocol import InferRequest, encode_request


class FakeClock:
    def __init__(self, now_s: float = 1_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def request_body(i: int) -> bytes:
    request = InferRequest(inputs={"x": np.array([float(i)], dtype=np.float32)}, id=f"r{i}")
    return encode_request(request)[0]


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
