"""Broken specs fail with a problem naming the file, the field path and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from spec_helpers import EXAMPLES, Broken

from tierwise.errors import SpecError, SpecProblem
from tierwise.spec import load_spec, parse_spec, validate_files


def only(problems: list[SpecProblem]) -> SpecProblem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_wrong_type(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["shelf-detect"]["slo"]["p99_ms"] = "fast"

    path = broken.write("retail-shelf", edit)
    problem = only(validate_files([path]))
    assert problem.file == str(path)
    assert problem.path == "workloads.shelf-detect.slo.p99_ms"
    assert "expected a number, got 'fast'" in problem.message
    assert "(line " in problem.message
    assert str(problem).startswith(f"{path}: workloads.shelf-detect.slo.p99_ms: expected a number")


def test_quoted_number_is_not_a_number(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["store-edge"]["cost"]["capex_usd"] = "150"

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "tiers.store-edge.cost.capex_usd"
    assert "expected a number, got '150' (remove the quotes)" in problem.message


def test_missing_field(broken: Broken) -> None:
    problem = only(
        broken.problems("retail-shelf", lambda d: d["tiers"]["store-edge"]["cost"].pop("capex_usd"))
    )
    assert problem.path == "tiers.store-edge.cost.capex_usd"
    assert problem.message.startswith("field required")


def test_unknown_field_suggests_the_right_one(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["shelf-detect"]["slo"]["p99"] = 500

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "workloads.shelf-detect.slo"
    assert "unknown field 'p99'; did you mean 'p99_ms'?" in problem.message


def test_unknown_field_lists_the_allowed_ones(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["store-edge"]["network"]["zzz"] = 1

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "tiers.store-edge.network"
    assert "unknown field 'zzz' (allowed: next_tier, rtt_p50_ms" in problem.message


def test_unknown_top_level_section(broken: Broken) -> None:
    problem = only(broken.problems("retail-shelf", lambda d: d.update(workload={})))
    assert problem.path == ""
    assert "unknown field 'workload'; did you mean 'workloads'?" in problem.message
    assert ": <root>: unknown field" in str(problem)


def test_workload_names_a_tier_that_does_not_exist(broken: Broken) -> None:
    problem = only(
        broken.problems(
            "retail-shelf", lambda d: d["workloads"]["shelf-detect"]["tiers"].append("cloud")
        )
    )
    assert problem.path == "workloads.shelf-detect.tiers[2]"
    assert "unknown tier 'cloud'; did you mean 'reid-cloud'?" in problem.message


def test_workload_names_a_model_that_does_not_exist(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["page-qa"]["model"] = "chatbot"

    problem = only(broken.problems("browser-assistant", edit))
    assert problem.path == "workloads.page-qa.model"
    assert "unknown model 'chatbot' (declared: assistant)" in problem.message


def test_workload_pins_a_variant_that_does_not_exist(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["weekly-digest"]["variants"]["t4-batch"] = "llama-int4"

    problem = only(broken.problems("batch-summarization", edit))
    assert problem.path == "workloads.weekly-digest.variants.t4-batch"
    assert "model 'summarizer' has no variant 'llama-int4'" in problem.message


def test_pinned_variant_must_fit_the_tier(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["public-qa"]["variants"]["browser"] = "large-fp16"

    problem = only(broken.problems("browser-assistant", edit))
    assert problem.path == "workloads.public-qa.variants.browser"
    assert "needs hardware tags ['cuda'] that tier 'browser' lacks" in problem.message


def test_sensitive_workload_without_a_device_tier(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["page-qa"]["tiers"] = ["cloud-qa"]
        d["workloads"]["page-qa"]["variants"] = {}

    problem = only(broken.problems("browser-assistant", edit))
    assert problem.path == "workloads.page-qa.privacy"
    assert "no tier listed for this workload satisfies privacy 'sensitive'" in problem.message
    assert "tier 'cloud-qa': privacy 'sensitive' keeps data on the device" in problem.message


def test_personal_workload_on_cloud_only(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["product-reid"]["privacy"] = "personal"
        d["workloads"]["product-reid"]["tiers"] = ["reid-cloud"]
        d["workloads"]["product-reid"]["variants"] = {}

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "workloads.product-reid.privacy"
    assert "may reach the site's edge but not the cloud" in problem.message


def test_residency_no_tier_satisfies(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["product-reid"]["residency"] = "site"
        d["workloads"]["product-reid"]["tiers"] = ["reid-cloud"]
        d["workloads"]["product-reid"]["variants"] = {}

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "workloads.product-reid.residency"
    assert "residency 'site'" in problem.message
    assert "a cloud tier is off-site" in problem.message


def test_region_residency_outside_the_region(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["regions"]["eu-west"] = {"provider": "aws", "provider_region": "eu-west-1"}
        for tier in ("t4-batch", "a10g-batch"):
            d["tiers"][tier]["region"] = "eu-west"

    problem = only(broken.problems("batch-summarization", edit))
    assert problem.path == "workloads.weekly-digest.residency"
    assert "keeps data in region 'us-east', this tier is in region 'eu-west'" in problem.message


def test_bad_yaml_syntax(broken: Broken) -> None:
    path = broken.text("tiers:\n  edge: {kind: edge\nmodels: {}\n")
    problem = only(validate_files([path]))
    assert problem.file == str(path)
    assert problem.path == ""
    assert problem.message.startswith("invalid YAML at line 3, column")


def test_duplicate_key_is_a_syntax_problem(broken: Broken) -> None:
    text = (EXAMPLES / "retail-shelf.yaml").read_text(encoding="utf-8")
    path = broken.text(text.replace("  shelf-cam:\n", "  store-edge:\n", 1))
    problem = only(validate_files([path]))
    assert "found duplicate key 'store-edge'" in problem.message


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file(broken: Broken, text: str) -> None:
    problem = only(validate_files([broken.text(text)]))
    assert problem.path == ""
    assert "the file is empty" in problem.message


def test_top_level_not_a_mapping(broken: Broken) -> None:
    problem = only(validate_files([broken.text("- tiers\n- models\n")]))
    assert "expected a mapping with tiers, models and workloads at the top, got a list" in (
        problem.message
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    problem = only(validate_files([path]))
    assert problem.file == str(path)
    assert "cannot read the file: no such file" in problem.message
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == [problem]


def test_missing_sections(broken: Broken) -> None:
    problems = validate_files([broken.text("version: 1\nname: empty\n")])
    assert [(p.path, p.message.split(" (line")[0]) for p in problems] == [
        ("tiers", "field required"),
        ("models", "field required"),
        ("workloads", "field required"),
    ]


def test_slo_order_violated(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["shelf-detect"]["slo"] = {"p50_ms": 120, "p95_ms": 600, "p99_ms": 500}

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "workloads.shelf-detect.slo.p99_ms"
    assert "expected p99_ms >= p95_ms (600), got 500" in problem.message


def test_mix_not_summing_to_one(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["reid-cloud"]["cost"]["mix"]["spot"] = 0.2

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "tiers.reid-cloud.cost.mix"
    assert "expected on_demand + spot + reserved = 1, got 0.2 + 0.2 + 0.5 = 0.9" in problem.message


def test_mix_fraction_without_its_price(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["t4-batch"]["cost"].pop("spot_usd_per_hour")

    problem = only(broken.problems("batch-summarization", edit))
    assert problem.path == "tiers.t4-batch.cost.mix"
    assert "spot is 0.8 but spot_usd_per_hour is not set" in problem.message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("egress_usd_per_gb", -0.09, "expected a number >= 0, got -0.09"),
        ("on_demand_usd_per_hour", True, "expected a number, got true"),
    ],
)
def test_bad_prices(broken: Broken, field: str, value: object, expected: str) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["cloud-qa"]["cost"][field] = value

    problem = only(broken.problems("browser-assistant", edit))
    assert problem.path == f"tiers.cloud-qa.cost.{field}"
    assert expected in problem.message


def test_hourly_profile_needs_24_values(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["page-qa"]["traffic"]["hourly_profile"] = [1.0] * 23

    problem = only(broken.problems("browser-assistant", edit))
    assert problem.path == "workloads.page-qa.traffic.hourly_profile"
    assert "expected exactly 24 values (hours 0..23), got 23" in problem.message


def test_bad_tier_kind_and_privacy_class(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["store-edge"]["kind"] = "fog"
        d["workloads"]["shelf-detect"]["privacy"] = "secret"

    problems = broken.problems("retail-shelf", edit)
    found = {p.path: p.message for p in problems}
    assert "expected one of 'device', 'edge', 'cloud', got 'fog'" in found["tiers.store-edge.kind"]
    assert (
        "expected one of 'public', 'personal' or 'sensitive', got 'secret'"
        in (found["workloads.shelf-detect.privacy"])
    )
    # the broken tier is still declared, so workloads naming it are not reported again
    assert not any("unknown tier" in p.message for p in problems)


def test_every_problem_is_reported(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["store-edge"]["cost"].pop("capex_usd")
        d["tiers"]["reid-cloud"]["cost"]["mix"]["spot"] = 0.9
        d["workloads"]["shelf-detect"]["slo"]["p99_ms"] = "fast"
        d["workloads"]["product-reid"]["model"] = "nope"
        d["workloads"]["product-reid"]["latncy"] = 5

    paths = sorted(p.path for p in broken.problems("retail-shelf", edit))
    assert paths == [
        "tiers.reid-cloud.cost.mix",
        "tiers.store-edge.cost.capex_usd",
        "workloads.product-reid",
        "workloads.product-reid.model",
        "workloads.shelf-detect.slo.p99_ms",
    ]


def test_invalid_names(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["store edge"] = d["tiers"]["store-edge"]

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "tiers.store edge"
    assert "invalid name" in problem.message


def test_name_must_match_key(broken: Broken) -> None:
    problem = only(
        broken.problems("retail-shelf", lambda d: d["tiers"]["store-edge"].update(name="other"))
    )
    assert problem.path == "tiers.store-edge.name"
    assert "name 'other' differs from its key 'store-edge'" in problem.message


def test_unknown_site_region_and_next_tier(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["store-edge"]["site"] = "warehouse"
        d["tiers"]["reid-cloud"]["region"] = "eu-west"
        d["tiers"]["shelf-cam"]["network"]["next_tier"] = "store-egde"

    found = {p.path: p.message for p in broken.problems("retail-shelf", edit)}
    assert "unknown site 'warehouse' (declared: store)" in found["tiers.store-edge.site"]
    assert "unknown region 'eu-west'" in found["tiers.reid-cloud.region"]
    assert "did you mean 'store-edge'?" in found["tiers.shelf-cam.network.next_tier"]


def test_next_tier_must_go_up(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["tiers"]["store-edge"]["network"]["next_tier"] = "shelf-cam"

    problem = only(broken.problems("retail-shelf", edit))
    assert problem.path == "tiers.store-edge.network.next_tier"
    assert "expected a tier above this edge tier, got device tier 'shelf-cam'" in problem.message


def test_traffic_needs_exactly_one_rate(broken: Broken) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["workloads"]["weekly-digest"]["traffic"]["requests_per_s"] = 1.0

    problem = only(broken.problems("batch-summarization", edit))
    assert problem.path == "workloads.weekly-digest.traffic"
    assert "got requests_per_s, requests_per_week" in problem.message


def test_deadline_only_for_deferrable(broken: Broken) -> None:
    problem = only(
        broken.problems(
            "batch-summarization",
            lambda d: d["workloads"]["weekly-digest"].update(urgency="interactive"),
        )
    )
    assert problem.path == "workloads.weekly-digest.deadline_h"
    assert "deadline_h applies only to urgency 'deferrable'" in problem.message


def test_parse_spec_raises_spec_error_with_all_problems() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("tiers: {}\nmodels: {}\nworkloads: {}\nextra: 1\n", file="inline.yaml")
    lines = str(info.value).splitlines()
    assert lines == [str(p) for p in info.value.problems]
    assert any("inline.yaml: tiers: expected at least one tier" in line for line in lines)
    assert any("unknown field 'extra'" in line for line in lines)


def test_validate_files_keeps_file_order(broken: Broken) -> None:
    good = EXAMPLES / "retail-shelf.yaml"
    bad_a = broken.text("", filename="a.yaml")
    bad_b = broken.text("[1]", filename="b.yaml")
    problems = validate_files([bad_b, good, bad_a])
    assert [p.file for p in problems] == [str(bad_b), str(bad_a)]
