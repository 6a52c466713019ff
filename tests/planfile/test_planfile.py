"""Plan files: the example loads (and its costs are the cost model's), every broken plan
fails with a problem naming the file, the field path and what was expected."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tierwise.errors import ConfigError, SpecError, SpecProblem
from tierwise.escalation.rules import RULES
from tierwise.plan import tier_cost
from tierwise.planfile.load import load_plan, parse_plan
from tierwise.planfile.schema import Plan
from tierwise.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "plans" / "digits.yaml"
TINY = Path(".tierwise/zoo/tiny/1/model.onnx")

Edit = Callable[[dict[str, Any]], object]


def example() -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def write(tmp_path: Path, data: object, *, with_model: bool = True) -> Path:
    """Write a plan as examples/plans/plan.yaml under tmp_path, with the tiny model in
    place (the example's model path is relative to examples/plans/)."""
    folder = tmp_path / "examples" / "plans"
    folder.mkdir(parents=True, exist_ok=True)
    if with_model:
        (tmp_path / TINY).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / TINY).write_bytes(b"onnx")
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def problems_of(path: Path, **kwargs: Any) -> list[SpecProblem]:
    with pytest.raises(SpecError) as info:
        load_plan(path, **kwargs)
    assert info.value.problems, "a SpecError without problems"
    return info.value.problems


def only(problems: list[SpecProblem]) -> SpecProblem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --- the example --------------------------------------------------------------------------


def test_example_loads(tmp_path: Path) -> None:
    path = write(tmp_path, example())
    plan = load_plan(path)
    assert list(plan.tiers) == ["device", "edge", "cloud"]
    assert list(plan.workloads) == ["digits", "digits-personal", "digits-batch"]
    device = plan.tiers["device"]
    assert device.local is not None
    assert device.local.model == str((tmp_path / TINY).resolve())
    assert not device.remote
    assert plan.tiers["edge"].url == "http://127.0.0.1:8001"
    assert plan.tiers["edge"].model == "small"
    assert plan.tiers["cloud"].url == "http://127.0.0.1:8002"
    assert plan.tiers["cloud"].model == "large"
    assert plan.tiers["cloud"].auth_header_env == "TIERWISE_CLOUD_AUTH"
    assert [s.tier for s in plan.workloads["digits"].cascade] == ["device", "edge", "cloud"]
    assert plan.stage("digits", "device").rule == "max_prob"
    assert plan.stage("digits", "cloud").rule is None
    assert plan.origin("digits-personal").site == "store-1"
    assert plan.price_schedule is not None


def test_example_in_the_repository_loads_without_checking_files() -> None:
    plan = load_plan(EXAMPLE, check_files=False)
    assert plan.workloads["digits-personal"].privacy == "personal"


def test_example_costs_are_the_cost_model_of_the_retail_fleet() -> None:
    spec = load_spec(EXAMPLES / "retail-shelf.yaml")
    plan = load_plan(EXAMPLE, check_files=False)
    expected = {
        "device": tier_cost(spec, "shelf-detect", "shelf-cam", busy_s_per_inference=0.01),
        "edge": tier_cost(spec, "shelf-detect", "store-edge"),
        "cloud": tier_cost(spec, "product-reid", "reid-cloud", throughput_per_instance_per_s=4.0),
    }
    for name, cost in expected.items():
        written = plan.tiers[name].cost_usd_per_inference
        assert written == pytest.approx(cost.usd_per_inference, rel=5e-3), name
    costs = [plan.tiers[n].cost_usd_per_inference for n in ("device", "edge", "cloud")]
    assert costs == sorted(costs)  # the cascade is cheapest first


def test_missing_local_model_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, example(), with_model=False)
    problem = only(problems_of(path))
    assert problem.file == str(path)
    assert problem.path == "tiers.device.local.model"
    assert "expected an ONNX file, but there is none at" in problem.message
    assert str((tmp_path / TINY).resolve()) in problem.message
    assert load_plan(path, check_files=False).tiers["device"].local is not None


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_registered_rule_is_accepted(tmp_path: Path, rule: str) -> None:
    data = example()
    data["workloads"]["digits"]["cascade"][0]["rule"] = rule
    assert load_plan(write(tmp_path, data)).stage("digits", "device").rule == rule


