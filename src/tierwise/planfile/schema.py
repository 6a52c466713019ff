"""The plan: which tiers serve each workload, in what cascade order, and at what price.

Until the planner writes it, a person does; :func:`~tierwise.planfile.load.load_plan`
reads it and the router, the gateway and the simulator run from it. Shape::

    version: 1
    spec: fleet.yaml            # optional, relative to this file: tiers and workloads named
                                # as in the spec take kind/site/region and privacy,
                                # residency, urgency and origin from it
    tiers:
      device:                   # in-process (the device's own model)
        kind: device            # device | edge | cloud
        site: store-1           # optional; where the tier is (edge tiers: required)
        region: us-east         # optional (cloud tiers: required)
        local: {model: models/tiny.onnx}       # relative to this file; optional
                                               # runtime: NAME (default onnxruntime)
        rtt_p50_ms: 0
        rtt_p99_ms: 0
        cost_usd_per_inference: 8.3e-9
      cloud:                    # remote: any Open Inference Protocol (V2) endpoint
        kind: cloud
        region: us-east
        url: https://infer.example.com
        model: large            # the model's name on that endpoint
        rtt_p50_ms: 25
        rtt_p99_ms: 120
        cost_usd_per_inference: 2.3e-5
        auth_header_env: CLOUD_AUTH   # env var holding the Authorization header (never the secret)
        tls:                    # optional, https:// URLs only; without it the server's
                                # certificate is checked against the system's trust store
          ca: certs/ca.pem      # the CA bundle to check it against (relative to this file)
          cert: certs/router.pem        # this router's certificate and key, for a server
          key: certs/router.key         # that requires them (mutual TLS); both or neither
          server_name: infer.internal   # the name the certificate holds, when not the URL's
                                        # host (also sent as SNI)
          # insecure_skip_verify: true  # no check at all, logged as a warning: labs only
        binary: true            # force the binary tensor extension (false: ask the peer's
                                # GET /v2 for binary_tensor_data and use it when listed)
        timeout_s: 2.0
    workloads:
      digits:
        privacy: public         # public | personal | sensitive
        residency: any          # device | site | region | any (default any)
        urgency: interactive    # interactive | deferrable (default interactive)
        deadline_ms: 150        # optional default deadline of a request
        budget_usd_per_period: 50       # optional; cloud tiers stop when it is spent
        budget_period_s: 86400          # the period (default one day)
        sample_rate: 0.01       # fraction of traces sampled for drift checks (default 0)
        allow_raw_samples: false        # else inputs are hashed in samples
        origin_site: store-1    # optional: where the data starts (else from the cascade)
        origin_region: us-east
        slo_p99_ms: 120         # optional p99 target (from the spec's slo when it names
                                # the workload); the router's latency buckets include it
        reeval:                 # optional: re-run a share of the lower stages' answers
          rate: 0.05            #   on a reference tier, in the background
          tier: cloud           # the reference (default: the cascade's last tier)
          budget_usd_per_day: 1.0     # spend on re-runs per UTC day (default 1.0)
          max_in_flight: 4            # re-runs at once (default 4)
          window: 200                 # agreement over the last N checks (default 200)
        cascade:                # cheapest first; every stage but the last has a rule
          - {tier: device, rule: max_prob, threshold: 0.9}
          - {tier: cloud}
      receipts:
        privacy: public
        cascade:
          - tier: device
            rule: margin
            threshold: 0.3
            output: save_infer_model/scale_0.tmp_1   # the tensor holding the scores
            scores: logits      # probabilities (default) | logits: softmax applied first
          - {tier: cloud}
    price_schedule:             # optional: when deferrable requests run (UTC)
      off_peak_hours_utc: [0, 1, 2, 3]
      spot_windows_utc: [[22, 6]]

Plans written by ``tierwise plan`` (:mod:`tierwise.plan.write`) also say where each tier
comes from and what the planner expects; the router reads but does not need them::

    tiers:
      store-edge-small:
        spec_tier: store-edge   # the spec's tier this one runs on (kind, site, region
        variant: small          # are taken from it); the spec's variant it serves
    workloads:
      digits:
        expected:               # the planner's estimates for this cascade
          usd_per_month: 12.5
          usd_per_million: 0.96
          accuracy: 0.93
          p50_ms: 0.1
          p95_ms: 20.1
          p99_ms: 140.2
          reach: [1.0, 0.37, 0.04]   # fraction of requests reaching each stage

A tier is local (``local``) or remote (``url`` and ``model``), exactly one. Rules are the
names of :data:`tierwise.escalation.rules.RULES`; a stage escalates to the next when the rule's
confidence is under its ``threshold`` (in [0, 1]). A stage's rule reads the model output
named by ``output`` (the tensor holding the scores, ``[rows, classes]``), as
``probabilities`` or ``logits`` (``scores``; default probabilities). Without ``output``
it reads ``probabilities`` when the model has an output of that name, else the model's
only float ``[rows, classes >= 2]`` output; with none or several such outputs the stage
must name one. The router checks every stage against its tier's model when it starts
(:mod:`tierwise.router.score_outputs`); ``detector`` reads ``scores`` unless told.
Privacy and residency follow the spec's rules (:mod:`tierwise.spec.placement`); a
workload none of whose cascade tiers qualifies is a problem. A remote tier's ``tls``
(:class:`~tierwise.security.tls.TlsClientSettings`) needs an ``https://`` url. The loaded
plan holds absolute paths for ``spec``, ``local.model`` and the ``tls`` files.

``reeval`` (:class:`Reeval`) exports the agreement of the lower stages with the reference
tier as their estimated accuracy (:mod:`tierwise.router.shadow`); a workload of privacy
``sensitive``, or one whose privacy or residency keeps its data from the reference tier,
may not have it. ``slo_p99_ms`` is taken from the spec's ``slo.p99_ms`` when the plan
links a spec that has the workload.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tierwise.errors import ConfigError
from tierwise.escalation.rules import RULES, ScoreKind
from tierwise.planfile.schedule import PriceSchedule
from tierwise.security.tls import TlsClientSettings
from tierwise.spec.base import Name, SpecModel, inject_names
from tierwise.spec.placement import Origin, Place
from tierwise.spec.tiers import TierKind
from tierwise.spec.workloads import Privacy, Residency, Urgency

__all__ = [
    "DEFAULT_BUDGET_PERIOD_S",
    "CascadeStage",
    "Expected",
    "LocalModel",
    "Plan",
    "PlanHeader",
    "Reeval",
    "TierConfig",
    "WorkloadConfig",
]

#: The budget period when a workload sets a budget but no period: one day.
DEFAULT_BUDGET_PERIOD_S = 86_400.0

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class LocalModel(SpecModel):
    """A model file run in-process; the path is relative to the plan file. ``runtime``
    names the registered runtime that runs it (:mod:`tierwise.runtime`; checked when the
    router builds its tiers)."""

    model: str = Field(min_length=1)
    runtime: str = Field(default="onnxruntime", min_length=1)


class TierConfig(SpecModel):
    """One tier the router can call: in-process (``local``) or a V2 endpoint (``url``)."""

    name: Name
    description: str | None = None
    kind: TierKind
    site: Name | None = None
    region: Name | None = None
    local: LocalModel | None = None
    url: str | None = None
    model: str | None = Field(default=None, min_length=1)
    rtt_p50_ms: float = Field(ge=0)
    rtt_p99_ms: float = Field(ge=0)
    cost_usd_per_inference: float = Field(ge=0)
    auth_header_env: str | None = Field(default=None, pattern=_ENV_NAME)
    tls: TlsClientSettings | None = None
    binary: bool = False
    timeout_s: float = Field(default=1.0, gt=0)
    spec_tier: Name | None = None
    variant: Name | None = None

    @field_validator("rtt_p99_ms")
    @classmethod
    def _p99_above_p50(cls, value: float, info: ValidationInfo) -> float:
        p50 = info.data.get("rtt_p50_ms")
        if p50 is not None and value < p50:
            raise ValueError(f"expected rtt_p99_ms >= rtt_p50_ms ({p50:g}), got {value:g}")
        return value

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> TierConfig:
        if (self.local is None) == (self.url is None):
            raise ValueError(
                "expected exactly one of local (an in-process model) or url (a remote tier)"
            )
        if self.url is not None and self.model is None:
            raise ValueError("a remote tier needs model: the model's name on its endpoint")
        if self.local is not None:
            extra = [n for n in ("model", "auth_header_env", "tls") if getattr(self, n) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} apply only to a remote tier (url)")
        if self.tls is not None and self.url is not None and not self.url.startswith("https://"):
            raise ValueError(
                f"tls applies only to an https:// url, got {self.url!r}"
                " (use https:// to speak TLS, or remove tls)"
            )
        if self.kind == "edge" and self.site is None:
            raise ValueError("an edge tier needs site: the site its boxes are at")
        if self.kind == "cloud" and self.region is None:
            raise ValueError("a cloud tier needs region: the region its pool runs in")
        if self.kind == "cloud" and self.site is not None:
            raise ValueError("a cloud tier has a region, not a site")
        return self

    @property
    def remote(self) -> bool:
        """Whether the tier is a V2 endpoint (else an in-process model)."""
        return self.url is not None


class CascadeStage(SpecModel):
    """One step of a cascade: the tier, when to escalate past it (none on the last), and
    which output holds the scores the rule reads (``output``, ``scores``)."""

    tier: Name
    rule: str | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    output: str | None = Field(default=None, min_length=1)
    scores: ScoreKind | None = None

    @property
    def score_kind(self) -> ScoreKind:
        """What ``output`` holds (``probabilities`` unless the plan says ``logits``)."""
        return self.scores or "probabilities"

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str | None) -> str | None:
        if value is not None and value not in RULES:
            raise ValueError(f"expected one of {', '.join(RULES)}, got {value!r}")
        return value


class Expected(SpecModel):
    """What the planner expects of a workload's cascade (informational)."""

    usd_per_month: float | None = Field(default=None, ge=0)
    usd_per_million: float | None = Field(default=None, ge=0)
    accuracy: float | None = Field(default=None, ge=0, le=1)
    p50_ms: float | None = Field(default=None, ge=0)
    p95_ms: float | None = Field(default=None, ge=0)
    p99_ms: float | None = Field(default=None, ge=0)
    reach: list[float] | None = None


