"""The fleet's questions, once: the series tierwise exports and the queries over them
that the dashboard, the alerts and the status view share.

Series by where they come from (labels in braces):

- tier servers: ``tierwise_requests_total{model,version,outcome}``, the
  ``tierwise_request_duration_seconds`` histogram, ``tierwise_energy_joules_total
  {model,tier,source}``, ``tierwise_power_watts{tier,source}``,
  ``tierwise_busy_seconds_total{model,tier}``, ``tierwise_drift_score
  {model,version,signal,test}``, ``tierwise_drift_level{model,version}``,
  ``tierwise_drift_window_rows{model,version}``,
  ``tierwise_drift_errors_total{model,version}``;
- agents: ``tierwise_agent_temperature_celsius``, ``tierwise_agent_thermal_throttled``;
- gateways (and an agent's gateway port): ``tierwise_router_requests_total
  {workload,tier,outcome}``, ``tierwise_router_request_duration_seconds{workload}``,
  ``tierwise_router_escalations_total{workload,stage,rule}``,
  ``tierwise_router_fallbacks_total{workload,tier,cause}``,
  ``tierwise_router_degraded_total{workload,tier,cause}``,
  ``tierwise_router_hedges_total{workload,tier}``, ``tierwise_router_cost_usd_total
  {workload,tier}``, ``tierwise_workload_slo_seconds{workload}``,
  ``tierwise_router_breaker_open{tier}``, ``tierwise_router_thermal_offload{tier}``,
  ``tierwise_outbox_items{queue}``, ``tierwise_outbox_oldest_age_seconds{queue}``,
  ``tierwise_shadow_agreement_ratio{workload,tier,reference}``,
  ``tierwise_shadow_cost_usd_total{workload,reference}`` and the device telemetry
  series ``tierwise_device_requests_total{workload,device_class,outcome}``,
  ``tierwise_device_drift_score{workload,device_class,signal,test}``.

A tier server's series carry ``tier`` from the scrape target (the plan's tier name,
:mod:`tierwise.observe.scrape`); ``instance`` is the address scraped.
"""

from __future__ import annotations

from tierwise.observe.promql import Counter, Gauge, Match, Quantile, Ratio, Scaled

__all__ = [
    "BREAKER_OPEN",
    "BUSY_SHARE",
    "COST_PER_HOUR",
    "COST_PER_MILLION",
    "DEGRADED",
    "DEVICE_DRIFT",
    "DRIFT_LEVEL",
    "DRIFT_SCORE",
    "ENERGY_PER_INFERENCE",
    "ESCALATION_RATE",
    "FALLBACK_RATE",
    "FALLBACK_RATE_BY_CAUSE",
    "HEDGES",
    "OUTBOX_AGE",
    "OUTBOX_ITEMS",
    "POWER",
    "REQUESTS_BY_OUTCOME",
    "REQUESTS_BY_TIER",
    "SERVED_BY_TIER",
    "SHADOW_AGREEMENT",
    "SLO_SECONDS",
    "TEMPERATURE",
    "THERMAL_OFFLOAD",
    "THROTTLED",
    "energy_baseline",
    "workload_p99",
]

ROUTER_REQUESTS = "tierwise_router_requests_total"
ROUTER_DURATION = "tierwise_router_request_duration_seconds"
FALLBACKS = "tierwise_router_fallbacks_total"
ESCALATIONS = "tierwise_router_escalations_total"
TIER_REQUESTS = "tierwise_requests_total"
ENERGY = "tierwise_energy_joules_total"

_ANSWERED = (Match("outcome", "success"),)


def _requests(by: tuple[str, ...], match: tuple[Match, ...] = ()) -> Counter:
    return Counter(ROUTER_REQUESTS, by, match)


# -- traffic ------------------------------------------------------------------------------

#: Requests per second through the routers, by the tier that answered (``-``: none).
REQUESTS_BY_TIER = _requests(("tier",))
#: Requests per second through the routers, by outcome.
REQUESTS_BY_OUTCOME = _requests(("outcome",))
#: Requests per second the tier servers answered, by tier and model.
SERVED_BY_TIER = Counter(TIER_REQUESTS, ("tier", "model"), _ANSWERED)

# -- latency ------------------------------------------------------------------------------

#: Each workload's p99 target (seconds), as the gateway exports it.
SLO_SECONDS = Gauge("tierwise_workload_slo_seconds", ("workload",))


