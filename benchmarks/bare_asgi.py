"""The ceiling for Python HTTP on this machine: a raw ASGI endpoint on uvicorn (uvloop,
httptools) that decodes the V2 JSON request and returns a canned response.

Usage: python benchmarks/bare_asgi.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import uvicorn

CANNED = orjson.dumps(
    {
        "model_name": "large",
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [1, 10], "data": [0.1] * 10},
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [0]},
        ],
    }
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(CANNED)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        request = orjson.loads(body)
        if not request.get("inputs"):
            raise ValueError("no inputs")
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": CANNED})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
        access_log=False, log_level="warning", lifespan="off",
    )  # fmt: skip
