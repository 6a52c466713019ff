"""Bundle manifests and signatures: what is refused, and why."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from registry_helpers import make_bundle, make_keys, model_file
from tierwise.errors import BundleError, ConfigError, SignatureError
from tierwise.registry import (
    MAX_MANIFEST_BYTES,
    Signer,
    TrustStore,
    create_bundle,
    parse_manifest,
    parse_ref,
    read_bundle_dir,
)


def _manifest_doc(tmp_path: Path) -> dict[str, object]:
    _, manifest = make_bundle(tmp_path, "1", {"edge": 1})
    return orjson.loads(manifest.canonical_bytes())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "/etc/passwd", "edge/../../x", "edge/./model.onnx", ".hidden/model",
     "C:/model.onnx", "edge\\model.onnx", ""],
)  # fmt: skip
def test_unsafe_variant_paths_are_refused(tmp_path: Path, path: str) -> None:
    doc = _manifest_doc(tmp_path)
    doc["variants"][0]["path"] = path  # type: ignore[index]
    with pytest.raises(BundleError, match=r"variants\.0\.path"):
        parse_manifest(orjson.dumps(doc))


def test_oversized_manifest_is_refused_before_parsing() -> None:
    data = b"{" + b" " * MAX_MANIFEST_BYTES + b"}"
    with pytest.raises(BundleError, match="manifest size check failed"):
        parse_manifest(data)


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("schema", "tierwise.bundle/9", "schema"),
        ("name", "Bad Name", "name"),
        ("version", "1+build", "version"),
        ("variants", [], "variants"),
    ],
)
def test_invalid_manifest_fields_name_the_field(
    tmp_path: Path, field: str, value: object, where: str
) -> None:
    doc = _manifest_doc(tmp_path)
    doc[field] = value
    with pytest.raises(BundleError, match=f"at {where}"):
        parse_manifest(orjson.dumps(doc))


def test_bad_digest_in_manifest_is_refused(tmp_path: Path) -> None:
    doc = _manifest_doc(tmp_path)
    doc["variants"][0]["digest"] = "sha256:" + "g" * 64  # type: ignore[index]
    with pytest.raises(BundleError, match="digest"):
        parse_manifest(orjson.dumps(doc))


def test_non_json_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not valid JSON"):
        parse_manifest(b"\x00not json")


def test_bundle_from_repository_takes_accuracy_and_quantization(
    shared_zoo_dir: Path, tmp_path: Path
) -> None:
    manifest = create_bundle(
        [shared_zoo_dir], tmp_path / "b", name="digits", version="1",
        tags={"hw": "pi5"}, variant_tags={"small-int8": {"tier": "edge"}},
    )  # fmt: skip
    by_name = {v.name: v for v in manifest.variants}
    assert set(by_name) == {"tiny", "tiny-int8", "small", "small-int8", "large", "large-int8"}
    assert by_name["small-int8"].quantization == "int8"
    assert by_name["small"].quantization == "fp32"
    assert by_name["small-int8"].tags == {"hw": "pi5", "tier": "edge"}
    assert by_name["large"].accuracy is not None
    assert 0.9 < by_name["large"].accuracy < 1.0
    assert [t.name for t in manifest.inputs] == ["image"]
    bundle = read_bundle_dir(tmp_path / "b")
    assert bundle.manifest == manifest
    assert bundle.manifest_bytes == manifest.canonical_bytes()


def test_bundle_refuses_variants_with_different_signatures(tmp_path: Path) -> None:
    a = model_file(tmp_path, "a", seed=1)
    from tierwise.bench.synthetic import dense_stack_model

    b = dense_stack_model(tmp_path / "b.onnx", width=8, depth=2, in_width=5, out_width=4)
    with pytest.raises(BundleError, match="must share inputs and outputs"):
        create_bundle([a, b], tmp_path / "out", name="x", version="1")


def test_bundle_dir_with_a_tampered_blob_is_refused(tmp_path: Path) -> None:
    folder, manifest = make_bundle(tmp_path, "1", {"edge": 1})
    blob = folder / "blobs/sha256" / manifest.variants[0].digest[7:]
    blob.write_bytes(blob.read_bytes()[:-1])
    with pytest.raises(BundleError, match="the manifest gives"):
        read_bundle_dir(folder)


def test_sign_and_verify(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    other = make_keys(tmp_path, "other")
    signer = Signer.from_file(keys.private_path)
    data = b'{"a":1}'
    signature = signer.sign(data)
    trust = TrustStore.from_paths([keys.public_path])
    assert trust.verify(data, signature, bundle="x") == keys.key_id == signer.key_id
    # a folder of keys trusts every key in it
    assert TrustStore.from_paths([tmp_path / "keys"]).key_ids == sorted([keys.key_id, other.key_id])
    assert oct(keys.private_path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unsigned", "unsigned"),
        ("untrusted", "not trusted"),
        ("tampered-manifest", "does not match the manifest"),
        ("tampered-signature", "does not match the manifest"),
        ("malformed", "malformed"),
        ("algorithm", "algorithm"),
        ("no-keys", "no trusted keys"),
    ],
)
def test_signature_failures_name_the_check(tmp_path: Path, case: str, message: str) -> None:
    keys = make_keys(tmp_path)
    other = make_keys(tmp_path, "other")
    data = b'{"name":"demo"}'
    signature = Signer.from_file(keys.private_path).sign(data)
    trust = TrustStore.from_paths([keys.public_path])
    doc = orjson.loads(signature)
    if case == "unsigned":
        signature = b""
    elif case == "untrusted":
        signature = Signer.from_file(other.private_path).sign(data)
    elif case == "tampered-manifest":
        data = b'{"name":"demX"}'
    elif case == "tampered-signature":
        raw = bytearray(base64.b64decode(doc["signature"]))
        raw[0] ^= 1
        doc["signature"] = base64.b64encode(bytes(raw)).decode()
        signature = orjson.dumps(doc)
    elif case == "malformed":
        signature = b"{not json"
    elif case == "algorithm":
        doc["algorithm"] = "rsa"
        signature = orjson.dumps(doc)
    elif case == "no-keys":
        trust = TrustStore([])
    with pytest.raises(SignatureError, match=message) as info:
        trust.verify(data, signature, bundle="demo:1")
    assert "signature check failed" in str(info.value)


def test_bad_key_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key")
    with pytest.raises(ConfigError, match="trusted_keys"):
        TrustStore.from_paths([junk])
    with pytest.raises(ConfigError, match="key"):
        Signer.from_file(junk)
    keys = make_keys(tmp_path)
    with pytest.raises(ConfigError, match="no existing key"):
        make_keys(tmp_path)
    assert keys.private_path.exists()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("demo", ("demo", "latest")),
        ("demo:3", ("demo", "3")),
        ("demo:stable", ("demo", "stable")),
        ("demo@sha256:" + "a" * 64, ("demo", "sha256:" + "a" * 64)),
    ],
)
def test_parse_ref(ref: str, expected: tuple[str, str]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["Demo", "demo:", "demo@sha256:xyz", "../demo", "demo:a/b"])
def test_bad_refs(ref: str) -> None:
    with pytest.raises(BundleError, match="reference"):
        parse_ref(ref)


def test_models_with_external_data_are_refused(tmp_path: Path) -> None:
    import onnx

    source = model_file(tmp_path, "big", seed=1, width=64)
    model = onnx.load(str(source))
    onnx.save(model, str(tmp_path / "split.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="split.data", size_threshold=0)  # fmt: skip
    with pytest.raises(BundleError, match="external data"):
        create_bundle([tmp_path / "split.onnx"], tmp_path / "out", name="x", version="1")
