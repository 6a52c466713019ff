"""Bundles as OCI artifacts in a real registry (CNCF distribution) on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from registry_helpers import OciRegistry, TcpProxy, make_bundle, make_keys, oci_registry, publish
from tierwise.errors import (
    BundleExistsError,
    BundleNotFoundError,
    IntegrityError,
    RegistryError,
    RegistryUnavailableError,
)
from tierwise.registry import (
    MEDIA_BUNDLE,
    MEDIA_MODEL,
    MEDIA_SIGNATURE,
    LocalStore,
    OciStore,
    Signer,
    TrustStore,
    pull,
    push,
    read_bundle_dir,
    verify,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    with oci_registry(tmp_path_factory.mktemp("oci")) as running:
        yield running


def _store(registry: OciRegistry, prefix: str, host: str | None = None) -> OciStore:
    return OciStore(f"oci://{host or registry.host}/{prefix}", plain_http=True, timeout_s=10)


def _trust(tmp_path: Path) -> TrustStore:
    return TrustStore.from_paths([tmp_path / "keys"])


def test_oci_round_trip(registry: OciRegistry, tmp_path: Path) -> None:
    store = _store(registry, "round")
    keys = make_keys(tmp_path)
    m1 = publish(store, tmp_path, keys, "1", {"edge": 1, "cloud": 2}, tags=["stable"])
    m2 = publish(store, tmp_path, keys, "2", {"edge": 3, "cloud": 2}, tags=["canary"])

    # what the registry holds is a plain OCI artifact with tierwise media types
    raw = httpx.get(
        f"http://{registry.host}/v2/round/demo/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    doc = raw.json()
    assert raw.headers["Docker-Content-Digest"].startswith("sha256:")
    assert doc["config"]["mediaType"] == MEDIA_BUNDLE
    assert doc["config"]["digest"] == m1.digest
    kinds = sorted(layer["mediaType"] for layer in doc["layers"])
    assert kinds == sorted([MEDIA_MODEL, MEDIA_MODEL, MEDIA_SIGNATURE])

    rows = {r.version: r for r in store.list_bundles("demo")}
    assert set(rows) == {"1", "2"}
    assert rows["1"].tags == ["stable"]
    assert rows["2"].tags == ["canary"]
    assert rows["1"].digest == m1.digest

    node = LocalStore(tmp_path / "node")
    report = pull(store, "demo", "stable", node, _trust(tmp_path))
    assert report.digest == m1.digest
    assert len(report.fetched) == 2
    # pulling by the OCI digest the tag points at gives the same bundle
    by_digest = pull(store, "demo", store.resolve("demo", "canary"), node, _trust(tmp_path))
    assert by_digest.digest == m2.digest
    assert by_digest.fetched == [m2.variant("edge").digest]  # the cloud blob is shared
    assert verify(store, "demo", "2", _trust(tmp_path)).blobs == 2
    assert verify(node, "demo", "2", _trust(tmp_path)).blobs == 2

    # the digest tierwise shows everywhere pins the version too
    pinned = pull(store, "demo", m1.digest, node, _trust(tmp_path))
    assert (pinned.digest, pinned.manifest.version) == (m1.digest, "1")
    store.set_tag("demo", "stable", "2")
    assert pull(store, "demo", "stable", node, _trust(tmp_path)).digest == m2.digest
    with pytest.raises(BundleExistsError, match="is a version"):
        store.set_tag("demo", "1", "2")
    with pytest.raises(BundleNotFoundError):
        store.resolve("demo", "9")
    assert any(
        r.name == "round/demo" or r.name == "demo" for r in _store(registry, "round").list_bundles()
    )


def test_oci_versions_are_immutable_and_push_skips_known_blobs(
    registry: OciRegistry, tmp_path: Path
) -> None:
    store = _store(registry, "immutable")
    keys = make_keys(tmp_path)
    signer = Signer.from_file(keys.private_path)
    b1, _ = make_bundle(tmp_path, "1", {"tiny": 1, "small": 2, "large": 3})
    b2, m2 = make_bundle(tmp_path, "2", {"tiny": 1, "small": 9, "large": 3})
    assert len(push(read_bundle_dir(b1), store, signer).uploaded) == 3
    again = push(read_bundle_dir(b1), store, signer)
    assert again.uploaded == []
    assert len(again.skipped) == 3
    second = push(read_bundle_dir(b2), store, signer)
    assert second.uploaded == [m2.variant("small").digest]
    assert second.uploaded_bytes == m2.variant("small").size_bytes
    changed, _ = make_bundle(tmp_path / "changed", "1", {"tiny": 5, "small": 2, "large": 3})
    with pytest.raises(BundleExistsError, match="versions are immutable"):
        push(read_bundle_dir(changed), store, signer)


def test_blob_tampered_inside_the_registry_is_refused(
    registry: OciRegistry, tmp_path: Path
) -> None:
    store = _store(registry, "tamper")
    keys = make_keys(tmp_path)
    manifest = publish(store, tmp_path, keys, "1", {"edge": 11})
    digest = manifest.variant("edge").digest
    data = registry.blob_file(digest)
    content = bytearray(data.read_bytes())
    content[100] ^= 0x10
    data.write_bytes(bytes(content))
    node = LocalStore(tmp_path / "node")
    with pytest.raises(IntegrityError, match="digest check failed"):
        pull(store, "demo", "1", node, _trust(tmp_path))
    assert node.list_bundles() == []
    assert not node.has_blob("demo", digest)


def test_manifest_tampered_inside_the_registry_is_refused(
    registry: OciRegistry, tmp_path: Path
) -> None:
    store = _store(registry, "manifest-tamper")
    keys = make_keys(tmp_path)
    manifest = publish(store, tmp_path, keys, "1", {"edge": 12})
    data = registry.blob_file(manifest.digest)  # the tierwise manifest is the config blob
    doc = orjson.loads(data.read_bytes())
    doc["description"] = "changed after signing"
    data.write_bytes(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
    with pytest.raises(IntegrityError, match="registry-digest"):
        pull(store, "demo", "1", LocalStore(tmp_path / "node"), _trust(tmp_path))


def test_dropped_connection_mid_pull(registry: OciRegistry, tmp_path: Path) -> None:
    store = _store(registry, "drop")
    keys = make_keys(tmp_path)
    manifest = publish(store, tmp_path, keys, "1", {"edge": 13}, width=256)
    proxy = TcpProxy(registry.port, drop_after_bytes=200_000)
    node = LocalStore(tmp_path / "node")
    try:
        flaky = _store(registry, "drop", host=proxy.host)
        with pytest.raises(RegistryUnavailableError, match="connection dropped"):
            pull(flaky, "demo", "1", node, _trust(tmp_path))
    finally:
        proxy.close()
    assert proxy.dropped >= 1
    assert node.list_bundles() == []
    assert not node.has_blob("demo", manifest.variant("edge").digest)
    assert not node.tmp.exists() or not any(node.tmp.iterdir())
    # the registry is fine; a direct pull then works
    assert pull(store, "demo", "1", node, _trust(tmp_path)).digest == manifest.digest


def test_kill_9_during_pull_leaves_nothing_half_installed(
    registry: OciRegistry, tmp_path: Path
) -> None:
    store = _store(registry, "kill")
    keys = make_keys(tmp_path)
    manifest = publish(store, tmp_path, keys, "1", {"edge": 14}, width=512)
    proxy = TcpProxy(registry.port, rate_bytes_per_s=300_000)
    into = tmp_path / "node"
    cmd = [
        sys.executable, "-m", "tierwise", "registry", "pull", "demo:1",
        "--store", f"oci://{proxy.host}/kill", "--plain-http", "--into", str(into),
        "--trusted-keys", str(keys.public_path),
    ]  # fmt: skip
    log = tmp_path / "pull.log"
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (into / "tmp").exists() or not any(
            p.stat().st_size > 0 for p in (into / "tmp").iterdir()
        ):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the pull never started writing"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        proxy.close()
        if process.poll() is None:
            process.kill()
    partial = list((into / "tmp").iterdir())
    assert partial
    assert all(p.suffix == ".partial" for p in partial)
    node = LocalStore(into)
    assert node.removed_partials == len(partial)
    assert node.list_bundles() == []
    assert not node.has_blob("demo", manifest.variant("edge").digest)
    report = pull(store, "demo", "1", node, _trust(tmp_path))
    assert report.digest == manifest.digest
    assert (
        verify(node, "demo", "1", _trust(tmp_path)).checked_bytes == manifest.variants[0].size_bytes
    )


def test_oversized_manifest_is_refused_before_it_is_read(
    registry: OciRegistry, tmp_path: Path
) -> None:
    store = _store(registry, "oversized")
    keys = make_keys(tmp_path)
    publish(store, tmp_path, keys, "1", {"edge": 15})
    node = LocalStore(tmp_path / "node")
    with pytest.raises(IntegrityError, match="manifest-size check failed") as info:
        pull(store, "demo", "1", node, _trust(tmp_path), limit_bytes=256)
    assert info.value.check == "manifest-size"
    assert node.list_bundles() == []


def test_pushing_again_with_a_new_key_replaces_the_signature(
    registry: OciRegistry, tmp_path: Path
) -> None:
    store = _store(registry, "rotate")
    old = make_keys(tmp_path, "old")
    new = make_keys(tmp_path, "new")
    folder, manifest = make_bundle(tmp_path, "1", {"edge": 16})
    push(read_bundle_dir(folder), store, Signer.from_file(old.private_path))
    report = push(read_bundle_dir(folder), store, Signer.from_file(new.private_path))
    assert report.key_id == new.key_id
    node = LocalStore(tmp_path / "node")
    pulled = pull(store, "demo", "1", node, TrustStore.from_paths([new.public_path]))
    assert (pulled.key_id, pulled.digest) == (new.key_id, manifest.digest)


def test_a_registry_with_basic_auth(tmp_path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    keys = make_keys(tmp_path)
    with oci_registry(tmp_path, htpasswd=f"fleet:{hashed}\n") as locked:
        url = locked.url("private")
        store = OciStore(url, plain_http=True, username="fleet", password="s3cret")
        manifest = publish(store, tmp_path, keys, "1", {"edge": 17})
        node = LocalStore(tmp_path / "node")
        assert pull(store, "demo", "1", node, _trust(tmp_path)).digest == manifest.digest
        anonymous = OciStore(url, plain_http=True)
        with pytest.raises(RegistryError, match="it needs credentials"):
            anonymous.resolve("demo", "1")
        wrong = OciStore(url, plain_http=True, username="fleet", password="guess")
        with pytest.raises(RegistryError, match="credentials given were refused"):
            wrong.resolve("demo", "1")


def test_oci_a_version_pushed_under_a_tags_name_takes_the_name(
    registry: OciRegistry, tmp_path: Path
) -> None:
    store = _store(registry, "shadow")
    keys = make_keys(tmp_path)
    publish(store, tmp_path, keys, "1", {"edge": 1})
    store.set_tag("demo", "2", "1")
    v2 = publish(store, tmp_path / "two", keys, "2", {"edge": 2})
    node = LocalStore(tmp_path / "node")
    assert pull(store, "demo", "2", node, _trust(tmp_path)).digest == v2.digest
    with pytest.raises(BundleExistsError, match="is a version"):
        store.set_tag("demo", "1", "1")
