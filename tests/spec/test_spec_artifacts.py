"""The files a spec's variants name: missing ones are warnings, wrong ones problems, and
loading a spec never looks at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper
from spec_helpers import EXAMPLES, Broken

from tierwise.spec import check_files, load_spec, looks_like_onnx, validate_files

URI = "models.shelf-detector.variants.nano-int8.uri"


def write_onnx(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph), path)
    return path


def with_uri(uri: str, runtime: str | None = None) -> Any:
    def edit(d: dict[str, Any]) -> None:
        variant = d["models"]["shelf-detector"]["variants"]["nano-int8"]
        variant["uri"] = uri
        if runtime is not None:
            variant["runtime"] = runtime
        for model in d["models"].values():  # the others point at zoo:// (not checked)
            for name, other in model["variants"].items():
                if other is not variant:
                    other["uri"] = f"zoo://{name}"

    return edit


def test_onnx_header_check(tmp_path: Path) -> None:
    model = write_onnx(tmp_path / "m.onnx")
    assert looks_like_onnx(model.read_bytes()[:16])
    assert looks_like_onnx(b"\x10\x00\x00\x00ORTM")  # onnxruntime's .ort format
    for head in (b"", b"hello world", b"PK\x03\x04", b"version: 1\n", b'{"a": 1}', b"\x88"):
        assert not looks_like_onnx(head), head


def test_a_missing_file_is_a_warning_naming_field_and_resolved_path(broken: Broken) -> None:
    path = broken.write("retail-shelf", with_uri("artifacts/nano.onnx"))
    found = check_files([path])
    assert found.problems == []
    (warning,) = found.warnings
    assert (warning.file, warning.path) == (str(path), URI)
    resolved = path.parent / "artifacts" / "nano.onnx"
    assert f"no such file: 'artifacts/nano.onnx' resolves to {resolved}" in warning.message
    assert "(line " in warning.message
    assert validate_files([path]) == []


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p.mkdir(parents=True), "resolves to the folder"),
        (lambda p: p.write_bytes(b""), "resolves to an empty file"),
        (lambda p: p.write_text("not a model"), "does not start like an ONNX model"),
    ],
    ids=["folder", "empty", "not-onnx"],
)
def test_a_file_that_cannot_be_the_model_is_a_problem(
    broken: Broken, make: Any, needle: str
) -> None:
    path = broken.write("retail-shelf", with_uri("nano.onnx"))
    make(path.parent / "nano.onnx")
    found = check_files([path])
    assert found.warnings == []
    (problem,) = found.problems
    assert problem.path == URI
    assert needle in problem.message
    assert str(path.parent / "nano.onnx") in problem.message
    load_spec(path)  # loading (the planner's way in) does not look at the files


def test_real_models_uris_and_other_runtimes_pass(broken: Broken, tmp_path: Path) -> None:
    write_onnx(tmp_path / "models" / "nano.onnx")
    ok = broken.write("retail-shelf", with_uri("models/nano.onnx"))
    assert check_files([ok]).problems == check_files([ok]).warnings == []
    absolute = broken.write("retail-shelf", with_uri(str(tmp_path / "models" / "nano.onnx")))
    assert check_files([absolute]).warnings == []
    scheme = broken.write("retail-shelf", with_uri("oci://registry/shelf:1"))
    assert check_files([scheme]).warnings == []
    (tmp_path / "engine").mkdir()
    other = broken.write("retail-shelf", with_uri("engine", runtime="tensorrt"))
    assert check_files([other]).problems == []


def test_the_shipped_scenarios_only_warn() -> None:
    found = check_files(sorted(EXAMPLES.glob("*.yaml")))
    assert found.problems == []
    assert {w.path.rsplit(".", 1)[-1] for w in found.warnings} == {"uri"}
    for path in EXAMPLES.glob("*.yaml"):
        load_spec(path)
