"""The device tier in headless Chromium: tierwise-device runs the plan's first stage in the
page with onnxruntime-web (WASM), against a gateway and a tier server on loopback.

What the page computes is checked against Python (onnxruntime and the router's own
rules); what it sends is checked on the wire (Playwright sees every request the page
makes); offline, the gateway is really stopped and started again."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from browser_fleet import BrowserFleet, gateway_counts, open_page, wait_ready
from tierwise.escalation.rules import make_rule, softmax
from tierwise.protocol import InferRequest
from tierwise.router.build import build_router
from tierwise.router.types import RequestMeta
from tierwise.zoo import load_eval, load_zoo

ROOT = Path(__file__).resolve().parents[2]
ROWS = 200

# each row through tier.local (the device stage only) or tier.infer (the whole answer)
LOCAL = """async ([rows, dims]) => {
  const tier = window.tierwise.tier;
  const name = tier.settings.model.inputs[0].name;
  const out = [];
  for (const row of rows) {
    const r = await tier.local({ [name]: { data: Float32Array.from(row), dims: [1, ...dims] } });
    out.push({ probabilities: r.probabilities, confidence: r.confidence, escalate: r.escalate,
               label: r.label });
  }
  return out;
}"""
INFER = """async ([rows, dims, options]) => {
  const tier = window.tierwise.tier;
  const name = tier.settings.model.inputs[0].name;
  const out = [];
  for (const row of rows) {
    const a = await tier.infer({ [name]: { data: Float32Array.from(row), dims: [1, ...dims] } },
                               options ?? {});
    out.push({ label: a.label, tier: a.tier, escalated: a.escalated, degraded: a.degraded,
               reason: a.degradedReason, queued: a.queued ?? null, version: a.version,
               confidence: a.confidence });
  }
  return out;
}"""


def _rows(x: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row.ravel()] for row in x]


def _eval(fleet: BrowserFleet) -> tuple[np.ndarray, np.ndarray]:
    return load_eval(fleet.zoo)


def _split(page: Any, x: np.ndarray) -> tuple[list[int], list[int]]:
    """Indices of rows the device stage is sure of, and of rows it escalates."""
    found = page.evaluate(LOCAL, [_rows(x), [8, 8]])
    sure = [i for i, r in enumerate(found) if not r["escalate"]]
    unsure = [i for i, r in enumerate(found) if r["escalate"]]
    assert sure, "the held-out rows should hold rows the device is sure of"
    assert len(unsure) >= 5, "the held-out rows should hold rows the device escalates"
    return sure, unsure


def _opened(
    fleet: BrowserFleet, context: Any, workload: str
) -> tuple[np.ndarray, Any, list[int], list[int]]:
    """60 held-out rows, the page for ``workload``, and which rows it is sure of or not."""
    x = _eval(fleet)[0][:60]
    page = open_page(context, fleet.url, workload)
    sure, unsure = _split(page, x)
    return x, page, sure, unsure


def _wait_answered(page: Any, timeout_s: float = 20.0) -> None:
    """Until the page shows an answer (polled from here: the page's content security
    policy allows no string evaluated as script, which Playwright's waits use)."""
    deadline = time.monotonic() + timeout_s
    while page.evaluate("() => document.getElementById('state').textContent") == "–":
        assert time.monotonic() < deadline, "the page showed no answer"
        page.wait_for_timeout(20)


def _infer_requests(page: Any) -> list[Any]:
    seen: list[Any] = []
    page.on("request", lambda r: seen.append(r) if "/infer" in r.url else None)
    return seen


def test_page_answers_equal_onnxruntime_and_the_router(fleet: BrowserFleet, context: Any) -> None:
    x, _ = _eval(fleet)
    x = x[:ROWS]
    page = open_page(context, fleet.url, "digits")
    found = page.evaluate(LOCAL, [_rows(x), [8, 8]])

    session = ort.InferenceSession(
        str(load_zoo(fleet.zoo).model_path("tiny")), providers=["CPUExecutionProvider"]
    )
    expected = session.run(["probabilities"], {"image": x})[0]
    got = np.array([r["probabilities"] for r in found])
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4
    assert [r["label"] for r in found] == expected.argmax(axis=1).tolist()

    # the router's decisions for the same rows: answered by the device, or escalated
    router = build_router(fleet.plan, seed=7)

    async def decisions() -> list[bool]:
        await router.start()
        try:
            out = []
            for row in x:
                answer = await router.infer(
                    InferRequest(inputs={"image": row[np.newaxis]}), RequestMeta("digits")
                )
                out.append(answer.answered_by != "phone")
            return out
        finally:
            await router.close()

    with ThreadPoolExecutor(1) as pool:  # Playwright's loop holds this thread
        escalated = pool.submit(asyncio.run, decisions()).result()
    assert [r["escalate"] for r in found] == escalated
    assert 0 < sum(escalated) < ROWS  # both decisions occur
    rule = make_rule("max_prob")
    assert np.allclose(
        [r["confidence"] for r in found], rule.confidence({"probabilities": expected}), atol=1e-4
    )


def test_a_model_the_zoo_did_not_make_logits_and_margin(fleet: BrowserFleet, context: Any) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, size=(60, 3, 4)).astype(np.float32)
    page = open_page(context, fleet.url, "features")
    found = page.evaluate(LOCAL, [_rows(x), [3, 4]])
    tier = fleet.plan.tiers["phone-features"]
    assert tier.local is not None
    session = ort.InferenceSession(tier.local.model, providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"features": x})[0]
    assert np.abs(np.array([r["probabilities"] for r in found]) - softmax(logits)).max() <= 1e-4
    rule = make_rule("margin", output="logits", scores="logits")
    confidence = rule.confidence({"logits": logits, "norm": np.zeros((60, 1), np.float32)})
    assert np.allclose([r["confidence"] for r in found], confidence, atol=1e-4)
    assert [r["escalate"] for r in found] == (confidence < 0.5).tolist()
    assert 0 < sum(r["escalate"] for r in found) < 60
    # an unsure row escalates and the cloud's logits come back
    unsure = [i for i, r in enumerate(found) if r["escalate"]][:2]
    answers = page.evaluate(INFER, [_rows(x[unsure]), [3, 4], None])
    assert [a["tier"] for a in answers] == ["cloud-features", "cloud-features"]
    assert all(a["escalated"] and not a["degraded"] for a in answers)


