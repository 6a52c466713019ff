"""The shipped examples validate and mean what their comments say."""

from __future__ import annotations

import pytest
from spec_helpers import EXAMPLES

from tierwise.spec import (
    CloudTier,
    DeviceTier,
    EdgeTier,
    FleetSpec,
    allowed_tiers,
    excluded_tiers,
    load_spec,
    tiers_of_kind,
    validate_files,
    variant_for,
    workload_origin,
)

NAMES = ["browser-assistant", "retail-shelf", "batch-summarization"]


@pytest.mark.parametrize("name", NAMES)
def test_example_validates(name: str) -> None:
    path = EXAMPLES / f"{name}.yaml"
    assert validate_files([path]) == []
    spec = load_spec(path)
    assert isinstance(spec, FleetSpec)
    assert spec.name == name
    for workload in spec.workloads.values():
        allowed = allowed_tiers(spec, workload)
        assert allowed, workload.name
        for tier in allowed:
            assert variant_for(spec, workload, tier) is not None


def test_all_examples_at_once() -> None:
    assert validate_files(sorted(EXAMPLES.glob("*.yaml"))) == []
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} >= set(NAMES)


def test_browser_assistant_keeps_page_content_on_device() -> None:
    spec = load_spec(EXAMPLES / "browser-assistant.yaml")
    page = spec.workloads["page-qa"]
    assert (page.privacy, page.residency) == ("sensitive", "device")
    assert [t.name for t in allowed_tiers(spec, page)] == ["browser"]
    assert [t.name for t in allowed_tiers(spec, "public-qa")] == ["browser", "cloud-qa"]
    assert [t.name for t in tiers_of_kind(spec, "cloud")] == ["cloud-qa"]


def test_retail_shelf_personal_data_stays_in_the_store() -> None:
    spec = load_spec(EXAMPLES / "retail-shelf.yaml")
    detect = spec.workloads["shelf-detect"]
    assert detect.privacy == "personal"
    kinds = {t.kind for t in allowed_tiers(spec, detect)}
    assert kinds == {"device", "edge"}
    origin = workload_origin(spec, detect)
    assert (origin.site, origin.region) == ("store", "us-east")
    # re-identification sends only anonymised embeddings, so the cloud is allowed
    reid = [t.name for t in allowed_tiers(spec, "product-reid")]
    assert reid == ["store-edge", "reid-cloud"]
    edge = spec.tiers["store-edge"]
    assert isinstance(edge, EdgeTier)
    assert spec.sites[edge.site].site_count == 40


def test_batch_summarization_is_deferrable_on_spot() -> None:
    spec = load_spec(EXAMPLES / "batch-summarization.yaml")
    digest = spec.workloads["weekly-digest"]
    assert digest.urgency == "deferrable"
    assert digest.deadline_h == 48
    for tier in tiers_of_kind(spec, "cloud"):
        assert isinstance(tier, CloudTier)
        assert tier.cost.mix.spot >= 0.5
    assert excluded_tiers(spec, digest) == {}
    assert not any(isinstance(t, DeviceTier) for t in spec.tiers.values())
