"""The embedded store and pull's checks, store to store on disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from registry_helpers import make_bundle, make_keys, publish
from tierwise.errors import (
    BundleError,
    BundleExistsError,
    BundleNotFoundError,
    IntegrityError,
    RegistryError,
    SignatureError,
)
from tierwise.registry import (
    LocalStore,
    Signer,
    StoredBundle,
    TrustStore,
    digest_bytes,
    pull,
    push,
    read_bundle_dir,
    verify,
)


@pytest.fixture
def stores(tmp_path: Path) -> tuple[LocalStore, LocalStore]:
    return LocalStore(tmp_path / "origin"), LocalStore(tmp_path / "node")


def _trust(tmp_path: Path) -> TrustStore:
    return TrustStore.from_paths([tmp_path / "keys"])


def test_round_trip_tags_and_listing(tmp_path: Path, stores: tuple[LocalStore, LocalStore]) -> None:
    origin, node = stores
    keys = make_keys(tmp_path)
    v1 = publish(origin, tmp_path, keys, "1", {"edge": 1, "cloud": 2}, tags=["stable"])
    v2 = publish(origin, tmp_path, keys, "2", {"edge": 3, "cloud": 2}, tags=["canary"])
    assert origin.resolve("demo", "stable") == v1.digest
    assert origin.resolve("demo", "2") == v2.digest
    assert origin.resolve("demo", v1.digest) == v1.digest
    origin.set_tag("demo", "stable", "2")
    assert origin.resolve("demo", "stable") == v2.digest
    rows = {r.version: r for r in origin.list_bundles("demo")}
    assert rows["2"].tags == ["canary", "stable"]
    assert rows["1"].tags == []
    assert sorted(rows["1"].variants) == ["cloud", "edge"]

    report = pull(origin, "demo", "stable", node, _trust(tmp_path))
    assert report.manifest.version == "2"
    assert report.key_id == keys.key_id
    assert verify(node, "demo", "2", _trust(tmp_path)).blobs == 2
    with pytest.raises(BundleNotFoundError, match="no version, tag or digest 'nope'"):
        origin.resolve("demo", "nope")
    with pytest.raises(BundleNotFoundError, match=r"no bundle 'dmeo' in .*\(bundles: demo\)"):
        origin.resolve("dmeo", "2")
    with pytest.raises(BundleNotFoundError):
        origin.set_tag("demo", "stable", "9")
    with pytest.raises(BundleExistsError, match="is a version"):
        origin.set_tag("demo", "1", "2")


def test_versions_are_immutable(tmp_path: Path, stores: tuple[LocalStore, LocalStore]) -> None:
    origin, _ = stores
    keys = make_keys(tmp_path)
    first = publish(origin, tmp_path, keys, "1", {"edge": 1})
    publish(origin, tmp_path / "same", keys, "1", {"edge": 1})  # same content: a no-op
    with pytest.raises(BundleExistsError, match="versions are immutable"):
        publish(origin, tmp_path / "changed", keys, "1", {"edge": 7})
    assert origin.resolve("demo", "1") == first.digest


def test_a_new_version_moves_only_the_changed_blob(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore]
) -> None:
    origin, node = stores
    keys = make_keys(tmp_path)
    signer = Signer.from_file(keys.private_path)
    b1, _ = make_bundle(tmp_path, "1", {"tiny": 1, "small": 2, "large": 3})
    b2, m2 = make_bundle(tmp_path, "2", {"tiny": 1, "small": 9, "large": 3})
    assert len(push(read_bundle_dir(b1), origin, signer).uploaded) == 3
    second = push(read_bundle_dir(b2), origin, signer)
    assert second.uploaded == [m2.variant("small").digest]
    assert len(second.skipped) == 2
    assert len(pull(origin, "demo", "1", node, _trust(tmp_path)).fetched) == 3
    again = pull(origin, "demo", "2", node, _trust(tmp_path))
    assert again.fetched == [m2.variant("small").digest]
    assert again.fetched_bytes == m2.variant("small").size_bytes
    assert len(again.reused) == 2


def test_pull_of_chosen_variants_only(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore]
) -> None:
    origin, node = stores
    keys = make_keys(tmp_path)
    manifest = publish(origin, tmp_path, keys, "1", {"edge": 1, "cloud": 2})
    report = pull(origin, "demo", "1", node, _trust(tmp_path), variants=["edge"])
    assert report.fetched == [manifest.variant("edge").digest]
    assert not node.has_blob("demo", manifest.variant("cloud").digest)
    assert verify(node, "demo", "1", _trust(tmp_path), variants=["edge"]).blobs == 1
    with pytest.raises(BundleError, match="no variant 'gpu'"):
        pull(origin, "demo", "1", node, _trust(tmp_path), variants=["gpu"])


def test_gc_removes_only_unreferenced_blobs(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore]
) -> None:
    origin, _ = stores
    keys = make_keys(tmp_path)
    m1 = publish(origin, tmp_path, keys, "1", {"edge": 1, "cloud": 2})
    m2 = publish(origin, tmp_path, keys, "2", {"edge": 3, "cloud": 2})
    (origin.tmp).mkdir(exist_ok=True)
    (origin.tmp / "left.partial").write_bytes(b"x")
    origin.delete_version("demo", "1")
    report = origin.gc()
    assert report.removed_blobs == [m1.variant("edge").digest]
    assert report.removed_partials == 1
    assert origin.has_blob("demo", m2.variant("cloud").digest)
    assert verify(origin, "demo", "2", _trust(tmp_path)).blobs == 2


def _tamper_blob(store: LocalStore, digest: str, how: str) -> None:
    path = store.blob_path(digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("how", "check"), [("truncate", "size"), ("flip", "digest")])
def test_tampered_blob_is_refused_and_nothing_becomes_visible(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore], how: str, check: str
) -> None:
    origin, node = stores
    keys = make_keys(tmp_path)
    manifest = publish(origin, tmp_path, keys, "1", {"edge": 1})
    digest = manifest.variant("edge").digest
    _tamper_blob(origin, digest, how)
    with pytest.raises(IntegrityError, match=f"{check} check failed") as info:
        pull(origin, "demo", "1", node, _trust(tmp_path))
    assert info.value.check == check
    assert not node.has_blob("demo", digest)
    assert node.list_bundles() == []
    assert not any(node.tmp.iterdir()) if node.tmp.exists() else True
    with pytest.raises(IntegrityError, match=check):
        verify(origin, "demo", "1", _trust(tmp_path))


def _insert_signed(store: LocalStore, tmp_path: Path, doc: dict[str, object], version: str) -> None:
    """Put a hand-made manifest, signed by the trusted key, straight into a store."""
    body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    signature = Signer.from_file(tmp_path / "keys" / "release.key").sign(body)
    db = sqlite3.connect(store.root / "index.db")
    with db:
        db.execute(
            "INSERT INTO manifests VALUES (?, ?, ?, ?, ?)",
            (digest_bytes(body), "demo", version, body, signature),
        )
        db.execute(
            "INSERT INTO versions VALUES (?, ?, ?, 0)", ("demo", version, digest_bytes(body))
        )
    db.close()


def test_blob_stored_under_a_wrong_digest_is_refused(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore]
) -> None:
    origin, node = stores
    keys = make_keys(tmp_path)
    manifest = publish(origin, tmp_path, keys, "1", {"edge": 1, "cloud": 2})
    edge, cloud = manifest.variant("edge"), manifest.variant("cloud")
    assert edge.size_bytes == cloud.size_bytes  # same shape: only the digest tells them apart
    target = origin.blob_path(edge.digest)
    target.chmod(0o644)
    target.write_bytes(origin.blob_path(cloud.digest).read_bytes())
    with pytest.raises(IntegrityError, match="digest check failed") as info:
        pull(origin, "demo", "1", node, _trust(tmp_path))
    assert info.value.check == "digest"
    assert node.list_bundles() == []
    assert not node.has_blob("demo", edge.digest)


def test_signed_manifest_with_a_path_escape_is_refused(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore]
) -> None:
    origin, node = stores
    keys = make_keys(tmp_path)
    manifest = publish(origin, tmp_path, keys, "1", {"edge": 1})
    doc = orjson.loads(manifest.canonical_bytes())
    doc["version"] = "2"
    doc["variants"][0]["path"] = "../../../etc/cron.d/evil"
    _insert_signed(origin, tmp_path, doc, "2")
    with pytest.raises(BundleError, match=r"manifest check failed at variants\.0\.path"):
        pull(origin, "demo", "2", node, _trust(tmp_path))
    assert node.list_bundles() == []


def test_unsigned_and_foreign_bundles_are_refused(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore]
) -> None:
    origin, node = stores
    keys = make_keys(tmp_path)
    folder, manifest = make_bundle(tmp_path, "1", {"edge": 1})
    bundle = read_bundle_dir(folder)
    for variant in manifest.variants:
        origin.put_blob("demo", variant.digest, variant.size_bytes, bundle.blob(variant.digest))
    origin.put_manifest(
        StoredBundle("demo", "1", manifest.digest, bundle.manifest_bytes, None), tags=[]
    )
    with pytest.raises(SignatureError, match="unsigned"):
        pull(origin, "demo", "1", node, TrustStore.from_paths([keys.public_path]))
    stranger = make_keys(tmp_path / "elsewhere", "stranger")
    publish(origin, tmp_path / "two", stranger, "2", {"edge": 4})
    with pytest.raises(SignatureError, match="not trusted"):
        pull(origin, "demo", "2", node, TrustStore.from_paths([keys.public_path]))
    assert node.list_bundles() == []


def test_opening_a_store_removes_partial_downloads(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    (store.tmp).mkdir(exist_ok=True)
    (store.tmp / "abc.partial").write_bytes(b"half")
    store.close()
    again = LocalStore(tmp_path / "s")
    assert again.removed_partials == 1
    assert not again.tmp.exists()


def test_opening_a_missing_store_to_read_makes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(BundleNotFoundError, match=r"^no store at .*missing \(create one with"):
        LocalStore(missing, create=False)
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleNotFoundError, match=r"no index\.db, so it is not a store"):
        LocalStore(empty, create=False)
    assert list(empty.iterdir()) == []
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(BundleNotFoundError, match="it is a file, not a store folder"):
        LocalStore(a_file, create=False)
    store = LocalStore(tmp_path / "made")  # writers make one
    store.close()
    assert LocalStore.missing(tmp_path / "made") is None


def test_a_store_in_use_keeps_its_partial_downloads(tmp_path: Path) -> None:
    first = LocalStore(tmp_path / "s")
    first.tmp.mkdir(exist_ok=True)
    (first.tmp / "abc.partial").write_bytes(b"being written by the first user")
    second = LocalStore(tmp_path / "s")  # another user while the first writes
    assert second.removed_partials == 0
    assert (first.tmp / "abc.partial").exists()
    with pytest.raises(RegistryError, match="in use by another process"):
        second.gc()
    second.close()
    report = first.gc()  # alone again
    assert report.removed_partials == 1
    first.close()


def test_pushing_again_with_a_new_key_replaces_the_signature(tmp_path: Path) -> None:
    origin = LocalStore(tmp_path / "origin")
    old = make_keys(tmp_path, "old")
    new = make_keys(tmp_path, "new")
    folder, _manifest = make_bundle(tmp_path, "1", {"edge": 1})
    push(read_bundle_dir(folder), origin, Signer.from_file(old.private_path))
    push(read_bundle_dir(folder), origin, Signer.from_file(new.private_path))
    pulled = pull(
        origin, "demo", "1", LocalStore(tmp_path / "node"), TrustStore.from_paths([new.public_path])
    )
    assert pulled.key_id == new.key_id


def test_a_version_pushed_under_a_tags_name_takes_the_name(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore]
) -> None:
    origin, _ = stores
    keys = make_keys(tmp_path)
    v1 = publish(origin, tmp_path, keys, "1", {"edge": 1})
    origin.set_tag("demo", "2", "1")  # a tag that looks like a version to come
    assert origin.resolve("demo", "2") == v1.digest
    v2 = publish(origin, tmp_path / "two", keys, "2", {"edge": 2})
    assert origin.resolve("demo", "2") == v2.digest
    assert {r.version: r.tags for r in origin.list_bundles("demo")} == {"1": [], "2": []}
    with pytest.raises(BundleExistsError, match="is a version"):
        origin.set_tag("demo", "1", "1")


def test_store_and_reference_mistakes_are_named(
    tmp_path: Path, stores: tuple[LocalStore, LocalStore]
) -> None:
    from tierwise.registry import open_store

    origin, _ = stores
    publish(origin, tmp_path, make_keys(tmp_path), "1", {"edge": 1})
    with pytest.raises(BundleNotFoundError, match=r"a bare NAME means NAME:latest"):
        origin.resolve("demo", "latest")
    with pytest.raises(BundleError, match=r"^tag: expected up to 128"):
        origin.set_tag("demo", "Bad Tag", "1")
    with pytest.raises(BundleError, match=r"oci://HOST"):
        open_store("http://registry.example/fleet")
