"""The ceiling for Python HTTP on this machine: a raw ASGI endpoint on uvicorn (uvloop,
httptools) that decodes the V2 JSON request into numpy arrays (the least any V2 server
does with a request) and returns a canned response.

Usage: python benchmarks/bare_asgi.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import orjson
import uvicorn

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}

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
        arrays = [
            np.asarray(i["data"], dtype=DTYPES[i["datatype"]]).reshape(i["shape"])
            for i in request["inputs"]
        ]
        if not arrays:
            raise ValueError("no inputs")
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": CANNED})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
        access_log=False, log_level="warning", lifespan="off", proxy_headers=False,
        server_header=False,
    )  # fmt: skip
