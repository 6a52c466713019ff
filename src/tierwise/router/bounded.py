"""A time limit on a coroutine that arms no timer and makes no task unless it waits.

``asyncio.wait_for`` (a task per call before Python 3.12) and ``asyncio.timeout`` (a timer
armed and cancelled per call) cost several microseconds each, a fair share of a small
in-process model's time. :func:`bounded` runs the coroutine's first step directly: a model that
answers on the event loop's thread finishes there, with no timer ever armed (nothing could
have interrupted it anyway). Only when the coroutine waits (a worker thread, a queue) is a
timer armed for what is left of ``timeout_s``; when it fires, the waiting task is
cancelled and :class:`TimeoutError` raised in its place, as ``asyncio.timeout`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["bounded"]

T = TypeVar("T")


def bounded(coro: Coroutine[Any, Any, T], timeout_s: float) -> _Bounded[T]:
    """Await ``coro`` for at most ``timeout_s`` seconds (see the module docstring)."""
    return _Bounded(coro, timeout_s)


class _Bounded(Generic[T]):
    __slots__ = ("_coro", "_expired", "_started", "_timeout_s")

    def __init__(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> None:
        self._coro = coro
        self._timeout_s = timeout_s
        self._expired = False
        self._started = time.monotonic()

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self._expired = True
        task.cancel()

    def __await__(self) -> Generator[Any, None, T]:
        coro = self._coro
        try:
            waiting = coro.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        task = asyncio.current_task()
        if task is None:  # not driven by an asyncio task: nothing to cancel, no limit
            return (yield from _drive(coro, waiting))
        loop = asyncio.get_running_loop()
        cancelling = task.cancelling()
        left_s = self._timeout_s - (time.monotonic() - self._started)
        handle = loop.call_at(loop.time() + left_s, self._expire, task)
        try:
            return (yield from _drive(coro, waiting))
        except asyncio.CancelledError:
            if self._expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            handle.cancel()


def _drive(coro: Coroutine[Any, Any, T], waiting: Any) -> Generator[Any, None, T]:
    """``yield from`` for a coroutine whose first step already ran and yielded ``waiting``."""
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # handed to the coroutine, as ``yield from`` does
            try:
                waiting = coro.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
