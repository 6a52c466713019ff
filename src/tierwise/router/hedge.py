"""Hedging: when a remote tier is slow to answer an interactive request, ask the next
remote tier too and take whichever answers first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from tierwise.router.answer import AttemptRecord
from tierwise.router.stages import Answer, Step

__all__ = ["hedged"]


async def hedged(
    call: Callable[[Step], Awaitable[Answer | None]],
    step: Step,
    backup: Step,
    after_s: float,
    on_backup: Callable[[str], None] | None = None,
) -> tuple[Answer | None, list[AttemptRecord]]:
    """``call(step)``; if it has not answered within ``after_s``, ``call(backup)`` too and
    take whichever answers first (None when neither does). Also returns the trace notes on
    the call given up on. ``on_backup(tier)`` hears of each backup asked."""
    first = asyncio.ensure_future(call(step))
    done, _ = await asyncio.wait({first}, timeout=after_s)
    if done:
        return first.result(), []
    if on_backup is not None:
        on_backup(backup.name)
    second = asyncio.ensure_future(call(backup))
    pending = {first, second}
    winner: Answer | None = None
    while pending and winner is None:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if winner is None and task.result() is not None:
                winner = task.result()
    notes: list[AttemptRecord] = []
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        loser = step.name if task is first else backup.name
        reason = "hedged: cancelled"
        if winner is not None:
            reason += f" once {winner[0].name} answered"
        notes.append((loser, "skipped", reason, 0.0, 0.0, None, None))
    return winner, notes
