"""The route table: templates, 404, 405 with Allow, one error mapping; served by uvicorn
on loopback and driven over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import orjson
import pytest

from server_helpers import running_app
from tierwise.errors import ConfigError, HttpError, ModelNotFoundError, ServerBusyError
from tierwise.http.asgi import JSON_HEADERS, Receive, Reply, Scope, Send, run_lifespan
from tierwise.http.routing import Request, Route, RouteTable


async def _echo(request: Request) -> Reply:
    doc = {"route": request.method + " " + request.path, "params": dict(request.params)}
    return 200, orjson.dumps(doc), list(JSON_HEADERS)


async def _body_size(request: Request) -> Reply:
    size = 0
    more = True
    while more:
        message = await request.receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    return 201, orjson.dumps({"size": size}), [(b"x-size", str(size).encode())]


async def _missing(request: Request) -> Reply:
    raise ModelNotFoundError(model=request.params["name"])


async def _busy(request: Request) -> Reply:
    raise ServerBusyError(model="m", queue_size=3, retry_after_s=2, status_code=429)


async def _broken(request: Request) -> Reply:
    raise ValueError("secret detail")


def _table() -> RouteTable:
    return RouteTable(
        [
            Route("/v2/models/{name}/infer", _echo, methods=["POST"]),
            Route("/v2/models/{name}/versions/{version}/infer", _echo, methods=["POST"]),
            Route("/v2/models/{name}", _echo),
            Route("/v2/models/{name}", _body_size, methods=["PUT"]),
            Route("/v2/missing/{name}", _missing),
            Route("/v2/busy", _busy),
            Route("/v2/broken", _broken),
            Route("/files/{rest:path}", _echo, methods=None),
            Route("/v2", _echo),
        ],
        not_found_hint="; see GET /v2",
    )


class _App:
    """A table behind the lifespan protocol, as the tierwise apps run it."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, _nothing, _nothing)
        else:
            await self.table(scope, receive, send)