def workload_p99(workload: str | None = None) -> Quantile:
    """The p99 of routed requests by workload (one workload when named)."""
    match = () if workload is None else (Match("workload", workload),)
    return Quantile(0.99, ROUTER_DURATION, ("workload",), match)


# -- the cascade --------------------------------------------------------------------------

#: Share of a workload's requests that found a tier of its cascade skipped or failed, by
#: that tier.
FALLBACK_RATE = Ratio(Counter(FALLBACKS, ("workload", "tier")), _requests(("workload",)))
#: The same by cause (error, timeout, breaker_open, partition, ...).
FALLBACK_RATE_BY_CAUSE = Ratio(
    Counter(FALLBACKS, ("workload", "tier", "cause")), _requests(("workload",))
)
#: Share of a workload's requests escalated past each stage.
ESCALATION_RATE = Ratio(Counter(ESCALATIONS, ("workload", "stage")), _requests(("workload",)))
#: Degraded answers per second, by the tier that gave them and the cause.
DEGRADED = Counter("tierwise_router_degraded_total", ("workload", "tier", "cause"))
#: Backup tiers asked per second (hedging; none unless the router hedges).
HEDGES = Counter("tierwise_router_hedges_total", ("workload", "tier"))
#: 1 while a remote tier's circuit breaker is open.
BREAKER_OPEN = Gauge("tierwise_router_breaker_open", ("tier",))
#: 1 while the router sends a hot node's traffic upstream.
THERMAL_OFFLOAD = Gauge("tierwise_router_thermal_offload", ("tier",))
#: How often a lower tier agrees with its reference tier (its estimated accuracy).
SHADOW_AGREEMENT = Gauge("tierwise_shadow_agreement_ratio", ("workload", "tier", "reference"))

# -- cost ---------------------------------------------------------------------------------

_COST = "tierwise_router_cost_usd_total"
#: US dollars per 1M requests, by workload.
COST_PER_MILLION = Scaled(
    1e6, Ratio(Counter(_COST, ("workload",)), _requests(("workload",)), guard="positive")
)
#: US dollars per hour, by workload and tier.
COST_PER_HOUR = Scaled(3600, Counter(_COST, ("workload", "tier")))

# -- energy -------------------------------------------------------------------------------

#: Joules per answered inference, by tier (measured or estimated).
ENERGY_PER_INFERENCE = Ratio(
    Counter(ENERGY, ("tier",)), Counter(TIER_REQUESTS, ("tier",), _ANSWERED), guard="positive"
)
#: Power drawn now, by tier and source (measured | estimated).
POWER = Gauge("tierwise_power_watts", ("tier", "source"), how="sum")
#: Share of the time models kept each tier busy (busy seconds per second).
BUSY_SHARE = Counter("tierwise_busy_seconds_total", ("tier",))


def energy_baseline(window_s: float) -> Ratio:
    """Joules per answered inference by tier over a fixed, longer window."""
    return Ratio(
        Counter(ENERGY, ("tier",), window_s=window_s),
        Counter(TIER_REQUESTS, ("tier",), _ANSWERED, window_s=window_s),
        guard="positive",
    )


# -- drift --------------------------------------------------------------------------------

#: Drift scores of the tier servers' models (PSI, KS) by signal.
DRIFT_SCORE = Gauge("tierwise_drift_score", ("tier", "model", "version", "signal", "test"))
#: Drift level of each model version: 0 ok, 1 warn, 2 alert.
DRIFT_LEVEL = Gauge("tierwise_drift_level", ("tier", "model", "version"))
#: Drift scores the devices report, by device class.
DEVICE_DRIFT = Gauge("tierwise_device_drift_score", ("workload", "device_class", "signal", "test"))

# -- outbox and thermal -------------------------------------------------------------------

#: Items waiting in each outbox queue.
OUTBOX_ITEMS = Gauge("tierwise_outbox_items", ("queue",), how="sum")
#: Age of the oldest waiting item of each queue (seconds).
OUTBOX_AGE = Gauge("tierwise_outbox_oldest_age_seconds", ("queue",))
#: Each node's temperature (Celsius).
TEMPERATURE = Gauge("tierwise_agent_temperature_celsius", ("instance",))
#: 1 while a node's thermal guard throttles it.
THROTTLED = Gauge("tierwise_agent_thermal_throttled", ("instance",))
