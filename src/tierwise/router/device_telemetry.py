"""The gateway's ``POST /v2/telemetry/device``: device reports in, device series out.

The body (at most ``device_telemetry.max_body_bytes``) is a report as
:mod:`tierwise.telemetry.device` describes it; the route needs scope ``telemetry`` when
the gateway has tokens. A report is checked against the plan (a workload it knows, the
privacy rules of that workload) before anything of it counts: a bad one gets 4xx with
``{"error": ...}`` and leaves the series as they were. An accepted one gets 202, and so
does one sent again under a ``report_id`` already taken (``"duplicate": true``; counted
once), so that a device whose first 202 was lost moves on.
"""

from __future__ import annotations

import orjson

from tierwise.http.asgi import JSON_HEADERS, Reply, body_headers, read_body
from tierwise.http.routing import Request
from tierwise.http.routing import Route as HttpRoute
from tierwise.planfile.schema import Plan
from tierwise.telemetry.device import (
    DEVICE_TELEMETRY_PATH,
    DeviceTelemetry,
    DeviceTelemetrySettings,
    WorkloadRules,
)

__all__ = ["DeviceIntake"]


class DeviceIntake:
    """The endpoint and the aggregates (``telemetry``, a collector for ``/metrics``)."""

    def __init__(self, plan: Plan, settings: DeviceTelemetrySettings | None = None) -> None:
        rules = {
            name: WorkloadRules(w.privacy, w.allow_raw_samples)
            for name, w in plan.workloads.items()
        }
        self.telemetry = DeviceTelemetry(rules, settings)

    def route(self) -> HttpRoute:
        return HttpRoute(DEVICE_TELEMETRY_PATH, self._endpoint, methods=["POST"], scope="telemetry")

    async def _endpoint(self, request: Request) -> Reply:
        _, declared = body_headers(request.scope)
        limit = self.telemetry.settings.max_body_bytes
        body = await read_body(request.receive, declared, limit)
        report = self.telemetry.parse(body)
        counted = self.telemetry.accept(report)
        doc = {"accepted": True, "device_class": report.device_class, "duplicate": not counted}
        return 202, orjson.dumps(doc), list(JSON_HEADERS)
