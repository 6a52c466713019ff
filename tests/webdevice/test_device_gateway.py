"""The gateway's side of the device tier, over HTTP on loopback: the device settings
derived from the plan, the model by digest, the page's files, ``escalated_from``,
answers by idempotency key, and what a bad bundle or a missing build does."""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from browser_fleet import BrowserFleet, features_model, gateway_counts
from server_helpers import running_app
from tierwise.errors import ConfigError
from tierwise.http.routing import RouteTable
from tierwise.outbox import Outbox
from tierwise.planfile.schedule import PriceSchedule
from tierwise.planfile.schema import Plan
from tierwise.protocol import InferRequest, decode_request, decode_response, encode_request
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.router.policy import Policy
from tierwise.webdevice import WEB_DIR, DevicePage
from tierwise.zoo import load_eval, load_zoo


def _get(fleet: BrowserFleet, path: str) -> httpx.Response:
    return httpx.get(fleet.url + path, timeout=30)


def test_device_settings_come_from_the_plan(fleet: BrowserFleet) -> None:
    doc = _get(fleet, "/v2/models/digits/device").json()
    assert doc["tier"] == "phone"
    assert doc["stage"] == {"rule": "max_prob", "threshold": 0.9, "output": None,
                            "scores": "probabilities"}  # fmt: skip
    assert doc["escalate"] is True
    assert doc["escalate_to"] == ["edge", "cloud"]
    assert doc["infer_path"] == "/v2/models/digits/infer"
    assert doc["model"]["inputs"] == [
        {"name": "image", "datatype": "FP32", "type": "float32", "shape": [-1, 8, 8]}
    ]
    private = _get(fleet, "/v2/models/digits-private/device").json()
    assert private["escalate"] is False
    assert private["escalate_to"] == []
    assert "sensitive" in private["stays_on_device"]
    features = _get(fleet, "/v2/models/features/device").json()
    assert features["stage"]["output"] == "logits"
    assert features["stage"]["scores"] == "logits"
    assert [o["name"] for o in features["model"]["outputs"]] == ["logits", "norm"]
    index = _get(fleet, "/v2/device").json()
    assert index == {"workloads": ["digits", "digits-private", "digits-later",
                                   "digits-bundled", "features"], "samples": True}  # fmt: skip


def test_the_model_is_served_by_its_digest_only(fleet: BrowserFleet) -> None:
    doc = _get(fleet, "/v2/models/digits/device").json()
    model = _get(fleet, doc["model"]["url"])
    assert model.status_code == 200
    assert hashlib.sha256(model.content).hexdigest() == doc["model"]["sha256"]
    assert len(model.content) == doc["model"]["size_bytes"]
    assert "immutable" in model.headers["cache-control"]
    stale = _get(fleet, "/v2/models/digits/device/model/sha256/" + "0" * 64)
    assert stale.status_code == 404
    assert "fetch the device settings again" in stale.json()["error"]
    unknown = _get(fleet, "/v2/models/nope/device")
    assert unknown.status_code == 404
    assert "the plan has" in unknown.json()["error"]


