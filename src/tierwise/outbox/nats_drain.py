"""The hub's deliverer for the JetStream outbox: a durable pull consumer with explicit acks.

It fetches up to ``fetch_batch`` items of one tier, hands each to the same
:data:`~tierwise.outbox.drain.DeliverFn` the SQLite :class:`Drainer` uses, stores the
outcome in the hub's results bucket (:mod:`tierwise.outbox.nats_results`) and acks the item
only after both. An item held until later (``not_before_s``) is put back with that delay,
undelivered. An item with a callback URL gets its result POSTed once after the ack (one
attempt: the outcome in the bucket says whether it arrived). A delivery that fails is
negatively acked with a backoff delay (or terminated on a 4xx-type error); a consumer that
dies leaves its items unacked and JetStream redelivers them after ``ack_wait_s``. Delivery
is therefore at-least-once, and ``deliver`` passes the item's idempotency key to the tier so
the tier's effect happens once. At most ``max_ack_pending`` items are in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsClientError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tierwise.errors import ConfigError, OutboxError, TierwiseError
from tierwise.http.client import HttpClient
from tierwise.outbox.drain import DeliverFn, finish
from tierwise.outbox.nats_results import NatsResults, encode_outcome
from tierwise.outbox.nats_settings import NatsOutboxSettings
from tierwise.outbox.nats_store import (
    connect,
    ensure_stream,
    hub_stream_config,
    item_from_headers,
)
from tierwise.outbox.types import ItemStatus, OutboxItem

__all__ = ["NatsDrainer", "item_from_message"]

logger = logging.getLogger("tierwise.outbox")

_RETRYABLE_STATUS = frozenset({408, 425, 429})


def item_from_message(msg: Msg, tier: str) -> OutboxItem:
    """The outbox item a JetStream message carries (``attempts`` = deliveries so far)."""
    return item_from_headers(
        msg.headers or {},
        msg.data,
        tier,
        f"seq-{msg.metadata.sequence.stream}",
        status="leased",
        attempts=int(msg.metadata.num_delivered or 1),
    )


class NatsDrainer:
    """Delivers ``tier``'s items from the hub stream while ``healthy()`` is true.

    :meth:`start` connects (to ``settings.url``, the hub), creates or updates the hub
    stream and the durable consumer, and runs the fetch loop; :meth:`drain_once` runs one
    fetch-and-deliver round (for tests and benchmarks driving it by hand after
    :meth:`open`). ``keep_results=False`` stores no outcomes (for streams nobody asks
    about, such as heartbeats); ``callbacks`` posts the callbacks (one of its own when
    None).
    """

    def __init__(
        self,
        settings: NatsOutboxSettings,
        tier: str,
        deliver: DeliverFn,
        healthy: Callable[[], bool] = lambda: True,
        *,
        callbacks: HttpClient | None = None,
        wall_clock: Callable[[], float] = time.time,
        keep_results: bool = True,
    ) -> None:
        if not isinstance(settings, NatsOutboxSettings):
            raise ConfigError("settings", "a NatsOutboxSettings", type(settings).__name__)
        self.settings = settings
        self.tier = tier
        self.subject = settings.tier_filter(tier)
        self._deliver = deliver
        self._healthy = healthy
        self._wall_clock = wall_clock
        self._keep_results = keep_results
        self._owns_callbacks = callbacks is None
        self._callbacks = callbacks or HttpClient(timeout_s=10.0, max_response_bytes=64 * 1024)
        self.results: NatsResults | None = None
        self._client: Client | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.delivered = 0
        self.failures = 0
        self.redelivered = 0
        self.held = 0
        self.callbacks_delivered = 0
        self.callbacks_failed = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, set up the hub stream and the durable pull consumer (idempotent)."""
        if self._sub is not None:
            return
        s = self.settings
        client = await connect(s, name=f"tierwise-drainer-{self.tier}")
        try:
            js = client.jetstream(domain=s.hub_domain, timeout=s.publish_timeout_s)
            await ensure_stream(js, hub_stream_config(s), where=s.display_url)
            if self._keep_results:
                self.results = await NatsResults.open(js, s, create=True)
            config = ConsumerConfig(
                durable_name=f"{s.durable}-{self.tier}",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=s.ack_wait_s,
                max_deliver=s.max_deliver,
                max_ack_pending=s.max_ack_pending,
                max_waiting=16,
                filter_subject=self.subject,
            )
            # created, or brought to this config (a filter that changed when leaves were
            # added, or left from an older layout of the subjects)
            await js.add_consumer(s.hub_stream, config)
            self._sub = await js.pull_subscribe(
                self.subject,
                durable=config.durable_name,
                stream=s.hub_stream,
                config=config,
                pending_msgs_limit=max(s.max_ack_pending, s.fetch_batch) * 2,
                pending_bytes_limit=s.max_msg_bytes * s.fetch_batch * 2,
            )
        except BaseException as exc:
            await client.close()
            if isinstance(exc, NatsClientError):
                raise OutboxError(
                    f"cannot set up the consumer {config.durable_name}: {exc}", path=s.display_url
                ) from exc
            raise
        self._client = client

    @property
    def running(self) -> bool:
        """True while the fetch loop is alive."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Open, then run the fetch loop on the running loop."""
        await self.open()
        if not self.running:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"tierwise-nats-drainer-{self.tier}"
            )

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop after the current round (cancelled after ``grace_s``) and close; items
        cut short stay unacked and come back after ``ack_wait_s``."""
        self._stopping = True
        task, self._task = self._task, None
        await finish(task, grace_s)
        client, self._client, self._sub = self._client, None, None
        if client is not None and not client.is_closed:
            await client.close()
        if self._owns_callbacks:
            await self._callbacks.aclose()

    async def undelivered(self) -> int:
        """Items of this tier not yet acked (waiting or in flight), as the consumer counts."""
        if self._sub is None:
            raise OutboxError("drainer not opened", path=self.settings.display_url)
        try:
            info = await self._sub.consumer_info()
        except (NatsClientError, TimeoutError) as exc:
            raise OutboxError(
                f"cannot read the consumer: {exc}", path=self.settings.display_url
            ) from exc
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def __aenter__(self) -> NatsDrainer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- one round ------------------------------------------------------------------------

    async def drain_once(self, *, timeout_s: float | None = None) -> int:
        """Fetch up to ``fetch_batch`` items (waiting up to ``timeout_s``, by default
        ``fetch_timeout_s``, for the first) and deliver them; returns how many."""
        if self._sub is None:
            raise OutboxError("drainer not opened", path=self.settings.display_url)
        wait_s = self.settings.fetch_timeout_s if timeout_s is None else timeout_s
        try:
            messages = await self._sub.fetch(self.settings.fetch_batch, timeout=wait_s)
        except (NatsTimeoutError, TimeoutError):
            return 0
        await asyncio.gather(*(self._handle(msg) for msg in messages))
        return len(messages)

    async def _run(self) -> None:
        while not self._stopping:
            if not self._is_healthy():
                await asyncio.sleep(self.settings.fetch_timeout_s)
                continue
            try:
                await self.drain_once()
            except Exception:  # keep draining: the next round may succeed
                logger.exception("nats outbox round for tier %r failed", self.tier)
                await asyncio.sleep(self.settings.fetch_timeout_s)

    def _is_healthy(self) -> bool:
        try:
            return bool(self._healthy())
        except Exception:
            logger.exception("healthy() of tier %r raised; treated as unhealthy", self.tier)
            return False

    async def _handle(self, msg: Msg) -> None:
        item = item_from_message(msg, self.tier)
        wait_s = item.not_before_s - self._wall_clock()
        if wait_s > 0.01:  # held (cheap hours, a spot window): back when it is due
            self.held += 1
            try:
                await msg.nak(delay=wait_s)
            except NatsClientError as exc:
                logger.warning("outbox item %s: cannot hold it back (%s)", item.id, exc)
            return
        if item.attempts > 1:
            self.redelivered += 1
        try:
            result = await self._deliver(item)
            if not isinstance(result, bytes | bytearray | memoryview):
                raise TypeError(f"deliver returned {type(result).__name__}, expected bytes")
            await self._record(item, "done", result=bytes(result))
        except Exception as exc:
            self.failures += 1
            await self._settle_failure(msg, item, exc)
            return
        try:
            # not waited for: the outcome is stored already, and an ack that is lost
            # brings the item back after ack_wait_s, which the tier answers from its store
            await msg.ack()
        except (NatsClientError, TimeoutError) as exc:
            logger.warning("outbox item %s: ack failed (%s)", item.id, exc)
            return
        self.delivered += 1
        if item.callback_url is not None:
            await self._post_callback(item, bytes(result))

    async def _record(
        self,
        item: OutboxItem,
        status: ItemStatus,
        *,
        result: bytes | None = None,
        error: str | None = None,
        callback_status: str | None = None,
    ) -> None:
        if not self._keep_results:
            return
        if self.results is None:
            raise OutboxError("drainer not opened", path=self.settings.display_url)
        if callback_status is None and item.callback_url is not None and status == "done":
            callback_status = "pending"
        entry = encode_outcome(
            item, status, result=result, error=error, callback_status=callback_status
        )
        limit = self.results.max_value_bytes
        if len(entry) > limit:  # the tier answered; the answer is too large to keep
            entry = encode_outcome(
                item, status, callback_status=callback_status,
                error=f"the answer ({len(result or b'')} bytes) is larger than the results "
                f"bucket keeps ({limit} bytes); it was not stored",
            )  # fmt: skip
        await self.results.put(item.id, entry)

    async def _post_callback(self, item: OutboxItem, result: bytes) -> None:
        url = item.callback_url or ""
        headers = {"content-type": "application/json", "tierwise-outbox-item": item.id,
                   "idempotency-key": item.idempotency_key or item.id}  # fmt: skip
        try:
            response = await self._callbacks.post(url, content=result, headers=headers)
            ok = response.is_success
            error = None if ok else f"HTTP {response.status_code} from callback"
        except TierwiseError as exc:  # unreachable, timed out, answer too large
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if ok:
            self.callbacks_delivered += 1
        else:
            self.callbacks_failed += 1
            logger.warning("outbox item %s: callback to %s failed (%s)", item.id, url, error)
        try:
            await self._record(item, "done", result=result, error=error,
                               callback_status="delivered" if ok else "failed")  # fmt: skip
        except OutboxError as exc:
            logger.warning("outbox item %s: callback outcome not stored (%s)", item.id, exc)

    async def _settle_failure(self, msg: Msg, item: OutboxItem, exc: Exception) -> None:
        retry_after_s, permanent = _classify(exc)
        s = self.settings
        try:
            if permanent or item.attempts >= s.max_deliver:
                try:
                    await self._record(item, "failed", error=str(exc) or type(exc).__name__)
                except OutboxError as record_exc:
                    logger.warning("outbox item %s: outcome not stored (%s)", item.id, record_exc)
                await msg.term()
                outcome = "failed"
            else:
                if retry_after_s is None:
                    retry_after_s = min(
                        s.backoff_max_s, s.backoff_base_s * 2.0 ** (item.attempts - 1)
                    )
                await msg.nak(delay=retry_after_s)
                outcome = f"retry in {retry_after_s:.1f}s"
        except NatsClientError as nak_exc:
            outcome = f"unsettled ({nak_exc}); back after ack_wait_s"
        logger.warning(
            "outbox item %s for tier %r: delivery failed (%s); %s", item.id, self.tier, exc, outcome
        )


def _classify(exc: Exception) -> tuple[float | None, bool]:
    """(retry_after_s, permanent): a 4xx-type error other than timeouts and throttling
    will fail the same way again."""
    if isinstance(exc, TypeError):
        return None, True
    status: Any = exc.status_code if isinstance(exc, TierwiseError) else None
    if status is None:  # an HTTP client's status error
        status = getattr(getattr(exc, "response", None), "status_code", None)
    retry_after = getattr(exc, "retry_after_s", None)
    retry_after_s = float(retry_after) if isinstance(retry_after, int | float) else None
    permanent = isinstance(status, int) and 400 <= status < 500 and status not in _RETRYABLE_STATUS
    return retry_after_s, permanent
