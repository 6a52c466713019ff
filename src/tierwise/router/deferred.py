"""The gateway's deferred work: requests the policy holds back (cheap hours, spot
windows) or that no tier could take now, queued in the outbox and routed afresh when the
drainer delivers them.

An item keeps the workload, the privacy and residency the request was routed under (a
client's floors included), the cascade tier its caller already ran (``escalated_from``)
and the client that sent it; an ``idempotency_key`` is
prefixed with the client's name, so one client's key never finds another's item. On
delivery the client's floors apply again, a spent budget degrades rather than refuses
(the work was already taken on), and the answer's cost is charged to the client.
"""

from __future__ import annotations

from typing import Any

import orjson

from tierwise.errors import NoRouteError, OutboxItemNotFoundError, TierUnavailableError
from tierwise.http.asgi import JSON_HEADERS, Reply
from tierwise.outbox import DeferredQueue, OutboxItem
from tierwise.protocol import InferRequest, decode_request, encode_request, encode_response
from tierwise.router.clients import ClientGate
from tierwise.router.meta import GATEWAY_PARAMETERS, meta_from_parameters
from tierwise.router.router import Router
from tierwise.router.types import RequestMeta
from tierwise.security import Principal

__all__ = ["DEFERRED_TIER", "DeferredWork", "accepted"]

#: The outbox queue deferred requests wait in (they are routed afresh when drained).
DEFERRED_TIER = "deferred"


def accepted(item_id: str, reason: str) -> Reply:
    """The 202 a deferred request gets: its id and where to fetch its result."""
    doc = {"id": item_id, "status": "deferred", "reason": reason,
           "result_url": f"/v2/outbox/{item_id}"}  # fmt: skip
    return 202, orjson.dumps(doc), list(JSON_HEADERS)


class DeferredWork:
    """Queues requests in ``queue`` (an outbox of either backend) and delivers them
    through ``router``, with the limits of ``clients``."""

    def __init__(self, queue: DeferredQueue, router: Router, clients: ClientGate) -> None:
        self.queue = queue
        self.router = router
        self.clients = clients

    async def enqueue(
        self,
        request: InferRequest,
        meta: RequestMeta,
        *,
        not_before_s: float | None,
        client: str | None,
    ) -> str:
        """Queue ``request`` (routed as ``meta``) for ``client``; the item's id."""
        # the privacy and residency the request was routed under (floors included)
        params = (
            dict(request.parameters)
            | {"workload": meta.workload}
            | {k: v for k, v in (("privacy", meta.privacy), ("residency", meta.residency),
                                 ("escalated_from", meta.escalated_from)) if v}
        )  # fmt: skip
        payload, length = encode_request(
            InferRequest(
                inputs=request.inputs, id=request.id, parameters=params, outputs=request.outputs
            ),
            binary=True,
        )
        key = params.get("idempotency_key")
        if isinstance(key, str) and client is not None:
            key = f"{client}:{key}"  # one client's key never finds another's item
        callback = params.get("callback_url")
        return await self.queue.put(
            DEFERRED_TIER,
            payload,
            idempotency_key=key if isinstance(key, str) else None,
            not_before_s=not_before_s,
            callback_url=callback if isinstance(callback, str) else None,
            meta={
                "workload": meta.workload,
                "header_length": length,
                "received_s": meta.received_s,
                "client": client,
            },
        )

    async def deliver(self, item: OutboxItem) -> bytes:
        """Route a queued request now (the drainer's delivery); the encoded answer."""
        request = decode_request(item.payload, header_length=item.meta.get("header_length"))
        received = item.meta.get("received_s")  # deadlines still count from arrival
        meta = meta_from_parameters(
            request.parameters,
            default_workload=None,
            received_s=float(received) if isinstance(received, int | float) else 0.0,
        )
        request.parameters = {
            k: v for k, v in request.parameters.items() if k not in GATEWAY_PARAMETERS
        }
        # redeliveries carry the same key, so a tier server acts on the item once
        request.parameters["idempotency_key"] = item.idempotency_key or item.id
        owner = item.meta.get("client")
        client = owner if isinstance(owner, str) else None
        limits = self.clients.limits.get(client) if client is not None else None
        if limits is not None and client is not None:
            meta = self.clients.apply(client, limits, meta, accepted=True)
        try:
            answer = await self.router.infer(request, meta, allow_defer=False)
        except NoRouteError as exc:
            raise TierUnavailableError(str(exc), tier=DEFERRED_TIER) from exc
        self.clients.charge(client, answer.cost_usd)
        if answer.response is None:
            raise TierUnavailableError("no answer", tier=DEFERRED_TIER)
        answer.response.parameters["trace_id"] = answer.trace_id
        body, _ = encode_response(answer.response)
        return body

    async def item(self, item_id: str, principal: Principal | None) -> Reply:
        """``GET /v2/outbox/{id}``: the item's status and result, for the client that
        queued it or an admin (another client's item reads as no item at all)."""
        item = await self.queue.get(item_id)
        owner = item.meta.get("client")
        if (
            principal is not None
            and owner is not None
            and owner != principal.client
            and not principal.may("admin")
        ):  # another client's item reads as no item at all
            raise OutboxItemNotFoundError(path=self.queue.path, item_id=item_id)
        doc: dict[str, Any] = {"id": item.id, "status": item.status, "attempts": item.attempts}
        if item.last_error:
            doc["error"] = item.last_error
        if item.result is not None:
            doc["result"] = orjson.loads(item.result)
        return 200, orjson.dumps(doc), list(JSON_HEADERS)
