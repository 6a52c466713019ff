"""Helper process for the kill -9 tests: fills an outbox, then delivers it to a receiver.

Usage: python outbox_worker.py DB URL COUNT HOLD_S LEASE_S [HOLD_FROM]

Puts COUNT requests for tier "cloud" (idempotency keys ``key-<i>``), printing
``put <key> <id>`` after each put returned, then claims one item at a time, POSTs it to
URL, prints ``delivered <key> <id>``, waits HOLD_S (from the HOLD_FROM-th delivery on, 0 by default)
and completes it, printing
``completed <key> <id>``. The test SIGKILLs it somewhere along the way.
"""

from __future__ import annotations

import sys
import time

import httpx
import numpy as np

from tierwise.outbox import Outbox
from tierwise.protocol import InferRequest, encode_request


def main(argv: list[str]) -> int:
    db, url, count_text, hold_text, lease_text = argv[:5]
    count, hold_s, lease_s = int(count_text), float(hold_text), float(lease_text)
    hold_from = int(argv[5]) if len(argv) > 5 else 0
    outbox = Outbox(db, max_items=count)
    print("start", flush=True)
    for i in range(count):
        key = f"key-{i}"
        request = InferRequest(
            inputs={"x": np.array([float(i)], dtype=np.float32)},
            id=key,
            parameters={"idempotency_key": key},
        )
        body, _ = encode_request(request)
        item_id = outbox.put("cloud", body, idempotency_key=key, meta={"i": i})
        print("put", key, item_id, flush=True)
    delivered = 0
    with httpx.Client(timeout=10.0) as client:
        while items := outbox.claim("cloud", limit=1, lease_s=lease_s):
            item = items[0]
            response = client.post(
                url, content=item.payload, headers={"idempotency-key": item.idempotency_key or ""}
            )
            response.raise_for_status()
            print("delivered", item.idempotency_key, item.id, flush=True)
            if delivered >= hold_from:
                time.sleep(hold_s)
            delivered += 1
            outbox.complete(item.id, response.content)
            print("completed", item.idempotency_key, item.id, flush=True)
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
