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

from tierwise.errors import ConfigError, TierwiseError
from tierwise.http.client import HttpClient
from tierwise.outbox.settings import DrainerSettings
from tierwise.outbox.store import Outbox
from tierwise.outbox.types import OutboxItem

__all__ = ["DeliverFn", "Drainer", "finish"]

DeliverFn = Callable[[OutboxItem], Awaitable[bytes]]

logger = logging.getLogger("tierwise.outbox")

_RETRYABLE_STATUS = frozenset({408, 425, 429})


async def finish(task: asyncio.Task[None] | None, grace_s: float) -> None:
    """Let ``task`` end its current round, cancelling it after ``grace_s``."""
    if task is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), grace_s)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Drainer:
    """Delivers ``tier``'s outbox items while ``healthy()`` is true (see module docstring).

    ``settings`` pace the rounds and the callbacks (:class:`DrainerSettings`); ``wake()``
    makes an idle drainer look now. Callbacks are POSTed through ``client`` (one of its
    own, closed by :meth:`stop`, when None) with the result as body and the headers
    ``Idempotency-Key`` and ``Tierwise-Outbox-Item``.
    """

    def __init__(
        self,
        outbox: Outbox,
        tier: str,
        deliver: DeliverFn,
        healthy: Callable[[], bool],
        settings: DrainerSettings | None = None,
        *,
        client: HttpClient | None = None,
    ) -> None:
        if settings is None:
            settings = DrainerSettings()
        elif not isinstance(settings, DrainerSettings):
            raise ConfigError("settings", "a DrainerSettings", type(settings).__name__)
        self.outbox = outbox
        self.tier = tier
        self.settings = settings
        self._deliver = deliver
        self._healthy = healthy
        self._owns_client = client is None
        self._client = client or HttpClient(
            timeout_s=settings.callback_timeout_s,
            max_response_bytes=settings.callback_max_response_bytes,
        )
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
        await finish(task, grace_s)
        if self._owns_client:
            await self._client.aclose()

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
        batch, lease_s = self.settings.batch_size, self.settings.lease_s
        items = await asyncio.to_thread(self.outbox.claim, self.tier, limit=batch, lease_s=lease_s)
        await asyncio.gather(*(self._handle(item) for item in items))
        orphans = await asyncio.to_thread(
            self.outbox.claim_callbacks, self.tier, limit=batch, lease_s=lease_s
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
            if handled >= self.settings.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
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
        settings = self.settings
        headers = {
            "content-type": settings.callback_content_type,
            "idempotency-key": item.idempotency_key or item.id,
            "tierwise-outbox-item": item.id,
        }
        error: str | None = None
        for attempt in range(settings.callback_attempts):
            if attempt:
                await asyncio.sleep(settings.callback_backoff_s * 2.0 ** (attempt - 1))
            try:
                response = await self._client.post(
                    item.callback_url,
                    content=result,
                    headers=headers,
                    timeout_s=settings.callback_timeout_s,
                )
            except TierwiseError as exc:  # unreachable, timed out, answer too large
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                error = None
                break
            error = f"HTTP {response.status_code} from callback"
            status = response.status_code
            if 400 <= status < 500 and status not in _RETRYABLE_STATUS:
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
    elif isinstance(exc, TypeError):
        return None, True
    else:  # an HTTP client's status error (httpx's HTTPStatusError, requests' HTTPError)
        code = getattr(getattr(exc, "response", None), "status_code", None)
        status = code if isinstance(code, int) else None
    retry_after = getattr(exc, "retry_after_s", None)
    retry_after_s = float(retry_after) if isinstance(retry_after, int | float) else None
    permanent = status is not None and 400 <= status < 500 and status not in _RETRYABLE_STATUS
    return retry_after_s, permanent
