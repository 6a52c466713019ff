"""The gateway's side of the device tier in the browser (``tierwise-device``).

Routes (scope ``infer`` when the gateway has tokens, except the page's own files):

- ``GET /device/`` and its files: the demo page, the ``tierwise-device`` module and the
  onnxruntime-web runtime (``vendor/``, built by ``npm run build``; 503 naming the command
  when it was not), from an allow-list, with a content security policy;
- ``GET /v2/device``: the workloads a page can run, and whether held-out rows are offered;
- ``GET /v2/models/{workload}/device``: the workload's device settings, derived from the
  plan (:func:`device_settings`);
- ``GET /v2/models/{workload}/device/model/sha256/{hex}``: the model's bytes, for the
  digest the settings name now (404 for any other: a page holding an older digest asks
  again for the settings);
- ``GET /device/samples.json``: held-out rows per workload (``device_samples``), for the
  page's picker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from tierwise.errors import ConfigError, HttpError
from tierwise.http.asgi import JSON_HEADERS, Reply, header_of
from tierwise.http.routing import Request, Route
from tierwise.planfile.schema import Plan
from tierwise.telemetry.device import DEVICE_TELEMETRY_PATH
from tierwise.webdevice.models import DeviceModel, DeviceModels

__all__ = ["DEFAULT_ESCALATE_TIMEOUT_MS", "WEB_DIR", "DevicePage", "Skips", "device_settings"]

log = logging.getLogger("tierwise.router")

#: the folder holding the page, the module and (once built) ``vendor/``
WEB_DIR = Path(__file__).resolve().parent / "web"
#: how long a page waits for an escalation when the workload sets no deadline
DEFAULT_ESCALATE_TIMEOUT_MS = 5000.0
#: held-out rows files past this size are refused
MAX_SAMPLES_BYTES = 8 * 1024 * 1024

_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".mjs": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".wasm": b"application/wasm",
}
#: the page's own files; vendor/ holds what build.mjs copies
_PAGE_FILES = frozenset(
    {"index.html", "app.js", "style.css", "tierwise-device.js", "rules.js", "v2.js",
     "telemetry.js", "store.js", "link.js", "sw.js"}
)  # fmt: skip
_VENDOR_FILES = frozenset(
    {"ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
     "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs",
     "ort-wasm-simd-threaded.asyncify.wasm"}
)  # fmt: skip
_CSP = (
    b"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self';"
    b" img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:;"
    b" object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
BUILD_HINT = (
    "the device page's runtime (onnxruntime-web) is not built: run `make device-web`"
    " (npm ci && npm run build in src/tierwise/webdevice/web)"
)


#: Per tier of a workload's cascade, why its data may not go there (None: it may); the
#: router's policy answers it (``Policy.skips``).
Skips = Callable[[str], Mapping[str, str | None]]


def device_settings(
    plan: Plan, skips: Skips, model: DeviceModel, *, binary: bool = True
) -> dict[str, Any]:
    """What a page needs to run a workload's first stage and escalate like the router:
    the stage's rule, threshold and score tensor, the workload's privacy, residency,
    urgency and deadline, the tiers its data may reach after the device (none: the page
    never sends its input), and the model."""
    workload = plan.workloads[model.workload]
    stage = workload.cascade[0]
    later = [s.tier for s in workload.cascade[1:]]
    skipped = skips(model.workload)
    reach = [t for t in later if skipped.get(t) is None]
    stays = None
    if not reach:
        why = "; ".join(f"{t}: {skipped[t]}" for t in later if skipped.get(t)) or "no later stage"
        stays = f"workload {model.workload!r} keeps its data on the device ({why})"
    return {
        "workload": model.workload,
        "tier": model.tier,
        "device_class": plan.tiers[model.tier].spec_tier or model.tier,
        "stage": {
            "rule": stage.rule,
            "threshold": stage.threshold if later else None,
            "output": stage.output,
            "scores": stage.scores or "probabilities",
        },
        "privacy": workload.privacy,
        "residency": workload.residency,
        "urgency": workload.urgency,
        "deadline_ms": workload.deadline_ms,
        "escalate_timeout_ms": DEFAULT_ESCALATE_TIMEOUT_MS,
        "escalate": bool(reach),
        "escalate_to": reach,
        "stays_on_device": stays,
        "allow_raw_samples": workload.allow_raw_samples,
        "binary_tensor_data": binary,
        "infer_path": f"/v2/models/{model.workload}/infer",
        "telemetry_path": DEVICE_TELEMETRY_PATH,
        "model": model.describe(),
    }


def _load_samples(path: Path | None, plan: Plan) -> bytes | None:
    """The held-out rows file, checked: ``{workload: {input, dims, rows, labels?}}``."""
    if path is None:
        return None
    try:
        size = path.stat().st_size
        if size > MAX_SAMPLES_BYTES:
            raise ConfigError(
                "device_samples", f"a file of at most {MAX_SAMPLES_BYTES} bytes", size
            )
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(
            "device_samples", "a readable JSON file of held-out rows", f"{path}: {exc}"
        ) from exc
    if not isinstance(doc, dict):
        raise ConfigError("device_samples", "an object of workloads", type(doc).__name__)
    for name, entry in doc.items():
        where = f"device_samples[{name!r}]"
        if name not in plan.workloads:
            raise ConfigError(
                where, f"a workload of the plan ({', '.join(sorted(plan.workloads))})", name
            )
        if not isinstance(entry, dict) or not isinstance(entry.get("input"), str):
            raise ConfigError(
                where, "{input: NAME, dims: [...], rows: [[...]], labels: [...]}", entry
            )
        rows, dims = entry.get("rows"), entry.get("dims")
        if not isinstance(rows, list) or not isinstance(dims, list):
            raise ConfigError(
                where, "rows (a list of flat rows) and dims (one row's shape)", sorted(entry)
            )
        width = 1
        for d in dims:
            width *= int(d) if isinstance(d, int) and d > 0 else 0
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                got = (
                    f"a {type(row).__name__}" if not isinstance(row, list) else f"{len(row)} values"
                )
                raise ConfigError(f"{where}.rows[{i}]", f"{width} values (dims {dims})", got)
    return orjson.dumps(doc)


class DevicePage:
    """The routes above, for one gateway's plan; ``skips`` is its policy's."""

    def __init__(
        self,
        plan: Plan,
        skips: Skips,
        *,
        bundles: dict[str, Path] | None = None,
        samples: Path | None = None,
        web_dir: Path = WEB_DIR,
    ) -> None:
        self.plan = plan
        self.skips = skips
        self.models = DeviceModels(plan, bundles)
        self.samples = _load_samples(samples, plan)
        self.web_dir = web_dir

    def check(self) -> None:
        """Read every device model now (the gateway's startup)."""
        self.models.check()

    def routes(self) -> list[Route]:
        return [
            Route("/device", self._index),
            Route("/device/samples.json", self._samples, scope="infer"),
            Route("/device/{file:path}", self._file),
            Route("/v2/device", self._workloads, scope="infer"),
            Route("/v2/models/{workload}/device", self._settings, scope="infer"),
            Route("/v2/models/{workload}/device/model/sha256/{digest}", self._model, scope="infer"),
        ]

    async def _index(self, request: Request) -> Reply:
        if not request.scope["path"].endswith("/"):  # the page's links are relative to /device/
            query = request.scope.get("query_string", b"")
            location = b"/device/" + (b"?" + query if query else b"")
            return 308, b"", [(b"location", location)]
        return await asyncio.to_thread(self._serve, "index.html", request)

    async def _file(self, request: Request) -> Reply:
        return await asyncio.to_thread(self._serve, request.params["file"], request)

    def _serve(self, name: str, request: Request) -> Reply:
        """The file (off the event loop: the runtime is tens of megabytes), or 304 when the
        browser's copy, named by its ETag, is still current."""
        if name in _PAGE_FILES:
            path = self.web_dir / name
        elif name.startswith("vendor/") and name[len("vendor/") :] in _VENDOR_FILES:
            path = self.web_dir / name
            if not path.is_file():
                raise HttpError(503, BUILD_HINT)
        else:
            raise HttpError(404, f"no such file of the device page: {name!r}")
        if name == "index.html" and not (self.web_dir / "vendor" / "ort.wasm.min.mjs").is_file():
            raise HttpError(503, BUILD_HINT)
        st = path.stat()
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'.encode()
        headers = [
            (b"content-type", _TYPES.get(path.suffix, b"application/octet-stream")),
            (b"x-content-type-options", b"nosniff"),
            (b"cache-control", b"no-cache"),  # asked again each time; 304 while current
            (b"etag", etag),
        ]
        if name == "index.html":
            headers.append((b"content-security-policy", _CSP))
            headers.append((b"referrer-policy", b"no-referrer"))
        if header_of(request.scope, b"if-none-match") == etag:
            return 304, b"", headers
        return 200, path.read_bytes(), headers

    async def _workloads(self, request: Request) -> Reply:
        doc = {"workloads": self.models.workloads, "samples": self.samples is not None}
        return 200, orjson.dumps(doc), list(JSON_HEADERS)

    async def _samples(self, request: Request) -> Reply:
        if self.samples is None:
            raise HttpError(404, "this gateway offers no held-out rows (device_samples)")
        return 200, self.samples, list(JSON_HEADERS)

    async def _model_of(self, workload: str) -> DeviceModel:
        # a replaced model is read and hashed here: off the event loop
        return await asyncio.to_thread(self.models.current, workload)

    async def _settings(self, request: Request) -> Reply:
        model = await self._model_of(request.params["workload"])
        doc = device_settings(self.plan, self.skips, model)
        return 200, orjson.dumps(doc), [*JSON_HEADERS, (b"cache-control", b"no-store")]

    async def _model(self, request: Request) -> Reply:
        model = await self._model_of(request.params["workload"])
        digest = request.params["digest"]
        if digest != model.sha256:
            raise HttpError(
                404, f"the device model of {model.workload} is now sha256 {model.sha256}"
                f" (version {model.version}), not {digest}: fetch the device settings again",
            )  # fmt: skip
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"cache-control", b"private, max-age=31536000, immutable"),
            (b"x-tierwise-model-version", model.version.encode()),
        ]
        return 200, model.data, headers