def test_a_sure_row_never_leaves_the_page_an_unsure_one_escalates(
    fleet: BrowserFleet, context: Any
) -> None:
    x, page, sure, unsure = _opened(fleet, context, "digits")
    wire = _infer_requests(page)

    answers = page.evaluate(INFER, [_rows(x[sure[:5]]), [8, 8], None])
    assert [a["tier"] for a in answers] == ["phone"] * 5
    assert not any(a["escalated"] or a["degraded"] for a in answers)
    page.wait_for_timeout(200)
    assert wire == []  # nothing on the wire

    answers = page.evaluate(INFER, [_rows(x[unsure[:3]]), [8, 8], None])
    assert all(a["tier"] in ("edge", "cloud") and a["escalated"] for a in answers)
    assert not any(a["degraded"] for a in answers)
    assert len(wire) == 3
    assert all(r.url.endswith("/v2/models/digits/infer") for r in wire)
    body = wire[0].post_data_buffer
    assert b'"escalated_from":"phone"' in body
    assert wire[0].headers.get("inference-header-content-length")  # binary tensors

    # the page's counts reach the gateway's device series
    sent = page.evaluate("() => window.tierwise.tier.flushTelemetry()")
    assert sent == 1
    counts = gateway_counts(
        httpx.get(f"{fleet.url}/metrics").text, "tierwise_device_requests_total", "digits"
    )
    assert counts.get("answered", 0) >= 5
    assert counts.get("escalated", 0) >= 3


