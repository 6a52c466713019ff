"""The outbox's deliverer: an asyncio task that empties one tier's queue while it is healthy.

Whenever ``healthy()`` says the tier is reachable, the drainer claims due items, hands each
to ``deliver`` (which calls the tier and returns the response bytes), completes it, and
posts the result to the item's callback URL if it has one. A failed delivery goes back to
the queue with backoff (or for good on a 4xx-type error); a crash of this process leaves
leased items that come back to any drainer when their lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

import httpx

from tierwise.errors import ConfigError, TierwiseError
from tierwise.outbox.store import Outbox
from tierwise.outbox.types import OutboxItem

__all__ = ["DeliverFn", "Drainer"]

DeliverFn = Callable[[OutboxItem], Awaitable[bytes]]

logger = logging.getLogger("tierwise.outbox")

_RETRYABLE_STATUS = frozenset({408, 425, 429})


class Drainer:
    """Delivers ``tier``'s outbox items while ``healthy()`` is true (see module docstring).

    ``poll_s`` is how often an idle or unhealthy drainer looks again (``wake()`` makes it
    look now); ``batch`` items are claimed and delivered concurrently per round, each
    under a ``lease_s`` lease, which must outlast ``deliver``'s own timeout. Callbacks are
    POSTed with the result as body and the headers ``Idempotency-Key`` and
    ``Tierwise-Outbox-Item``; up to ``callback_attempts`` tries per claim with exponential
    backoff from ``callback_backoff_s``.
    """

    def __init__(
        self,
        outbox: Outbox,
        tier: str,
        deliver: DeliverFn,
        healthy: Callable[[], bool],
        *,
        poll_s: float = 1.0,
        batch: int = 16,
        lease_s: float = 60.0,
        http: httpx.AsyncClient | None = None,
        callback_attempts: int = 3,
        callback_backoff_s: float = 0.5,
        callback_timeout_s: float = 10.0,
        callback_content_type: str = "application/json",
    ) -> None:
        for name, value in (
            ("poll_s", poll_s),
            ("lease_s", lease_s),
            ("callback_timeout_s", callback_timeout_s),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(name, "a positive number of seconds", value)
        if not callback_backoff_s >= 0:
            raise ConfigError("callback_backoff_s", "a number of seconds >= 0", callback_backoff_s)
        for name, count in (("batch", batch), ("callback_attempts", callback_attempts)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigError(name, "an integer >= 1", count)
        self.outbox = outbox
        self.tier = tier
        self._deliver = deliver
        self._healthy = healthy
        self.poll_s = float(poll_s)
        self.batch = batch
        self.lease_s = float(lease_s)
        self.callback_attempts = callback_attempts
        self.callback_backoff_s = float(callback_backoff_s)
        self.callback_timeout_s = float(callback_timeout_s)
        self.callback_content_type = callback_content_type
        self._http = http
        self._owns_http = http is None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.delivered = 0
        self.failures = 0
        self.callbacks_delivered = 0
        self.callbacks_failed = 0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the drain task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the drain task on the running loop."""
        if self.running:
            return
        self._stopping = False
        self._wake = asyncio.Event()
        if self._http is None:
            self._http = httpx.AsyncClient()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"tierwise-drainer-{self.tier}"
        )

    def wake(self) -> None:
        """Look at the queue now instead of after ``poll_s`` (e.g. the tier just recovered)."""
        if self._wake is not None:
            self._wake.set()

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop after the current round, cancelling it after ``grace_s``. Items cut short
        stay leased and return to the queue when their lease runs out."""
        self._stopping = True
        self.wake()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), grace_s)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> Drainer:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- one round ------------------------------------------------------------------------

    async def drain_once(self) -> int:
        """Claim and deliver one batch of due items, then retry orphaned callbacks; returns
        how many items and callbacks were handled. Does not look at ``healthy()``."""
        items = await asyncio.to_thread(
            self.outbox.claim, self.tier, limit=self.batch, lease_s=self.lease_s
        )
        await asyncio.gather(*(self._handle(item) for item in items))
        orphans = await asyncio.to_thread(
            self.outbox.claim_callbacks, self.tier, limit=self.batch, lease_s=self.lease_s
        )
        for item in orphans:
            if item.result is not None:
                await self._post_callback(item, item.result)
        return len(items) + len(orphans)

    async def _run(self) -> None:
        assert self._wake is not None  # set by start()
        while not self._stopping:
            handled = 0
            if self._is_healthy():
                try:
                    handled = await self.drain_once()
                except Exception:  # keep draining: the next round may succeed
                    logger.exception("outbox drain round for tier %r failed", self.tier)
            if self._stopping:
                break
            if handled >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    def _is_healthy(self) -> bool:
        try:
            return bool(self._healthy())
        except Exception:
            logger.exception("healthy() of tier %r raised; treated as unhealthy", self.tier)
            return False

    async def _handle(self, item: OutboxItem) -> None:
        try:
            result = await self._deliver(item)
            if not isinstance(result, bytes | bytearray | memoryview):
                raise TypeError(f"deliver returned {type(result).__name__}, expected bytes")
        except Exception as exc:
            self.failures += 1
            retry_after_s, permanent = _classify(exc)
            status = await asyncio.to_thread(
                self.outbox.fail,
                item.id,
                f"{type(exc).__name__}: {exc}",
                retry_after_s=retry_after_s,
                permanent=permanent,
                lease_token=item.lease_token,
            )
            logger.warning(
                "outbox item %s for tier %r: delivery failed (%s); now %s",
                item.id, self.tier, exc, status,
            )  # fmt: skip
            return
        body = bytes(result)
        if await asyncio.to_thread(self.outbox.complete, item.id, body):
            self.delivered += 1
            if item.callback_url is not None:
                await self._post_callback(item, body)

    async def _post_callback(self, item: OutboxItem, result: bytes) -> None:
        if item.callback_url is None:
            return
        if self._http is None:  # drain_once() used without start()
            self._http = httpx.AsyncClient()
            self._owns_http = True
        headers = {
            "content-type": self.callback_content_type,
            "idempotency-key": item.idempotency_key or item.id,
            "tierwise-outbox-item": item.id,
        }
        http = self._http
        error: str | None = None
        for attempt in range(self.callback_attempts):
            if attempt:
                await asyncio.sleep(self.callback_backoff_s * 2.0 ** (attempt - 1))
            try:
                response = await http.post(
                    item.callback_url,
                    content=result,
                    headers=headers,
                    timeout=self.callback_timeout_s,
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                error = None
                break
            error = f"HTTP {response.status_code} from callback"
            if response.is_client_error and response.status_code not in _RETRYABLE_STATUS:
                break
        delivered = error is None
        if delivered:
            self.callbacks_delivered += 1
        else:
            self.callbacks_failed += 1
            logger.warning("outbox item %s: callback failed: %s", item.id, error)
        await asyncio.to_thread(
            self.outbox.finish_callback, item.id, delivered=delivered, error=error
        )


def _classify(exc: Exception) -> tuple[float | None, bool]:
    """(retry_after_s, permanent) for a delivery error: a 4xx-type error other than
    timeouts and throttling will fail the same way again, so it is not retried."""
    status: int | None = None
    if isinstance(exc, TierwiseError):
        status = exc.status_code
    elif isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
    elif isinstance(exc, TypeError):
        return None, True
    retry_after = getattr(exc, "retry_after_s", None)
    retry_after_s = float(retry_after) if isinstance(retry_after, int | float) else None
    permanent = status is not None and 400 <= status < 500 and status not in _RETRYABLE_STATUS
    return retry_after_s, permanent
