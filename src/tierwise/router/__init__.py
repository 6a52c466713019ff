"""The cascade router: tiers, the pure policy, the router that executes its routes, and
the two front doors (the embedded :class:`Client` and the HTTP gateway).

It reads a plan file (:mod:`tierwise.planfile`), scores answers with escalation rules
(:mod:`tierwise.escalation`), samples what it served (:mod:`tierwise.telemetry`) and
queues deferred and partitioned work in the outbox (:mod:`tierwise.outbox`). Its
metrics (:mod:`~tierwise.router.metrics`), remote re-evaluation
(:mod:`~tierwise.router.shadow`) and the gateway's device telemetry intake
(:mod:`~tierwise.router.device_telemetry`) are exported on the gateway's ``/metrics``."""

from tierwise.router.answer import RoutedAnswer
from tierwise.router.build import build_router, build_tiers
from tierwise.router.client import Client, Result
from tierwise.router.device_telemetry import DeviceIntake
from tierwise.router.explain import explain, route_explain
from tierwise.router.flags import TierFlags
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.router.health import BreakerSettings, CircuitBreaker, LatencyWindow
from tierwise.router.ledger import SpendLedger
from tierwise.router.meta import meta_from_parameters
from tierwise.router.metrics import RouterCollector, RouterMetrics
from tierwise.router.policy import Policy
from tierwise.router.router import Router
from tierwise.router.settings import RouterSettings
from tierwise.router.shadow import Shadow
from tierwise.router.stages import Stage
from tierwise.router.tiers import LocalTier, RemoteTier, Tier
from tierwise.router.trace import Attempt, Trace
from tierwise.router.types import (
    DEGRADING_CAUSES,
    Cause,
    RequestMeta,
    Route,
    TierDecision,
    TierState,
)

__all__ = [
    "DEGRADING_CAUSES",
    "Attempt",
    "BreakerSettings",
    "Cause",
    "CircuitBreaker",
    "Client",
    "DeviceIntake",
    "Gateway",
    "GatewaySettings",
    "LatencyWindow",
    "LocalTier",
    "Policy",
    "RemoteTier",
    "RequestMeta",
    "Result",
    "Route",
    "RoutedAnswer",
    "Router",
    "RouterCollector",
    "RouterMetrics",
    "RouterSettings",
    "Shadow",
    "SpendLedger",
    "Stage",
    "Tier",
    "TierDecision",
    "TierFlags",
    "TierState",
    "Trace",
    "build_router",
    "build_tiers",
    "explain",
    "meta_from_parameters",
    "route_explain",
]