def test_a_workload_that_keeps_its_data_on_the_device_sends_nothing(
    fleet: BrowserFleet, context: Any
) -> None:
    x, page, _, unsure = _opened(fleet, context, "digits-private")
    settings = page.evaluate("() => window.tierwise.tier.settings")
    assert settings["escalate"] is False
    assert "sensitive" in settings["stays_on_device"]
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    answers = page.evaluate(INFER, [_rows(x[unsure[:5]]), [8, 8], None])
    page.wait_for_timeout(200)
    assert seen == []  # not one request: no input, no escalation
    assert [a["tier"] for a in answers] == ["phone"] * 5
    assert all(a["degraded"] and a["reason"].startswith("privacy:") for a in answers)


def test_offline_answers_degrade_and_queued_requests_are_delivered_once(
    fleet: BrowserFleet, context: Any
) -> None:
    x, page, _, unsure = _opened(fleet, context, "digits-later")
    # the service worker keeps the page and the runtime for the next, offline, opening
    page.evaluate("() => navigator.serviceWorker.ready")
    deadline = time.monotonic() + 20
    while not page.evaluate("() => navigator.serviceWorker.controller !== null"):
        assert time.monotonic() < deadline, "the service worker never took the page"
        page.wait_for_timeout(50)
    wire = _infer_requests(page)
    fleet.stop()
    try:
        answers = page.evaluate(INFER, [_rows(x[unsure[:3]]), [8, 8], None])
        urgent = page.evaluate(INFER, [_rows(x[unsure[3:4]]), [8, 8], {"deferrable": False}])
        tried = len(wire)
        # the page closed and opened again with the gateway still down: it opens from
        # what it kept (page, runtime, settings, the checked model) and goes on
        page.reload()
        wait_ready(page)
        assert page.evaluate("() => window.tierwise.tier.startedOffline") is True
        later = page.evaluate(INFER, [_rows(x[unsure[4:5]]), [8, 8], None])
    finally:
        fleet.start()
    answers += later
    assert all(a["degraded"] and a["reason"].startswith("offline:") for a in answers + urgent)
    assert all(a["tier"] == "phone" for a in answers + urgent)
    keys = [a["queued"] for a in answers]
    assert all(keys)
    assert len(set(keys)) == 4
    assert urgent[0]["queued"] is None  # an interactive request is not queued
    assert tried == 4  # each tried once, none reached a gateway

    # opened again with the gateway back: the queue kept in IndexedDB is sent
    page.reload()
    wait_ready(page)
    deadline = time.monotonic() + 20
    while page.evaluate("() => window.tierwise.tier.outbox.count()") > 0:
        assert time.monotonic() < deadline, "the queue was not sent"
        page.wait_for_timeout(50)
    metrics = httpx.get(f"{fleet.url}/metrics").text
    routed = gateway_counts(metrics, "tierwise_gateway_requests_total", "digits-later")
    assert sum(routed.values()) == 4
    assert page.evaluate("() => window.tierwise.tier.flush()")["sent"] == 0

    # the same key sent again (its answer lost on the way back) is answered, not routed
    sent_again = [r for r in wire if r.post_data_buffer and keys[0].encode() in r.post_data_buffer]
    request = sent_again[0]
    length = request.headers["inference-header-content-length"]
    replay = httpx.post(
        request.url,
        content=request.post_data_buffer,
        headers={"inference-header-content-length": length,
                 "content-type": "application/octet-stream"},
    )  # fmt: skip
    assert replay.status_code == 200
    metrics = httpx.get(f"{fleet.url}/metrics").text
    routed = gateway_counts(metrics, "tierwise_gateway_requests_total", "digits-later")
    assert sum(routed.values()) == 4


def _bundle_model(fleet: BrowserFleet) -> Path:
    return load_zoo(fleet.zoo).model_path("tiny-int8")