def test_only_the_page_files_are_served(fleet: BrowserFleet) -> None:
    page = _get(fleet, "/device/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert page.headers["content-security-policy"] == (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self';"
        " img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:;"
        " object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    assert page.headers["referrer-policy"] == "no-referrer"
    # the browser's copy stays current until the file changes
    again = httpx.get(f"{fleet.url}/device/", headers={"if-none-match": page.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    # the page's links are relative to /device/: without the slash, a redirect there
    bare = httpx.get(f"{fleet.url}/device?workload=digits")
    assert bare.status_code == 308
    assert bare.headers["location"] == "/device/?workload=digits"
    wasm = _get(fleet, "/device/vendor/ort-wasm-simd-threaded.wasm")
    assert wasm.headers["content-type"] == "application/wasm"
    for path in (
        "/device/package.json",
        "/device/node_modules/onnxruntime-web/package.json",
        "/device/%2e%2e/page.py",  # decoded by the server: /device/../page.py
        "/device/vendor/%2e%2e/build.mjs",
        "/device/vendor/..%2fbuild.mjs",
        "/device/test/v2.test.js",
        "/device/%2fetc/passwd",
    ):
        raw = httpx.get(httpx.URL(fleet.url + path))
        assert raw.status_code == 404, path
        assert "no such file of the device page" in raw.json()["error"]  # fmt: skip


def test_a_page_without_its_built_runtime_says_how_to_build_it(
    fleet: BrowserFleet, tmp_path: Path
) -> None:
    web = tmp_path / "web"
    web.mkdir()
    shutil.copyfile(WEB_DIR / "index.html", web / "index.html")
    page = DevicePage(fleet.plan, Policy(fleet.plan).skips, web_dir=web)
    with running_app(RouteTable(page.routes())) as (_, port):
        for path in ("/device/", "/device/vendor/ort.wasm.min.mjs"):
            answer = httpx.get(f"http://127.0.0.1:{port}{path}")
            assert answer.status_code == 503
            assert "make device-web" in answer.json()["error"]


def test_a_workload_that_does_not_start_on_a_device_has_no_device_settings(
    shared_zoo_dir: Path,
) -> None:
    tiny = str(load_zoo(shared_zoo_dir).model_path("tiny"))
    plan = Plan.model_validate(
        {
            "tiers": {
                "edge": {"kind": "edge", "site": "s", "region": "r", "rtt_p50_ms": 1,
                         "rtt_p99_ms": 2, "cost_usd_per_inference": 0, "local": {"model": tiny}},
            },
            "workloads": {"w": {"privacy": "public", "cascade": [{"tier": "edge"}]}},
        }
    )  # fmt: skip
    page = DevicePage(plan, Policy(plan).skips)
    assert page.models.workloads == []
    assert "edge tier" in (page.models.why_not("w") or "")
    with pytest.raises(ConfigError, match="workloads of the plan"):
        DevicePage(plan, Policy(plan).skips, bundles={"nope": Path("x")})


def test_a_broken_new_bundle_leaves_the_last_good_model(
    fleet: BrowserFleet, caplog: pytest.LogCaptureFixture
) -> None:
    before = _get(fleet, "/v2/models/digits-bundled/device").json()["model"]
    manifest = fleet.bundle_dir / "manifest.json"
    good = manifest.read_bytes()
    try:
        manifest.write_bytes(good.replace(b'"variants"', b'"variantz"'))
        with caplog.at_level(logging.ERROR, "tierwise.router"):
            after = _get(fleet, "/v2/models/digits-bundled/device").json()["model"]
        assert after == before
        assert any("stays" in r.getMessage() for r in caplog.records)
        assert _get(fleet, before["url"]).status_code == 200
    finally:
        manifest.write_bytes(good)


def _request(x: np.ndarray, **parameters: object) -> tuple[bytes, dict[str, str]]:
    body, length = encode_request(
        InferRequest(inputs={"image": x}, parameters=dict(parameters)), binary=True
    )
    headers = {"content-type": "application/octet-stream"}
    if length is not None:
        headers["inference-header-content-length"] = str(length)
    return body, headers


def _tier_of(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    length = answer.headers.get("inference-header-content-length")
    response = decode_response(answer.content, header_length=int(length) if length else None)
    return str(response.parameters["tier"])


def test_escalated_from_continues_after_the_device_stage(fleet: BrowserFleet) -> None:
    x, _ = load_eval(fleet.zoo)
    tiny = ort.InferenceSession(str(load_zoo(fleet.zoo).model_path("tiny")))
    sure = int(np.argmax(tiny.run(["probabilities"], {"image": x[:50]})[0].max(axis=1)))
    row = x[sure : sure + 1]  # the device is sure of it: without the parameter it answers
    url = f"{fleet.url}/v2/models/digits/infer"
    body, headers = _request(row)
    assert _tier_of(httpx.post(url, content=body, headers=headers)) == "phone"
    body, headers = _request(row, escalated_from="phone", binary_data_output=True)
    answer = httpx.post(url, content=body, headers=headers)
    assert answer.headers["inference-header-content-length"]  # binary, as asked
    assert _tier_of(answer) in ("edge", "cloud")  # never the device again
    # only the first stage, the one a caller can run itself, may be named
    for tier in ("edge", "cloud", "belt"):
        body, headers = _request(row, escalated_from=tier)
        refused = httpx.post(url, content=body, headers=headers)
        assert refused.status_code == 400
        assert "first stage" in refused.json()["error"]
        assert repr(tier) in refused.json()["error"]


def test_a_deferred_escalation_keeps_its_place_in_the_cascade(
    fleet: BrowserFleet, tmp_path: Path
) -> None:
    """Held by the policy for an off-peak hour, an escalated request is queued with
    ``escalated_from`` (and its key), so its delivery does not run the device again."""
    hour = (time.gmtime().tm_hour + 12) % 24
    plan = fleet.plan.model_copy(
        update={"price_schedule": PriceSchedule(off_peak_hours_utc=[hour])}
    )
    outbox = tmp_path / "outbox.db"
    settings = GatewaySettings(outbox_path=outbox, device_page=False)
    x, _ = load_eval(fleet.zoo)
    body, headers = _request(
        x[:1], escalated_from="phone", urgency="deferrable", idempotency_key="later-1"
    )
    app = Gateway(plan, build_router(plan), settings)
    with running_app(app) as (_, port):
        held = httpx.post(f"http://127.0.0.1:{port}/v2/models/digits/infer", content=body,
                          headers=headers)  # fmt: skip
    assert held.status_code == 202
    item = Outbox(outbox, max_items=100).get(held.json()["id"])
    queued = decode_request(item.payload, header_length=item.meta["header_length"])
    assert queued.parameters["escalated_from"] == "phone"
    assert queued.parameters["idempotency_key"] == "later-1"
    assert "deadline_ms" not in queued.parameters


def test_a_request_sent_again_under_its_key_is_answered_once(fleet: BrowserFleet) -> None:
    x, _ = load_eval(fleet.zoo)
    url = f"{fleet.url}/v2/models/digits/infer"

    def routed() -> float:
        metrics = httpx.get(f"{fleet.url}/metrics").text
        return sum(gateway_counts(metrics, "tierwise_gateway_requests_total", "digits").values())

    start = routed()
    body, headers = _request(x[:1], idempotency_key="same-key-1")
    first = httpx.post(url, content=body, headers=headers)
    again = httpx.post(url, content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert routed() == start + 1
    other, headers = _request(x[:1], idempotency_key="same-key-2")
    assert httpx.post(url, content=other, headers=headers).status_code == 200
    assert routed() == start + 2
    long_key, headers = _request(x[:1], idempotency_key="k" * 300)
    refused = httpx.post(url, content=long_key, headers=headers)
    assert refused.status_code == 400
    assert "idempotency_key" in refused.json()["error"]
    assert "300 characters" in refused.json()["error"]
    # the same key on another request is a mistake, not a retry
    changed, headers = _request(x[1:2], idempotency_key="same-key-1")
    conflict = httpx.post(url, content=changed, headers=headers)
    assert conflict.status_code == 409
    assert "another request body" in conflict.json()["error"]
    assert routed() == start + 2


def test_every_file_of_the_page_is_served_and_kept_for_offline(fleet: BrowserFleet) -> None:
    """A module the page imports but the gateway does not serve (or the service worker
    does not keep) breaks the page, online or offline."""
    sw = (WEB_DIR / "sw.js").read_text()
    for path in sorted(WEB_DIR.glob("*")):
        if path.suffix not in (".js", ".html", ".css") or path.name == "build.mjs":
            continue
        assert _get(fleet, f"/device/{path.name}").status_code == 200, path.name
        if path.name != "sw.js":
            assert f'"{path.name}"' in sw, f"sw.js does not keep {path.name}"


def test_workloads_that_offer_one_model_hold_one_copy(fleet: BrowserFleet) -> None:
    models = (
        fleet.gateway.device_page.models if fleet.gateway and fleet.gateway.device_page else None
    )
    assert models is not None
    same = [models.current(w) for w in ("digits", "digits-private", "digits-later")]
    assert len({m.sha256 for m in same}) == 1
    assert same[0].blob is same[1].blob is same[2].blob  # one copy in memory
    assert same[0].data == load_zoo(fleet.zoo).model_path("tiny").read_bytes()


def test_a_device_model_that_never_read_says_so_each_time_it_is_asked(tmp_path: Path) -> None:
    """No good model yet: every look (the first, and later ones with the file unchanged)
    is the same ConfigError naming the file; a good file in its place is then taken."""
    bad = tmp_path / "device.onnx"
    bad.write_bytes(b"not an onnx model")
    plan = Plan.model_validate(
        {
            "tiers": {
                "phone": {"kind": "device", "site": "s", "region": "r", "rtt_p50_ms": 0,
                          "rtt_p99_ms": 0, "cost_usd_per_inference": 0,
                          "local": {"model": str(bad)}},
            },
            "workloads": {"w": {"privacy": "public", "cascade": [{"tier": "phone"}]}},
        }
    )  # fmt: skip
    models = DevicePage(plan, Policy(plan).skips).models
    for _ in range(2):
        with pytest.raises(ConfigError, match="a readable ONNX model") as found:
            models.current("w")
        assert str(bad) in str(found.value)
    good = features_model(tmp_path / "good.onnx")
    good.replace(bad)
    assert models.current("w").sha256 == hashlib.sha256(bad.read_bytes()).hexdigest()