class Reeval(SpecModel):
    """Remote re-evaluation of a workload (:mod:`tierwise.router.shadow`): a share
    ``rate`` of the answers its lower stages give is re-run on ``tier`` (None: the
    cascade's last) in the background, at most ``max_in_flight`` at once and
    ``budget_usd_per_day`` (UTC days, at the plan's price of ``tier``); the agreement
    over the last ``window`` checks estimates the lower tier's accuracy."""

    rate: float = Field(ge=0, le=1)
    tier: Name | None = None
    budget_usd_per_day: float = Field(default=1.0, ge=0)
    max_in_flight: int = Field(default=4, ge=1, le=1024)
    window: int = Field(default=200, ge=1, le=100_000)


class WorkloadConfig(SpecModel):
    """A workload's defaults (privacy, residency, urgency, deadline, budget, sampling) and
    its cascade, cheapest tier first. Requests may narrow privacy and residency."""

    name: Name
    description: str | None = None
    privacy: Privacy
    residency: Residency = "any"
    urgency: Urgency = "interactive"
    deadline_ms: float | None = Field(default=None, gt=0)
    budget_usd_per_period: float | None = Field(default=None, ge=0)
    budget_period_s: float | None = Field(default=None, gt=0)
    sample_rate: float = Field(default=0.0, ge=0, le=1)
    allow_raw_samples: bool = False
    origin_site: Name | None = None
    origin_region: Name | None = None
    slo_p99_ms: float | None = Field(default=None, gt=0)
    reeval: Reeval | None = None
    cascade: list[CascadeStage] = Field(min_length=1)
    expected: Expected | None = None

    @property
    def reference_tier(self) -> str | None:
        """The tier re-evaluations run on (None without ``reeval``)."""
        if self.reeval is None:
            return None
        return self.reeval.tier or self.cascade[-1].tier

    @property
    def slo_s(self) -> float | None:
        """The workload's p99 target in seconds: ``slo_p99_ms``, else ``deadline_ms``, else
        the planner's expected p99; None when nothing says."""
        for ms in (
            self.slo_p99_ms,
            self.deadline_ms,
            self.expected.p99_ms if self.expected is not None else None,
        ):
            if ms is not None and ms > 0:
                return ms / 1000.0
        return None

    @property
    def period_s(self) -> float:
        """The budget period in seconds (default one day)."""
        return self.budget_period_s or DEFAULT_BUDGET_PERIOD_S


