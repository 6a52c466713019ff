"""The cascade router: tiers, escalation rules, the pure policy, the router that executes
its routes, the durable outbox, telemetry sampling, and the two front doors (the embedded
:class:`Client` and the HTTP gateway)."""

from tierwise.router.answer import RoutedAnswer
from tierwise.router.build import build_router, build_tiers
from tierwise.router.calibrate import CalibrationResult, calibrate
from tierwise.router.client import Client, Result
from tierwise.router.explain import explain, route_explain
from tierwise.router.flags import TierFlags
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.router.health import BreakerSettings, CircuitBreaker, LatencyWindow
from tierwise.router.ledger import SpendLedger
from tierwise.router.meta import meta_from_parameters
from tierwise.router.outbox import Drainer, Outbox, OutboxItem
from tierwise.router.plan import CascadeStage, Plan, TierConfig, WorkloadConfig
from tierwise.router.plan_load import load_plan, parse_plan
from tierwise.router.policy import Policy
from tierwise.router.router import Router
from tierwise.router.rules import (
    RULES,
    SCORE_KINDS,
    CallableRule,
    DetectorScore,
    EscalationRule,
    Margin,
    MaxProbability,
    NormalizedEntropy,
    make_rule,
    softmax,
)
from tierwise.router.sampling import JsonlSink, Sampler, SqliteSink
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
    "RULES",
    "SCORE_KINDS",
    "Attempt",
    "BreakerSettings",
    "CalibrationResult",
    "CallableRule",
    "CascadeStage",
    "Cause",
    "CircuitBreaker",
    "Client",
    "DetectorScore",
    "Drainer",
    "EscalationRule",
    "Gateway",
    "GatewaySettings",
    "JsonlSink",
    "LatencyWindow",
    "LocalTier",
    "Margin",
    "MaxProbability",
    "NormalizedEntropy",
    "Outbox",
    "OutboxItem",
    "Plan",
    "Policy",
    "RemoteTier",
    "RequestMeta",
    "Result",
    "Route",
    "RoutedAnswer",
    "Router",
    "Sampler",
    "SpendLedger",
    "SqliteSink",
    "Stage",
    "Tier",
    "TierConfig",
    "TierDecision",
    "TierFlags",
    "TierState",
    "Trace",
    "WorkloadConfig",
    "build_router",
    "build_tiers",
    "calibrate",
    "explain",
    "load_plan",
    "make_rule",
    "meta_from_parameters",
    "parse_plan",
    "route_explain",
    "softmax",
]
