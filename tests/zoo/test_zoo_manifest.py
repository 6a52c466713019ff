"""load_zoo validation, zoo_is_current and load_eval on intact and damaged zoos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tierwise.errors import ZooError
from tierwise.zoo import load_eval, load_zoo, zoo_is_current
from tierwise.zoo.files import write_npz


def _edit_manifest(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = root / "zoo.json"
    document = orjson.loads(path.read_bytes())
    edit(document)
    path.write_bytes(orjson.dumps(document))


def test_current_after_build(zoo_copy: Path) -> None:
    assert zoo_is_current(zoo_copy, 0)
    assert not zoo_is_current(zoo_copy, 1)  # other seed


def test_not_current_after_a_model_changes(zoo_copy: Path) -> None:
    model = zoo_copy / "small-int8/1/model.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    assert not zoo_is_current(zoo_copy, 0)
    with pytest.raises(ZooError, match=r"small-int8/1/model\.onnx does not match the sha256"):
        load_zoo(zoo_copy, verify=True)
    load_zoo(zoo_copy)  # without verify only presence is checked


def test_not_current_after_eval_changes(zoo_copy: Path) -> None:
    x, y = load_eval(zoo_copy)
    write_npz(zoo_copy / "eval.npz", {"x": x, "y": np.roll(y, 1)})
    assert not zoo_is_current(zoo_copy, 0)


def test_not_current_for_another_builder_version(zoo_copy: Path) -> None:
    _edit_manifest(zoo_copy, lambda d: d.update(builder_version="0-old"))
    assert load_zoo(zoo_copy, verify=True).builder_version == "0-old"
    assert not zoo_is_current(zoo_copy, 0)


def test_not_current_when_missing(tmp_path: Path) -> None:
    assert not zoo_is_current(tmp_path, 0)
    assert not zoo_is_current(tmp_path / "nowhere", 0)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"no zoo\.json in .*tierwise zoo build"):
        load_zoo(tmp_path)


def test_manifest_not_json(zoo_copy: Path) -> None:
    (zoo_copy / "zoo.json").write_text('{"format": 1, "seed": ')
    with pytest.raises(ZooError, match=r"zoo\.json is not valid JSON"):
        load_zoo(zoo_copy)
    assert not zoo_is_current(zoo_copy, 0)


def _drop_seed(d: dict[str, Any]) -> None:
    del d["seed"]


def _bad_sha(d: dict[str, Any]) -> None:
    d["variants"][1]["sha256"] = "xyz"


def _escape_path(d: dict[str, Any]) -> None:
    d["variants"][0]["path"] = "../elsewhere/model.onnx"


def _bad_tier(d: dict[str, Any]) -> None:
    d["variants"][2]["tier"] = "moon"


def _bad_accuracy(d: dict[str, Any]) -> None:
    d["variants"][0]["accuracy"] = 1.5


def _unknown_parent(d: dict[str, Any]) -> None:
    d["variants"][1]["parent"] = "ghost"


def _duplicate(d: dict[str, Any]) -> None:
    d["variants"].append(d["variants"][0])


def _not_object(d: dict[str, Any]) -> None:
    d.clear()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop_seed, r"seed: Field required"),
        (_bad_sha, r"variants\.1\.sha256"),
        (_escape_path, r"variants\.0\.path: .*relative path inside"),
        (_bad_tier, r"variants\.2\.tier"),
        (_bad_accuracy, r"variants\.0\.accuracy"),
        (_unknown_parent, r"'tiny-int8' names parent 'ghost'"),
        (_duplicate, r"'tiny' is listed twice"),
        (_not_object, r"format: Field required"),
    ],
)
def test_invalid_manifest_names_the_problem(
    zoo_copy: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    _edit_manifest(zoo_copy, edit)
    with pytest.raises(ZooError, match=message) as info:
        load_zoo(zoo_copy)
    assert "zoo.json" in str(info.value)


def test_manifest_that_is_a_list(zoo_copy: Path) -> None:
    (zoo_copy / "zoo.json").write_text("[]")
    with pytest.raises(ZooError, match="not a valid zoo manifest"):
        load_zoo(zoo_copy)


def test_listed_file_missing(zoo_copy: Path) -> None:
    (zoo_copy / "large/1/model.onnx").unlink()
    with pytest.raises(ZooError, match=r"lists large/1/model\.onnx, but .* does not exist"):
        load_zoo(zoo_copy)
    assert not zoo_is_current(zoo_copy, 0)


def test_load_eval_errors(zoo_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"no eval\.npz"):
        load_eval(tmp_path)
    (zoo_copy / "eval.npz").write_bytes(b"not a zip")
    with pytest.raises(ZooError, match="cannot read"):
        load_eval(zoo_copy)
    write_npz(zoo_copy / "eval.npz", {"x": np.zeros((3, 8, 8), np.float64), "y": np.zeros(3)})
    with pytest.raises(ZooError, match="'x' must be float32"):
        load_eval(zoo_copy)
    write_npz(zoo_copy / "eval.npz", {"images": np.zeros((3, 8, 8), np.float32)})
    with pytest.raises(ZooError, match="must hold arrays 'x' and 'y'"):
        load_eval(zoo_copy)