def test_a_tampered_model_is_refused_and_a_good_one_swaps_in_without_a_failed_answer(
    fleet: BrowserFleet, context: Any
) -> None:
    x, _ = _eval(fleet)
    x = x[:40]
    page = open_page(context, fleet.url, "digits-bundled")
    first = page.evaluate("() => window.tierwise.tier.version")
    assert first.startswith("digits:1/")
    fleet.bundle(_bundle_model(fleet), "2")
    good = _bundle_model(fleet).read_bytes()

    def tampered(route: Any) -> None:
        body = bytearray(route.fetch().body())
        body[len(body) // 2] ^= 0xFF
        route.fulfill(status=200, body=bytes(body))

    def truncated(route: Any) -> None:
        route.fulfill(status=200, body=route.fetch().body()[:-64])

    for handler, why in ((tampered, "expected sha256"), (truncated, "bytes")):
        page.route("**/device/model/sha256/**", handler)
        result = page.evaluate("() => window.tierwise.tier.checkForUpdate()")
        page.unroute("**/device/model/sha256/**")
        assert result["updated"] is False
        assert why in result["error"]
        assert page.evaluate("() => window.tierwise.tier.version") == first
        answers = page.evaluate(INFER, [_rows(x[:3]), [8, 8], None])
        assert all(a["version"] == first for a in answers)

    # the good one: answers keep coming while it is fetched, checked, warmed and swapped
    outcome = page.evaluate(
        """async ([rows]) => {
          const tier = window.tierwise.tier;
          const feed = (r) => ({ image: { data: Float32Array.from(r), dims: [1, 8, 8] } });
          let stop = false;
          const answers = [];
          const loop = (async () => {
            while (!stop || answers.length < 10) {
              for (const r of rows) answers.push(await tier.infer(feed(r)));
            }
          })();
          const update = await tier.checkForUpdate();
          stop = true;
          await loop;
          for (const r of rows.slice(0, 5)) answers.push(await tier.infer(feed(r)));
          return { update, versions: answers.map((a) => a.version),
                   labels: answers.map((a) => a.label) };
        }""",
        [_rows(x[:8])],
    )
    assert outcome["update"]["updated"] is True
    second = outcome["update"]["version"]
    assert second.startswith("digits:2/")
    assert second != first
    assert all(isinstance(label, int) for label in outcome["labels"])  # no failed answer
    assert outcome["versions"][-1] == second
    assert set(outcome["versions"]) <= {first, second}
    digest = hashlib.sha256(good).hexdigest()
    settings = page.evaluate("() => window.tierwise.tier.settings")
    assert settings["model"]["sha256"] == digest


def test_the_demo_page_answers_and_degrades_with_the_link_cut(
    fleet: BrowserFleet, context: Any, tmp_path: Path
) -> None:
    page = open_page(context, fleet.url, "digits")
    page.set_viewport_size({"width": 900, "height": 560})
    page.click("#held-out")
    page.click("#answer")
    _wait_answered(page)
    assert page.text_content("#label") in [str(d) for d in range(10)]
    assert page.text_content("#tier").split(" ")[0] in ("phone", "edge", "cloud")
    shot = tmp_path / "device-page.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TIERWISE_DOCS_SCREENSHOTS"):
        shutil.copyfile(shot, ROOT / "docs" / "device-page.png")

    # draw on the pad: a stroke becomes the model's 8 x 8 input and gets an answer
    page.click("#clear")
    box = page.locator("#pad").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.85, steps=12)
    page.mouse.up()
    page.evaluate("() => { document.getElementById('state').textContent = '–'; }")
    page.click("#answer")
    _wait_answered(page)
    assert page.text_content("#label") in [str(d) for d in range(10)]
    drawn = page.evaluate(
        "() => { const c = document.getElementById('pad').getContext('2d');"
        " return Array.from(c.getImageData(0, 0, 160, 160).data).filter((v, i) => i % 4 === 0"
        " && v > 128).length; }"
    )
    assert drawn > 500  # the stroke is there to be read

    # cut the link: an unsure row answers from the page, degraded
    x, _ = _eval(fleet)
    _, unsure = _split(page, x[:60])
    page.uncheck("#link")
    answers = page.evaluate(INFER, [_rows(x[unsure[:1]]), [8, 8], None])
    assert answers[0]["degraded"]
    assert answers[0]["reason"].startswith("offline:")
    page.check("#link")
    answers = page.evaluate(INFER, [_rows(x[unsure[:1]]), [8, 8], None])
    assert answers[0]["escalated"]
    assert not answers[0]["degraded"]
