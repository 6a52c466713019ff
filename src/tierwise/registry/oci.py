"""Bundles as OCI artifacts in any OCI distribution registry.

A bundle version is one OCI image manifest in the repository ``<prefix>/<bundle name>``,
tagged with the version (and with movable tags such as ``stable``)::

    config   application/vnd.tierwise.bundle.manifest.v1+json   the tierwise manifest bytes
    layers   application/vnd.tierwise.model.v1+onnx               one per distinct model blob
             application/vnd.tierwise.reference.v1+json          a variant's drift reference
             application/vnd.tierwise.bundle.signature.v1+json  the signature document

The registry's own digests are checked both ways: what it answers to an upload
(``Docker-Content-Digest``) must be the digest sent, and every manifest and blob fetched
must hash to the digest it was fetched by. oras-py parses references and builds the
registry URLs; transfers stream through one pooled HTTP session with a timeout and no
silent retries, so a dropped connection is reported at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import requests

from tierwise.errors import (
    BundleError,
    BundleExistsError,
    BundleNotFoundError,
    IntegrityError,
    RegistryUnavailableError,
)
from tierwise.registry.digest import DIGEST_PATTERN, digest_bytes
from tierwise.registry.manifest import check_version, parse_manifest
from tierwise.registry.oci_http import MEDIA_OCI_MANIFEST, OciClient
from tierwise.registry.signing import MAX_SIGNATURE_BYTES
from tierwise.registry.store import BlobSink, BundleRow, BundleStore, StoredBundle, latest_hint

__all__ = [
    "MEDIA_BUNDLE",
    "MEDIA_MODEL",
    "MEDIA_OCI_MANIFEST",
    "MEDIA_REFERENCE",
    "MEDIA_SIGNATURE",
    "OciStore",
]

MEDIA_BUNDLE = "application/vnd.tierwise.bundle.manifest.v1+json"
MEDIA_MODEL = "application/vnd.tierwise.model.v1+onnx"
MEDIA_REFERENCE = "application/vnd.tierwise.reference.v1+json"
MEDIA_SIGNATURE = "application/vnd.tierwise.bundle.signature.v1+json"
_CHUNK = 1024 * 1024
_DIGEST_TAG_PREFIX = "sha256-"


def _digest_tag(digest: str) -> str:
    """The tag under which a bundle's manifest digest is pushed (tags cannot hold ':')."""
    return _DIGEST_TAG_PREFIX + digest.removeprefix("sha256:")


