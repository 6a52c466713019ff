"""Bundles carry each variant's drift reference: hashed and signed like the model,
pulled and verified with it, placed beside it (``reference.json``) on a node."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest

from registry_helpers import make_bundle, make_keys
from score_models import image_classifier, images
from tierwise.errors import BundleError, IntegrityError
from tierwise.registry import (
    BundleStore,
    LocalStore,
    Signer,
    TrustStore,
    create_bundle,
    parse_manifest,
    place_variant,
    pull,
    push,
    read_bundle_dir,
    verify,
)
from tierwise.telemetry.drift import REFERENCE_FILE, Reference
from tierwise.zoo import load_zoo, reference_for_model


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _ocr_repo(root: Path) -> Path:
    """A repository ``root/ocr/1/`` with a logits model the zoo did not make and its
    reference."""
    folder = root / "ocr" / "1"
    model = image_classifier(folder / "model.onnx", logits=True, height=8, width=16)
    reference_for_model(model, images(300, height=8, width=16)).save(folder / REFERENCE_FILE)
    return root


def _publish(tmp_path: Path, repo: Path, origin: BundleStore) -> None:
    keys = make_keys(tmp_path)
    create_bundle([repo], tmp_path / "bundle", name="ocr", version="1")
    push(read_bundle_dir(tmp_path / "bundle"), origin, Signer.from_file(keys.private_path))


def _trust(tmp_path: Path) -> TrustStore:
    return TrustStore.from_paths([tmp_path / "keys"])


def test_zoo_bundle_carries_every_reference(shared_zoo_dir: Path, tmp_path: Path) -> None:
    zoo = load_zoo(shared_zoo_dir)
    manifest = create_bundle([shared_zoo_dir], tmp_path / "b", name="digits", version="1")
    assert {v.name for v in manifest.variants} == {v.name for v in zoo.variants}
    for entry in manifest.variants:
        path = zoo.reference_path(entry.name)
        assert path is not None
        assert entry.reference is not None
        assert entry.reference.digest == _sha(path)
        assert entry.reference.size_bytes == path.stat().st_size
    bundle = read_bundle_dir(tmp_path / "b")
    assert b'"reference"' in bundle.manifest_bytes  # signed with the manifest


def test_reference_travels_and_lands_beside_the_model(tmp_path: Path) -> None:
    repo = _ocr_repo(tmp_path / "repo")
    origin, node = LocalStore(tmp_path / "origin"), LocalStore(tmp_path / "node")
    _publish(tmp_path, repo, origin)
    report = pull(origin, "ocr", "1", node, _trust(tmp_path), variants=["ocr"])
    entry = report.manifest.variant("ocr")
    assert entry.reference is not None
    assert sorted(report.fetched) == sorted({entry.digest, entry.reference.digest})
    assert verify(node, "ocr", "1", _trust(tmp_path), variants=["ocr"]).blobs == 2
    target = tmp_path / "served" / "ocr" / "7"
    target.mkdir(parents=True)
    model = place_variant(node, entry, target)
    assert model == target / "model.onnx"
    assert model.read_bytes() == (repo / "ocr/1/model.onnx").read_bytes()
    placed = Reference.load(target / REFERENCE_FILE)
    assert placed == Reference.load(repo / "ocr/1" / REFERENCE_FILE)
    assert placed.score_kind == "logits"
    # gc keeps a reference a live version needs
    assert node.gc().removed_blobs == []
    assert node.has_blob("ocr", entry.reference.digest)


@pytest.mark.parametrize("how", ["truncate", "edit"])
def test_tampered_reference_is_refused(tmp_path: Path, how: str) -> None:
    repo = _ocr_repo(tmp_path / "repo")
    origin, node = LocalStore(tmp_path / "origin"), LocalStore(tmp_path / "node")
    _publish(tmp_path, repo, origin)
    manifest = parse_manifest(origin.get_manifest("ocr", origin.resolve("ocr", "1"),
                                                  limit_bytes=1 << 20).manifest_bytes)  # fmt: skip
    reference = manifest.variant("ocr").reference
    assert reference is not None
    blob = origin.blob_path(reference.digest)
    blob.chmod(0o644)
    data = blob.read_bytes()
    blob.write_bytes(
        data[:-10] if how == "truncate" else data.replace(b'"rows":300', b'"rows":301')
    )
    with pytest.raises(IntegrityError):
        verify(origin, "ocr", "1", _trust(tmp_path))
    with pytest.raises(IntegrityError):
        pull(origin, "ocr", "1", node, _trust(tmp_path))
    assert node.list_bundles() == []
    assert not node.has_blob("ocr", reference.digest)


def test_bundle_dir_with_a_missing_reference_blob_is_refused(tmp_path: Path) -> None:
    repo = _ocr_repo(tmp_path / "repo")
    manifest = create_bundle([repo], tmp_path / "b", name="ocr", version="1")
    reference = manifest.variant("ocr").reference
    assert reference is not None
    (tmp_path / "b/blobs/sha256" / reference.digest[7:]).unlink()
    with pytest.raises(BundleError, match="missing"):
        read_bundle_dir(tmp_path / "b")


def test_bad_references_beside_a_model_are_refused(tmp_path: Path) -> None:
    repo = _ocr_repo(tmp_path / "repo")
    path = repo / "ocr/1" / REFERENCE_FILE
    good = path.read_bytes()
    path.write_bytes(b"{not json")
    with pytest.raises(BundleError, match="not a valid drift reference"):
        create_bundle([repo], tmp_path / "b1", name="ocr", version="1")
    doc = orjson.loads(good)
    doc["input"]["name"] = "pixels"
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(BundleError, match="reads input 'pixels'"):
        create_bundle([repo], tmp_path / "b2", name="ocr", version="1")


def test_manifests_without_references_keep_their_bytes(tmp_path: Path) -> None:
    folder, manifest = make_bundle(tmp_path, "1", {"edge": 1})
    assert all(v.reference is None for v in manifest.variants)
    body = read_bundle_dir(folder).manifest_bytes
    assert b"reference" not in body
    assert parse_manifest(body).canonical_bytes() == body


def test_manifest_refuses_an_oversized_reference(tmp_path: Path) -> None:
    repo = _ocr_repo(tmp_path / "repo")
    manifest = create_bundle([repo], tmp_path / "b", name="ocr", version="1")
    doc = orjson.loads(manifest.canonical_bytes())
    doc["variants"][0]["reference"]["size_bytes"] = 1 << 40
    with pytest.raises(BundleError, match="reference"):
        parse_manifest(orjson.dumps(doc))


def test_a_file_source_without_a_reference_carries_none(tmp_path: Path) -> None:
    repo = _ocr_repo(tmp_path / "repo")
    single = tmp_path / "ocr.onnx"
    shutil.copyfile(repo / "ocr/1/model.onnx", single)
    manifest = create_bundle([single], tmp_path / "b", name="ocr", version="1")
    assert manifest.variant("ocr").reference is None


def test_reference_round_trip_through_an_oci_registry(tmp_path: Path) -> None:
    from registry_helpers import oci_registry
    from tierwise.registry import OciStore

    repo = _ocr_repo(tmp_path / "repo")
    node = LocalStore(tmp_path / "node")
    with oci_registry(tmp_path / "oci") as running:
        store = OciStore(f"oci://{running.host}/tw", plain_http=True, timeout_s=10)
        _publish(tmp_path, repo, store)
        report = pull(store, "ocr", "1", node, _trust(tmp_path))
        reference = report.manifest.variant("ocr").reference
        assert reference is not None
        assert (
            running.blob_file(reference.digest).read_bytes()
            == (repo / "ocr/1" / REFERENCE_FILE).read_bytes()
        )
    assert node.has_blob("ocr", reference.digest)
