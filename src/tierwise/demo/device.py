"""``tierwise demo --serve``: the demo's fleet kept running behind a gateway that serves
the device page (:mod:`tierwise.webdevice`), with the zoo's held-out rows for its picker,
until it is stopped (Ctrl-C)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from tierwise.demo import stages
from tierwise.demo.fleet import write_fleet
from tierwise.demo.settings import DemoSettings
from tierwise.planfile import load_plan

__all__ = ["DEVICE_SAMPLES", "device_page_url", "serve_device_page", "write_samples"]

#: held-out rows offered to the page's picker, per workload
DEVICE_SAMPLES = 200


def device_page_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/device/"


def write_samples(zoo: Path, workloads: list[str], path: Path) -> Path:
    """The zoo's first held-out rows, for each workload the page can run."""
    from tierwise.zoo import load_eval

    x, y = load_eval(zoo)
    n = min(DEVICE_SAMPLES, len(x))
    rows = x[:n].reshape(n, -1).astype(float).round(5).tolist()
    entry = {"input": "image", "dims": list(x.shape[1:]), "rows": rows, "labels": y[:n].tolist()}
    path.write_bytes(orjson.dumps(dict.fromkeys(workloads, entry)))
    return path


def serve_device_page(
    settings: DemoSettings, port: int, ready: Callable[[str], None] = lambda url: None
) -> None:
    """Start the live tiers and a gateway on ``port`` in front of them; call ``ready``
    with the page's URL, and serve until interrupted. The demo must have run first."""
    from tierwise.router.build import build_router
    from tierwise.router.gateway import Gateway, GatewaySettings
    from tierwise.server.app import uvicorn_server
    from tierwise.webdevice import DeviceModels

    work = settings.work_dir
    files = stages.StoryFiles.under(work, settings.zoo_dir, write_fleet(work / "fleet.yaml"))
    with stages.live_tiers(settings, files) as live:
        plan = load_plan(live)
        workloads = DeviceModels(plan).workloads
        samples = write_samples(files.zoo, workloads, work / "device-samples.json")
        gateway_settings = GatewaySettings(port=port, device_samples=samples)
        app = Gateway(plan, build_router(plan), gateway_settings)
        server = uvicorn_server(app, host="127.0.0.1", port=port)
        ready(device_page_url(port))
        server.run()
