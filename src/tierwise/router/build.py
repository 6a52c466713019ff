"""Build a working router from a plan: tiers, cascade stages, policy and spend ledger."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from pathlib import Path

from tierwise.errors import ConfigError
from tierwise.escalation.rules import make_rule
from tierwise.planfile.schema import Plan
from tierwise.router.policy import Policy
from tierwise.router.router import Defer, Router, SpendLedger, Stage
from tierwise.router.settings import RouterSettings
from tierwise.router.shadow import Shadow
from tierwise.router.tiers import LocalTier, RemoteTier, Tier
from tierwise.runtime import OnnxSettings, make_backend
from tierwise.security.tls import client_context
from tierwise.telemetry.sampling import Sampler, SampleSink

__all__ = ["build_router", "build_tiers"]


def build_tiers(
    plan: Plan,
    *,
    env: Mapping[str, str],
    onnx: OnnxSettings | None = None,
    skip: Collection[str] = (),
) -> dict[str, Tier]:
    """One tier object per plan tier. Authorization headers come from ``env`` under the
    names the plan gives (``auth_header_env``); the plan never holds the secret. An
    ``https://`` tier gets one TLS context, made here from its ``tls`` settings (the
    system's trust store when it has none); ConfigError naming a TLS file that does not
    load. A local model runs on the runtime its ``runtime:`` names (``onnx`` settings for
    onnxruntime)."""
    tiers: dict[str, Tier] = {}
    for name, config in plan.tiers.items():
        if name in skip:
            continue
        if config.url is not None and config.model is not None:
            authorization = None
            if config.auth_header_env is not None:
                authorization = env.get(config.auth_header_env)
                if not authorization:
                    raise ConfigError(
                        f"tiers.{name}.auth_header_env",
                        f"the environment variable {config.auth_header_env} to be set",
                    )
            tls = config.tls
            ssl_context = None
            if config.url.startswith("https://"):
                try:
                    ssl_context = client_context(tls, who=f"tier {name!r}")
                except ConfigError as exc:
                    raise ConfigError(
                        f"tiers.{name}.{exc.parameter}", exc.expected, exc.got
                    ) from exc
            tiers[name] = RemoteTier(
                name,
                config.url,
                config.model,
                kind=config.kind,
                timeout_s=config.timeout_s,
                authorization=authorization,
                binary=True if config.binary else None,
                ssl_context=ssl_context,
                server_name=tls.server_name if tls is not None else None,
            )
        elif config.local is not None:
            local = config.local
            backend = make_backend(local.runtime, name, Path(local.model), onnx=onnx)
            tiers[name] = LocalTier(name, backend, kind=config.kind, timeout_s=config.timeout_s)
    return tiers


def build_router(
    plan: Plan,
    *,
    env: Mapping[str, str] | None = None,
    onnx: OnnxSettings | None = None,
    settings: RouterSettings | None = None,
    defer: Defer | None = None,
    samples: SampleSink | None = None,
    seed: int | None = None,
    tiers: Mapping[str, Tier] | None = None,
) -> Router:
    """The router the plan describes (call ``await router.start()`` before use: it loads
    the in-process models and checks every stage's score output against its tier's model,
    ConfigError naming a stage the model cannot serve). ``settings`` holds its tunables
    (hedging, breakers; see :class:`RouterSettings`). With a ``samples`` sink, traces are
    sampled at each workload's ``sample_rate``. ``tiers`` replace the plan's tiers of the
    same names (an edge node answers for its own tier in process). Workloads with
    ``reeval`` get their lower tiers' answers re-evaluated (``router.shadow``,
    :mod:`tierwise.router.shadow`; stopped by ``router.close()``); ``seed`` seeds the
    draws of sampling and re-evaluation."""
    given = dict(tiers or {})
    unknown = sorted(set(given) - set(plan.tiers))
    if unknown:
        raise ConfigError("tiers", f"names of the plan's tiers ({', '.join(plan.tiers)})", unknown)
    tiers = build_tiers(plan, env=env or {}, onnx=onnx, skip=set(given)) | given
    stages = {
        workload: [
            Stage(
                tier=stage.tier,
                cost_usd_per_inference=plan.tiers[stage.tier].cost_usd_per_inference,
                rule=make_rule(stage.rule, output=stage.output, scores=stage.score_kind)
                if stage.rule is not None
                else None,
                threshold=stage.threshold,
                output=stage.output,
            )
            for stage in config.cascade
        ]
        for workload, config in plan.workloads.items()
    }
    ledger = SpendLedger({w: c.period_s for w, c in plan.workloads.items()})
    policy = Policy(plan)
    sampler = None
    if samples is not None:
        sampler = Sampler(
            {w: c.sample_rate for w, c in plan.workloads.items()},
            allow_raw={w: c.allow_raw_samples for w, c in plan.workloads.items()},
            sink=samples,
            rng=random.Random(seed),  # noqa: S311 -- sampling, not secrets
        )
    slo_s = {w: c.slo_s for w, c in plan.workloads.items() if c.slo_s is not None}
    router = Router(
        policy, tiers, stages, settings, defer=defer, ledger=ledger, sampler=sampler, slo_s=slo_s
    )
    if any(c.reeval is not None and c.reeval.rate > 0 for c in plan.workloads.values()):
        rng = random.Random(None if seed is None else seed + 1)  # noqa: S311 -- not secrets
        router.shadow = Shadow(plan, router, rng=rng)
    return router