# --- broken plans -------------------------------------------------------------------------


def _set(*path: Any, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _drop(*path: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


def _cascade(workload: str, *stages: dict[str, Any]) -> Edit:
    return _set("workloads", workload, "cascade", value=list(stages))


BROKEN: list[tuple[str, Edit, str, str]] = [
    (
        "unknown cascade tier",
        _set("workloads", "digits", "cascade", 1, "tier", value="egde"),
        "workloads.digits.cascade[1].tier",
        "unknown tier 'egde'; did you mean 'edge'?",
    ),
    (
        "unknown rule",
        _set("workloads", "digits", "cascade", 0, "rule", value="maxprob"),
        "workloads.digits.cascade[0].rule",
        "expected one of max_prob, margin, entropy, detector, got 'maxprob'",
    ),
    (
        "threshold above 1",
        _set("workloads", "digits", "cascade", 0, "threshold", value=1.5),
        "workloads.digits.cascade[0].threshold",
        "expected a number <= 1, got 1.5",
    ),
    (
        "threshold below 0",
        _set("workloads", "digits", "cascade", 1, "threshold", value=-0.1),
        "workloads.digits.cascade[1].threshold",
        "expected a number >= 0, got -0.1",
    ),
    (
        "privacy class",
        _set("workloads", "digits", "privacy", value="secret"),
        "workloads.digits.privacy",
        "expected one of 'public', 'personal' or 'sensitive', got 'secret'",
    ),
    (
        "residency",
        _set("workloads", "digits", "residency", value="planet"),
        "workloads.digits.residency",
        "got 'planet'",
    ),
    (
        "urgency",
        _set("workloads", "digits", "urgency", value="asap"),
        "workloads.digits.urgency",
        "got 'asap'",
    ),
    (
        "no tier satisfies privacy",
        _set(
            "workloads",
            "digits-personal",
            value={"privacy": "personal", "origin_site": "store-1", "cascade": [{"tier": "cloud"}]},
        ),
        "workloads.digits-personal.cascade",
        "no tier may see this workload's data (cloud: privacy 'personal' may not leave site"
        " 'store-1' (cloud tier in region 'us-east'))",
    ),
    (
        "no tier satisfies residency",
        _set("workloads", "digits-batch", "residency", value="device"),
        "workloads.digits-batch.cascade",
        "no tier may see this workload's data (edge: residency 'device' keeps data on the"
        " device (edge tier at site 'store-1'); cloud: residency 'device'",
    ),
    (
        "last stage with a rule",
        _set("workloads", "digits", "cascade", 2, "rule", value="margin"),
        "workloads.digits.cascade[2].rule",
        "the last stage escalates nowhere; remove its rule",
    ),
    (
        "middle stage without a rule",
        _cascade("digits", {"tier": "device"}, {"tier": "cloud"}),
        "workloads.digits.cascade[0].rule",
        "a stage before the last needs a rule",
    ),
    (
        "rule without threshold",
        _cascade("digits", {"tier": "device", "rule": "margin"}, {"tier": "cloud"}),
        "workloads.digits.cascade[0].threshold",
        "expected a number in [0, 1] for the rule",
    ),
    (
        "tier listed twice",
        _cascade("digits", {"tier": "edge", "rule": "margin", "threshold": 0.5}, {"tier": "edge"}),
        "workloads.digits.cascade[1].tier",
        "tier 'edge' is listed twice",
    ),
    (
        "empty cascade",
        _cascade("digits"),
        "workloads.digits.cascade",
        "expected at least 1 entries, got 0",
    ),
    (
        "local and remote",
        _set("tiers", "device", "url", value="http://127.0.0.1:9"),
        "tiers.device",
        "expected exactly one of local (an in-process model) or url",
    ),
    (
        "neither local nor remote",
        _drop("tiers", "edge", "url"),
        "tiers.edge",
        "expected exactly one of local (an in-process model) or url",
    ),
    (
        "remote without model",
        _drop("tiers", "edge", "model"),
        "tiers.edge",
        "a remote tier needs model",
    ),
    (
        "not an http url",
        _set("tiers", "cloud", "url", value="ftp://example.com"),
        "tiers.cloud.url",
        "expected an http:// or https:// URL, got 'ftp://example.com'",
    ),
    (
        "rtt p99 under p50",
        _set("tiers", "cloud", "rtt_p99_ms", value=10),
        "tiers.cloud.rtt_p99_ms",
        "expected rtt_p99_ms >= rtt_p50_ms (25), got 10",
    ),
    (
        "missing cost",
        _drop("tiers", "edge", "cost_usd_per_inference"),
        "tiers.edge.cost_usd_per_inference",
        "field required",
    ),
    (
        "negative cost",
        _set("tiers", "edge", "cost_usd_per_inference", value=-1),
        "tiers.edge.cost_usd_per_inference",
        "expected a number >= 0, got -1",
    ),
    (
        "quoted number",
        _set("tiers", "edge", "rtt_p99_ms", value="20"),
        "tiers.edge.rtt_p99_ms",
        "expected a number, got '20' (remove the quotes)",
    ),
    (
        "misspelt field",
        _set("tiers", "edge", "timeout", value=1),
        "tiers.edge",
        "unknown field 'timeout'; did you mean 'timeout_s'?",
    ),
    (
        "secret instead of env name",
        _set("tiers", "cloud", "auth_header_env", value="Bearer s3cr3t"),
        "tiers.cloud.auth_header_env",
        "got 'Bearer s3cr3t'",
    ),
    (
        "auth on a local tier",
        _set("tiers", "device", "auth_header_env", value="TOKEN"),
        "tiers.device",
        "auth_header_env apply only to a remote tier",
    ),
    ("edge without site", _drop("tiers", "edge", "site"), "tiers.edge", "an edge tier needs site"),
    (
        "cloud without region",
        _drop("tiers", "cloud", "region"),
        "tiers.cloud",
        "a cloud tier needs region",
    ),
    ("unknown kind", _set("tiers", "cloud", "kind", value="fog"), "tiers.cloud.kind", "got 'fog'"),
    (
        "site in two regions",
        _set("tiers", "edge", "region", value="eu-west"),
        "tiers.edge.region",
        "site 'store-1' is in region 'us-east' on another tier, got 'eu-west'",
    ),
    (
        "budget period without budget",
        _set("workloads", "digits-personal", "budget_period_s", value=3600),
        "workloads.digits-personal.budget_period_s",
        "applies only with budget_usd_per_period",
    ),
    (
        "raw samples of sensitive data",
        _set("workloads", "digits", "privacy", value="sensitive"),
        "workloads.digits.allow_raw_samples",
        "privacy 'sensitive' inputs are never sampled",
    ),
    (
        "sample rate above 1",
        _set("workloads", "digits", "sample_rate", value=2),
        "workloads.digits.sample_rate",
        "expected a number <= 1, got 2",
    ),
    (
        "off-peak hour 24",
        _set("price_schedule", "off_peak_hours_utc", value=[23, 24]),
        "price_schedule.off_peak_hours_utc",
        "expected hours 0..23, got [24]",
    ),
    (
        "empty spot window",
        _set("price_schedule", "spot_windows_utc", value=[[3, 3]]),
        "price_schedule.spot_windows_utc",
        "end differs from its start, got [3, 3]",
    ),
    (
        "spot window not a pair",
        _set("price_schedule", "spot_windows_utc", value=[[3]]),
        "price_schedule.spot_windows_utc",
        "expected [start_hour, end_hour] pairs, got [3]",
    ),
    (
        "schedule without windows",
        _set("price_schedule", value={}),
        "price_schedule",
        "a schedule with no window would defer requests forever",
    ),
    ("version", _set("version", value=2), "version", "expected one of 1, got 2"),
    ("no tiers", _drop("tiers"), "tiers", "field required"),
    (
        "empty workloads",
        _set("workloads", value={}),
        "workloads",
        "expected at least one entry in workloads",
    ),
    ("unknown top-level field", _set("tier", value={}), "<root>", "unknown field 'tier'"),
    ("bad tier name", _set("tiers", "edge box", value={}), "tiers.edge box", "invalid name"),
]


@pytest.mark.parametrize(
    ("edit", "path", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_plan(tmp_path: Path, edit: Edit, path: str, message: str) -> None:
    data = copy.deepcopy(example())
    edit(data)
    plan_file = write(tmp_path, data)
    problem = only(problems_of(plan_file))
    assert problem.file == str(plan_file)
    assert (problem.path or "<root>") == path
    assert message in problem.message
    assert str(problem).startswith(f"{plan_file}: {path}: ")
    if "." in path or "[" in path:  # inside the file: the line is given
        assert "(line " in problem.message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = example()
    data["tiers"]["cloud"]["rtt_p50_ms"] = "slow"
    data["workloads"]["digits"]["privacy"] = "secret"
    data["workloads"]["digits"]["cascade"][1]["tier"] = "egde"
    data["workloads"]["digits-batch"]["cascade"][0]["tier"] = "nowhere"
    data["price_schedule"]["off_peak_hours_utc"] = [99]
    paths = [p.path for p in problems_of(write(tmp_path, data))]
    assert sorted(paths) == sorted(
        [
            "tiers.cloud.rtt_p50_ms",
            "workloads.digits.privacy",
            "workloads.digits.cascade[1].tier",
            "workloads.digits-batch.cascade[0].tier",
            "price_schedule.off_peak_hours_utc",
        ]
    )


def test_cascade_naming_a_broken_tier_is_reported_once(tmp_path: Path) -> None:
    data = example()
    data["tiers"]["edge"]["rtt_p99_ms"] = "fast"
    assert [p.path for p in problems_of(write(tmp_path, data))] == ["tiers.edge.rtt_p99_ms"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty; expected a mapping with tiers and workloads"),
        ("- 1\n- 2\n", "expected a mapping with tiers and workloads at the top, got a list"),
        ("tiers: {a: 1\n", "invalid YAML at line 2, column 1"),
        ("version: 1\nversion: 1\n", "found duplicate key 'version'"),
    ],
)
def test_unreadable_yaml(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_plan(text, "plan.yaml")
    problem = only(info.value.problems)
    assert problem.file == "plan.yaml"
    assert message in problem.message


def test_missing_file(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path / "nope.yaml"))
    assert problem.message == "cannot read the file: no such file"


def test_plan_built_in_python_is_cross_checked() -> None:
    data = example()
    data["tiers"]["device"]["local"]["model"] = "tiny.onnx"
    data["workloads"]["digits"]["cascade"][0]["tier"] = "phone"
    with pytest.raises(ValidationError, match=r"workloads.digits.cascade\[0\].tier: unknown tier"):
        Plan.model_validate(data)


def test_unknown_workload_and_stage_lookups() -> None:
    plan = load_plan(EXAMPLE, check_files=False)
    with pytest.raises(ConfigError, match="workload: expected one of"):
        plan.workload("letters")
    with pytest.raises(ConfigError, match="tier: expected one of"):
        plan.stage("digits-batch", "device")


# --- linking a fleet spec -----------------------------------------------------------------


def _spec_plan(tmp_path: Path, workload: dict[str, Any], **tiers: dict[str, Any]) -> Path:
    shutil.copy(EXAMPLES / "retail-shelf.yaml", tmp_path / "fleet.yaml")
    remote = {"rtt_p50_ms": 25, "rtt_p99_ms": 120, "cost_usd_per_inference": 1e-5}
    data = {
        "version": 1,
        "spec": "fleet.yaml",
        "tiers": {
            "shelf-cam": {
                "local": {"model": "tiny.onnx"},
                "rtt_p50_ms": 0,
                "rtt_p99_ms": 0,
                "cost_usd_per_inference": 0,
            },
            "store-edge": {"url": "http://127.0.0.1:8001", "model": "small", **remote},
            "reid-cloud": {"url": "http://127.0.0.1:8002", "model": "large", **remote},
            **tiers,
        },
        "workloads": {"shelf-detect": workload},
    }
    (tmp_path / "tiny.onnx").write_bytes(b"onnx")
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


CASCADE = [
    {"tier": "shelf-cam", "rule": "detector", "threshold": 0.5},
    {"tier": "store-edge", "rule": "detector", "threshold": 0.5},
    {"tier": "reid-cloud"},
]


def test_spec_fills_kind_place_and_privacy(tmp_path: Path) -> None:
    plan = load_plan(_spec_plan(tmp_path, {"cascade": CASCADE}))
    assert plan.spec == str((tmp_path / "fleet.yaml").resolve())
    cam, edge, cloud = (plan.tiers[n] for n in ("shelf-cam", "store-edge", "reid-cloud"))
    assert (cam.kind, cam.site, cam.region) == ("device", "store", "us-east")
    assert (edge.kind, edge.site, edge.region) == ("edge", "store", "us-east")
    assert (cloud.kind, cloud.site, cloud.region) == ("cloud", None, "us-east")
    workload = plan.workloads["shelf-detect"]
    assert (workload.privacy, workload.residency) == ("personal", "site")
    assert (workload.origin_site, workload.origin_region) == ("store", "us-east")


def test_plan_may_narrow_the_spec(tmp_path: Path) -> None:
    plan = load_plan(_spec_plan(tmp_path, {"privacy": "sensitive", "cascade": CASCADE}))
    assert plan.workloads["shelf-detect"].privacy == "sensitive"


@pytest.mark.parametrize(
    ("workload", "tiers", "path", "message"),
    [
        (
            {"privacy": "public", "cascade": CASCADE},
            {},
            "workloads.shelf-detect.privacy",
            "the spec's workload has privacy 'personal'; a plan may narrow it, not widen it to"
            " 'public'",
        ),
        (
            {"cascade": CASCADE},
            {
                "store-edge": {
                    "kind": "cloud",
                    "region": "us-east",
                    "url": "http://x:1",
                    "model": "m",
                    "rtt_p50_ms": 1,
                    "rtt_p99_ms": 1,
                    "cost_usd_per_inference": 0,
                }
            },
            "tiers.store-edge.kind",
            "the spec says 'edge', got 'cloud'",
        ),
        (
            {"cascade": CASCADE},
            {
                "extra-edge": {
                    "kind": "edge",
                    "site": "mall",
                    "url": "http://x:1",
                    "model": "m",
                    "rtt_p50_ms": 1,
                    "rtt_p99_ms": 1,
                    "cost_usd_per_inference": 0,
                }
            },
            "tiers.extra-edge.site",
            "unknown site 'mall' (the spec's sites: store)",
        ),
    ],
)
def test_plan_disagreeing_with_the_spec(
    tmp_path: Path, workload: dict[str, Any], tiers: dict[str, Any], path: str, message: str
) -> None:
    problem = only(problems_of(_spec_plan(tmp_path, workload, **tiers)))
    assert problem.path == path
    assert message in problem.message


def test_broken_spec_problems_are_passed_on(tmp_path: Path) -> None:
    plan_file = _spec_plan(tmp_path, {"cascade": CASCADE})
    (tmp_path / "fleet.yaml").write_text("version: 1\ntiers: 3\n", encoding="utf-8")
    problems = problems_of(plan_file)
    assert problems[0].path == "spec"
    assert "the fleet spec 'fleet.yaml' has problems" in problems[0].message
    assert any(p.file == str((tmp_path / "fleet.yaml").resolve()) for p in problems[1:])
