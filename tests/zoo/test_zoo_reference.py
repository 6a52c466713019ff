"""Each zoo variant's drift reference: built on the eval split, recorded in zoo.json with
its sha256, required for a zoo to count as current."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from tierwise.errors import ZooError
from tierwise.telemetry.drift import Reference
from tierwise.zoo import (
    Zoo,
    load_eval,
    load_zoo,
    reference_for_model,
    reference_path,
    zoo_is_current,
)
from tierwise.zoo.files import sha256_of


def test_every_variant_has_its_reference(zoo: Zoo) -> None:
    x, _ = load_eval(zoo.root)
    manifest = orjson.loads((zoo.root / "zoo.json").read_bytes())
    for entry in manifest["variants"]:
        name = entry["name"]
        assert entry["reference"]["path"] == reference_path(name) == f"{name}/1/reference.json"
        path = zoo.reference_path(name)
        assert path is not None
        assert entry["reference"]["sha256"] == sha256_of(path)
        ref = Reference.load(path)
        assert ref.rows == x.shape[0]
        assert ref.input_name == "image"
        assert ref.output == "probabilities"
        assert ref.classes == 10
        assert ref.score_kind == "probabilities"
        # the same reference comes from running the model on the eval split again
        assert ref == reference_for_model(zoo.model_path(name), x, output="probabilities")


def test_references_differ_between_tiers(zoo: Zoo) -> None:
    def confidence(name: str) -> float:
        path = zoo.reference_path(name)
        assert path is not None
        return float(np.mean(Reference.load(path).confidence))

    assert confidence("tiny") != confidence("large")


def test_changed_reference_is_caught(zoo_copy: Path) -> None:
    path = zoo_copy / reference_path("small")
    path.write_bytes(path.read_bytes().replace(b'"format":1', b'"format":1 '))
    assert not zoo_is_current(zoo_copy, 0)
    with pytest.raises(ZooError, match=r"small/1/reference\.json does not match the sha256"):
        load_zoo(zoo_copy, verify=True)


def test_zoo_without_references_is_not_current(zoo_copy: Path) -> None:
    manifest = zoo_copy / "zoo.json"
    document = orjson.loads(manifest.read_bytes())
    for entry in document["variants"]:
        del entry["reference"]
    manifest.write_bytes(orjson.dumps(document))
    loaded = load_zoo(zoo_copy, verify=True)  # an older zoo still loads
    assert loaded.reference_path("tiny") is None
    assert not zoo_is_current(zoo_copy, 0)  # but is rebuilt


def test_reference_path_outside_the_zoo_is_refused(zoo_copy: Path) -> None:
    manifest = zoo_copy / "zoo.json"
    document = orjson.loads(manifest.read_bytes())
    document["variants"][0]["reference"]["path"] = "../reference.json"
    manifest.write_bytes(orjson.dumps(document))
    with pytest.raises(ZooError, match="inside the zoo"):
        load_zoo(zoo_copy)