class MadeFrom(SpecModel):
    """What ``tierwise plan`` read to write a plan (paths relative to the plan), so the
    report can show the same numbers."""

    profiles: list[str] = Field(default_factory=list)
    calibrations: list[str] = Field(default_factory=list)


class PlanHeader(SpecModel):
    """The top-level scalar fields of a plan."""

    version: Literal[1] = 1
    description: str | None = None
    spec: str | None = Field(default=None, min_length=1)
    made_from: MadeFrom | None = None


class Plan(PlanHeader):
    """A loaded plan: tiers and workloads by name (entries carry their key as ``name``)."""

    tiers: dict[Name, TierConfig] = Field(min_length=1)
    workloads: dict[Name, WorkloadConfig] = Field(min_length=1)
    price_schedule: PriceSchedule | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_entries(cls, data: object) -> object:
        if isinstance(data, dict):
            return {
                k: inject_names(v) if k in ("tiers", "workloads") else v for k, v in data.items()
            }
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Plan:
        from tierwise.planfile.checks import plan_problems

        problems = plan_problems(self.tiers, self.workloads)
        if problems:
            raise ValueError("; ".join(f"{path}: {message}" for path, message in problems))
        return self

    def workload(self, name: str) -> WorkloadConfig:
        """The workload called ``name``; ConfigError listing the known ones otherwise."""
        found = self.workloads.get(name)
        if found is None:
            raise ConfigError("workload", f"one of {sorted(self.workloads)}", name)
        return found

    def stage(self, workload: str, tier: str) -> CascadeStage:
        """The cascade stage of ``tier`` in ``workload`` (its rule and threshold)."""
        for stage in self.workload(workload).cascade:
            if stage.tier == tier:
                return stage
        names = [s.tier for s in self.workload(workload).cascade]
        raise ConfigError("tier", f"one of {names} (workload {workload!r})", tier)

    def place(self, tier: str) -> Place:
        """Where a tier is (kind, site, region; an edge tier takes its site's region)."""
        from tierwise.planfile.checks import place_of, site_regions

        return place_of(self.tiers[tier], site_regions(self.tiers))

    def origin(self, workload: str) -> Origin:
        """Where a workload's data starts."""
        from tierwise.planfile.checks import site_regions, workload_origin

        return workload_origin(self.workload(workload), self.tiers, site_regions(self.tiers))