class OciStore(OciClient, BundleStore):
    """Bundles in an OCI registry (see :class:`OciClient` for the address and auth)."""

    @staticmethod
    def _parse_oci(body: bytes, name: str) -> dict[str, Any]:
        """An OCI manifest of a tierwise bundle, its fields checked before any is used."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BundleError("the OCI manifest is not valid JSON", bundle=name) from exc
        config = doc.get("config") if isinstance(doc, dict) else None
        if not isinstance(config, dict) or config.get("mediaType") != MEDIA_BUNDLE:
            kind = config.get("mediaType") if isinstance(config, dict) else None
            raise BundleError(
                f"the OCI manifest's config is {kind!r}, expected {MEDIA_BUNDLE} "
                "(not a tierwise bundle)",
                bundle=name,
            )
        layers = doc.get("layers", [])
        notes = doc.get("annotations", {})
        descriptors = [config, *layers] if isinstance(layers, list) else None
        if (
            descriptors is None
            or not isinstance(notes, dict)
            or not all(
                isinstance(d, dict)
                and isinstance(d.get("mediaType"), str)
                and isinstance(d.get("digest"), str)
                and DIGEST_PATTERN.match(d["digest"])
                and type(d.get("size")) is int
                and d["size"] >= 0
                and isinstance(d.get("annotations", {}), dict)
                for d in descriptors
            )
        ):
            raise BundleError(
                "the OCI manifest is malformed: expected descriptors with a mediaType, a "
                "sha256 digest and a size",
                bundle=name,
            )
        return dict(doc)

    def resolve(self, name: str, reference: str) -> str:
        """A version, a tag, the bundle's (tierwise manifest) digest, or an OCI manifest
        digest -> the OCI manifest digest to fetch."""
        if self.is_digest(reference):
            try:
                return self._oci_manifest(name, _digest_tag(reference))[1]
            except BundleNotFoundError:
                pass  # not a bundle digest this store knows: an OCI manifest digest, then
        try:
            return self._oci_manifest(name, reference)[1]
        except BundleNotFoundError as exc:
            hint = latest_hint(reference)
            if not hint:
                raise
            raise BundleNotFoundError(f"{exc.reason}{hint}", bundle=name) from exc

    def get_manifest(self, name: str, digest: str, *, limit_bytes: int) -> StoredBundle:
        body, _ = self._oci_manifest(name, digest)
        doc = self._parse_oci(body, name)
        config = doc["config"]
        if int(config.get("size", 0)) > limit_bytes:
            raise IntegrityError(
                "manifest-size", f"{config['size']} bytes, the limit is {limit_bytes}", bundle=name
            )
        manifest_bytes = self._small_blob(name, str(config["digest"]), limit_bytes)
        signature = None
        for layer in doc.get("layers", []):
            if layer.get("mediaType") == MEDIA_SIGNATURE:
                signature = self._small_blob(name, str(layer["digest"]), MAX_SIGNATURE_BYTES)
        version = str(doc.get("annotations", {}).get("io.tierwise.bundle.version", ""))
        return StoredBundle(name, version, digest_bytes(manifest_bytes), manifest_bytes, signature)

    def has_blob(self, name: str, digest: str) -> bool:
        response = self._request("HEAD", self._container(name).get_blob_url(digest))
        return response.status_code == 200

    def read_blob(self, name: str, digest: str, size_bytes: int, sink: BlobSink) -> None:
        url = self._container(name).get_blob_url(digest)
        response = self._request("GET", url, stream=True)
        received = 0
        with response:
            if response.status_code != 200:
                raise self._fail(response, f"blob {digest}", name)
            said = response.headers.get("Docker-Content-Digest")
            if said is not None and said != digest:
                raise IntegrityError(
                    "registry-digest", f"asked for blob {digest}, the registry sent {said}",
                    bundle=name,
                )  # fmt: skip
            try:
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    sink.write(chunk)
            except requests.RequestException as exc:
                raise RegistryUnavailableError(
                    f"connection dropped after {received} of {size_bytes} bytes of blob {digest}",
                    bundle=name,
                ) from exc
        if received < size_bytes:
            raise RegistryUnavailableError(
                f"connection dropped after {received} of {size_bytes} bytes of blob {digest}",
                bundle=name,
            )

    def put_blob(self, name: str, digest: str, size_bytes: int, path: Path) -> bool:
        if self.has_blob(name, digest):
            return False
        with path.open("rb") as f:
            self._upload(name, digest, size_bytes, f)
        return True

    def _put_small(self, name: str, data: bytes) -> dict[str, Any]:
        digest = digest_bytes(data)
        if not self.has_blob(name, digest):
            self._upload(name, digest, len(data), data)
        return {"digest": digest, "size": len(data)}

    def _existing(self, name: str, tag: str) -> dict[str, Any] | None:
        try:
            body, _ = self._oci_manifest(name, tag)
        except BundleNotFoundError:
            return None
        return self._parse_oci(body, name)

    def put_manifest(
        self, bundle: StoredBundle, *, tags: list[str], required: list[str] | None = None
    ) -> None:
        manifest = parse_manifest(bundle.manifest_bytes)
        name = bundle.name
        config = {"mediaType": MEDIA_BUNDLE, **self._put_small(name, bundle.manifest_bytes)}
        existing = self._existing(name, bundle.version)
        if existing is not None and _version_of(existing) != bundle.version:
            existing = None  # a tag with the version's name: the version's push replaces it
        if existing is not None and existing["config"]["digest"] != config["digest"]:
            raise BundleExistsError(
                f"version {bundle.version} already exists in {self.location} with manifest "
                f"{existing['config']['digest']}; versions are immutable, push a new version",
                bundle=name,
            )
        layers: list[dict[str, Any]] = []
        for variant in manifest.variants:
            if any(layer["digest"] == variant.digest for layer in layers):
                continue
            layers.append({
                "mediaType": MEDIA_MODEL,
                "digest": variant.digest,
                "size": variant.size_bytes,
                "annotations": {
                    "org.opencontainers.image.title": variant.path,
                    "io.tierwise.variant": variant.name,
                },
            })  # fmt: skip
        for variant in manifest.variants:
            ref = variant.reference
            if ref is None or any(layer["digest"] == ref.digest for layer in layers):
                continue
            layers.append({
                "mediaType": MEDIA_REFERENCE,
                "digest": ref.digest,
                "size": ref.size_bytes,
                "annotations": {"io.tierwise.variant": variant.name},
            })  # fmt: skip
        if bundle.signature:
            layers.append({"mediaType": MEDIA_SIGNATURE, **self._put_small(name, bundle.signature)})
        oci = {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": config,
            "layers": layers,
            "annotations": {
                "io.tierwise.bundle.name": name,
                "io.tierwise.bundle.version": bundle.version,
                "org.opencontainers.image.created": manifest.created_at,
            },
        }
        body = orjson.dumps(oci, option=orjson.OPT_SORT_KEYS)
        # the same content again (perhaps signed by a new key) replaces the manifest; the
        # alias tag lets a node pin the bundle by the digest tierwise shows everywhere
        self._put_manifest_bytes(name, bundle.version, body)
        self._put_manifest_bytes(name, _digest_tag(bundle.digest), body)
        for tag in tags:
            if tag != bundle.version:
                self.set_tag(name, tag, bundle.version)

    def set_tag(self, name: str, tag: str, version: str) -> None:
        check_version(tag, "tag")
        if tag == version:
            raise BundleExistsError(
                f"{tag!r} is a version; a tag cannot take a version's name", bundle=name
            )
        body, _ = self._oci_manifest(name, version)
        current = self._existing(name, tag)
        if current is not None and _version_of(current) == tag:
            raise BundleExistsError(
                f"{tag!r} is a version; a tag cannot take a version's name", bundle=name
            )
        self._put_manifest_bytes(name, tag, body)

    def list_bundles(self, name: str | None = None) -> list[BundleRow]:
        if name is not None:
            names = [name]
        else:
            response = self._request("GET", f"{self.host}/v2/_catalog?n=1000")
            if response.status_code != 200:
                raise self._fail(response, "catalog", "*")
            prefix = f"{self.prefix}/" if self.prefix else ""
            names = [
                repo[len(prefix):]
                for repo in response.json().get("repositories") or []
                if repo.startswith(prefix)
            ]  # fmt: skip
        rows: list[BundleRow] = []
        for bundle in names:
            response = self._request("GET", self._container(bundle).tags_url())
            if response.status_code == 404:
                continue
            if response.status_code != 200:
                raise self._fail(response, "tags", bundle)
            by_version: dict[str, BundleRow] = {}
            pointers: list[tuple[str, str]] = []
            for tag in sorted(response.json().get("tags") or []):
                if tag.startswith(_DIGEST_TAG_PREFIX):
                    continue
                doc = self._existing(bundle, tag)
                if doc is None:
                    continue
                notes = doc.get("annotations", {})
                version = notes.get("io.tierwise.bundle.version", tag)
                if version != tag:
                    pointers.append((tag, version))
                    continue
                models = [la for la in doc["layers"] if la["mediaType"] == MEDIA_MODEL]
                by_version[version] = BundleRow(
                    name=bundle,
                    version=version,
                    digest=doc["config"]["digest"],
                    size_bytes=sum(int(la["size"]) for la in models),
                    created_at=notes.get("org.opencontainers.image.created", ""),
                    variants=[
                        str(la.get("annotations", {}).get("io.tierwise.variant", "?"))
                        for la in models
                    ],
                )
            for tag, version in pointers:
                if version in by_version:
                    by_version[version].tags.append(tag)
            rows.extend(sorted(by_version.values(), key=lambda r: r.created_at))
        return rows

    def close(self) -> None:
        self.session.close()


def _version_of(oci_manifest: dict[str, Any]) -> str | None:
    """The bundle version an OCI manifest carries (its tierwise annotation)."""
    annotations = oci_manifest.get("annotations")
    if not isinstance(annotations, dict):
        return None
    version = annotations.get("io.tierwise.bundle.version")
    return version if isinstance(version, str) else None