async def _nothing() -> None:
    """No startup or shutdown work."""


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with (
        running_app(_App(_table())) as (_, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c,
    ):
        yield c


def test_templated_params(client: httpx.Client) -> None:
    plain = client.post("/v2/models/dense/infer")
    assert plain.status_code == 200
    assert plain.json() == {"route": "POST /v2/models/dense/infer", "params": {"name": "dense"}}
    versioned = client.post("/v2/models/dense/versions/3/infer").json()
    assert versioned["params"] == {"name": "dense", "version": "3"}
    for _ in range(3):  # served from the table's cache once seen
        assert client.post("/v2/models/dense/versions/3/infer").json() == versioned
    assert client.get("/v2/models/dense").json()["params"] == {"name": "dense"}
    assert client.get("/v2").json()["params"] == {}


def test_path_parameter_takes_the_rest(client: httpx.Client) -> None:
    deep = client.delete("/files/a/b/c.txt")
    assert deep.status_code == 200  # a route for any method
    assert deep.json()["params"] == {"rest": "a/b/c.txt"}
    assert client.get("/files/a/").json()["params"] == {"rest": "a"}
    assert client.get("/files/").status_code == 404  # the end's slash is no parameter


def test_url_encoded_parameters_arrive_decoded(client: httpx.Client) -> None:
    spaced = client.post("/v2/models/my%20model/infer").json()
    assert spaced["params"] == {"name": "my model"}
    accented = client.post("/v2/models/caf%C3%A9/infer").json()
    assert accented["params"] == {"name": "café"}
    # an encoded slash is a slash by the time the path is matched: one segment no more
    slashed = client.post("/v2/models/a%2Fb/infer")
    assert slashed.status_code == 404


def test_surplus_slashes_at_the_ends(client: httpx.Client) -> None:
    assert client.get("/v2/").json()["params"] == {}
    assert client.post("/v2/models/dense/infer/").json()["params"] == {"name": "dense"}


def test_no_route_is_404(client: httpx.Client) -> None:
    for method, path in (
        ("GET", "/nowhere"),
        ("POST", "/v2/models/dense/explain"),
        ("POST", "/v2/models//infer"),  # an empty segment is no parameter
        ("GET", "/v2/models"),
    ):
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": f"no route for {method} {path}; see GET /v2"}


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    infer = client.get("/v2/models/dense/infer")
    assert infer.status_code == 405
    assert infer.headers["allow"] == "POST"
    assert "use POST" in infer.json()["error"]
    both = client.post("/v2/models/dense")
    assert both.status_code == 405
    assert both.headers["allow"] == "GET, PUT"
    assert both.json() == {"error": "method POST not allowed here; use GET or PUT"}


def test_methods_of_one_path_reach_their_endpoints(client: httpx.Client) -> None:
    put = client.put("/v2/models/dense", content=b"x" * 100_000)
    assert put.status_code == 201
    assert put.headers["x-size"] == "100000"
    assert put.json() == {"size": 100_000}


def test_errors_raised_in_endpoints_take_their_status(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    missing = client.get("/v2/missing/ghost")
    assert missing.status_code == 404
    assert missing.json() == {"error": "model 'ghost': not found"}
    busy = client.get("/v2/busy")
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "2"
    assert busy.headers["content-type"] == "application/json"
    with caplog.at_level(logging.ERROR, logger="tierwise.http"):
        broken = client.get("/v2/broken")
    assert broken.status_code == 500
    assert broken.json() == {"error": "internal error (ValueError); see the server log"}
    assert "secret detail" not in broken.text
    assert any(r.exc_info and "GET /v2/broken" in r.getMessage() for r in caplog.records)


def test_match_without_a_server() -> None:
    table = _table()
    route, params = table.match("POST", "/v2/models/m/versions/v1/infer")
    assert route.path == "/v2/models/{name}/versions/{version}/infer"
    assert params == {"name": "m", "version": "v1"}
    assert table.has_path("/v2/models/m")
    assert not table.has_path("/v2/nothing")
    with pytest.raises(HttpError) as wrong:
        table.match("DELETE", "/v2/models/m")
    assert (wrong.value.status_code, wrong.value.allow) == (405, "GET, PUT")
    with pytest.raises(HttpError) as missing:
        table.match("GET", "/v3")
    assert missing.value.status_code == 404


def test_static_routes_win_over_templates() -> None:
    table = RouteTable(
        [Route("/items/{item}", _echo), Route("/items/new", _body_size, methods=["POST"])]
    )
    assert table.match("GET", "/items/7")[1] == {"item": "7"}
    with pytest.raises(HttpError) as wrong:
        table.match("GET", "/items/new")
    assert wrong.value.allow == "POST"


def test_a_small_cache_starts_afresh_and_stays_right() -> None:
    table = RouteTable([Route("/m/{name}", _echo)], cache_size=2)
    for _ in range(3):
        for name in ("a", "b", "c", "d", "e"):
            assert table.match("GET", f"/m/{name}")[1] == {"name": name}
            assert not table.has_path(f"/x/{name}")
    uncached = RouteTable([Route("/m/{name}", _echo)], cache_size=0)
    assert uncached.match("GET", "/m/a")[1] == {"name": "a"}


@pytest.mark.parametrize(
    ("routes", "parameter"),
    [
        ([Route("/a", _echo), Route("/a", _body_size)], "routes"),
        ([Route("/a/{x}", _echo, methods=None), Route("/a/{x}", _echo, methods=["PUT"])], "routes"),
    ],
)
def test_clashing_routes_are_refused(routes: list[Route], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        RouteTable(routes)
    assert info.value.parameter == parameter


@pytest.mark.parametrize(
    "path", ["no-slash", "/a/{x}/{x}", "/a/{x:int}", "/a/{x", "/a/x}", "/a/{1x}"]
)
def test_bad_templates_are_refused(path: str) -> None:
    with pytest.raises(ConfigError):
        Route(path, _echo)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="methods"):
        Route("/a", _echo, methods=[])
    with pytest.raises(ConfigError, match="cache_size"):
        RouteTable([], cache_size=-1)
