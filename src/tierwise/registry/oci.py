"""Bundles as OCI artifacts in any OCI distribution registry.

A bundle version is one OCI image manifest in the repository ``<prefix>/<bundle name>``,
tagged with the version (and with movable tags such as ``stable``)::

    config   application/vnd.tierwise.bundle.manifest.v1+json   the tierwise manifest bytes
    layers   application/vnd.tierwise.model.v1+onnx               one per distinct model blob
             application/vnd.tierwise.bundle.signature.v1+json  the signature document

The registry's own digests are checked both ways: what it answers to an upload
(``Docker-Content-Digest``) must be the digest sent, and every manifest and blob fetched
must hash to the digest it was fetched by. oras-py parses references and builds the
registry URLs; transfers stream through one pooled HTTP session with a timeout and no
silent retries, so a dropped connection is reported at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import requests
from oras.container import Container

from tierwise.errors import (
    BundleError,
    BundleExistsError,
    BundleNotFoundError,
    IntegrityError,
    RegistryError,
    RegistryUnavailableError,
)
from tierwise.registry.digest import digest_bytes
from tierwise.registry.manifest import check_version, parse_manifest
from tierwise.registry.signing import MAX_SIGNATURE_BYTES
from tierwise.registry.store import BlobSink, BundleRow, BundleStore, StoredBundle

__all__ = [
    "MEDIA_BUNDLE",
    "MEDIA_MODEL",
    "MEDIA_OCI_MANIFEST",
    "MEDIA_SIGNATURE",
    "OciStore",
]

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_BUNDLE = "application/vnd.tierwise.bundle.manifest.v1+json"
MEDIA_MODEL = "application/vnd.tierwise.model.v1+onnx"
MEDIA_SIGNATURE = "application/vnd.tierwise.bundle.signature.v1+json"
_MAX_OCI_MANIFEST_BYTES = 4 * 1024 * 1024
_CHUNK = 1024 * 1024
_URL = re.compile(r"^oci://(?P<host>[A-Za-z0-9.-]+(?::\d{1,5})?)(?P<prefix>(?:/[a-z0-9._-]+)*)/?$")


class OciStore(BundleStore):
    """``oci://host[:port][/prefix]``; ``plain_http`` for a registry without TLS (loopback,
    tests). Basic auth when ``username`` is given."""

    def __init__(
        self,
        url: str,
        *,
        plain_http: bool = False,
        timeout_s: float = 30.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        match = _URL.match(url)
        if match is None:
            raise BundleError(f"registry {url!r}: expected oci://HOST[:PORT][/PREFIX]")
        self.location = url
        self.host = match["host"]
        self.prefix = match["prefix"].strip("/")
        self.scheme = "http" if plain_http else "https"
        self.timeout_s = timeout_s
        self.session = requests.Session()
        if username is not None:
            self.session.auth = (username, password or "")

    # -- HTTP --------------------------------------------------------------------------

    def _container(self, name: str) -> Container:
        repo = f"{self.prefix}/{name}" if self.prefix else name
        return Container(f"{self.host}/{repo}", registry=self.host)

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(
                method, f"{self.scheme}://{url}", timeout=self.timeout_s, **kwargs
            )
        except requests.RequestException as exc:
            raise RegistryUnavailableError(f"{method} {self.scheme}://{url} failed: {exc}") from exc

    def _fail(self, response: requests.Response, what: str, name: str) -> RegistryError:
        detail = response.text[:300]
        if response.status_code == 404:
            return BundleNotFoundError(f"{what} not found in {self.location}", bundle=name)
        if response.status_code >= 500:
            return RegistryUnavailableError(
                f"{what}: registry answered {response.status_code} {detail}", bundle=name
            )
        return RegistryError(
            f"{what}: registry answered {response.status_code} {detail}", bundle=name
        )

    def _get_limited(
        self, url: str, limit: int, *, accept: str | None, name: str
    ) -> tuple[bytes, requests.Response]:
        headers = {"Accept": accept} if accept else {}
        response = self._request("GET", url, headers=headers, stream=True)
        with response:
            if response.status_code != 200:
                raise self._fail(response, url.rsplit("/", 1)[-1], name)
            declared = int(response.headers.get("content-length") or 0)
            if declared > limit:
                raise IntegrityError(
                    "manifest-size", f"{declared} bytes, the limit is {limit}", bundle=name
                )
            body = bytearray()
            try:
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        raise IntegrityError(
                            "manifest-size", f"more than the limit of {limit} bytes", bundle=name
                        )
            except requests.RequestException as exc:
                raise RegistryUnavailableError(
                    f"connection dropped reading {url}", bundle=name
                ) from exc
        return bytes(body), response

    def _oci_manifest(self, name: str, reference: str) -> tuple[bytes, str]:
        url = self._container(name).manifest_url(reference)
        body, response = self._get_limited(
            url, _MAX_OCI_MANIFEST_BYTES, accept=MEDIA_OCI_MANIFEST, name=name
        )
        digest = digest_bytes(body)
        said = response.headers.get("Docker-Content-Digest")
        if said is not None and said != digest:
            raise IntegrityError(
                "registry-digest",
                f"the registry says manifest {reference} is {said}; its bytes hash to {digest}",
                bundle=name,
            )
        if self.is_digest(reference) and reference != digest:
            raise IntegrityError(
                "registry-digest",
                f"asked for manifest {reference}, got bytes hashing to {digest}",
                bundle=name,
            )
        return body, digest

    @staticmethod
    def _parse_oci(body: bytes, name: str) -> dict[str, Any]:
        try:
            doc = orjson.loads(body)
            if doc.get("config", {}).get("mediaType") != MEDIA_BUNDLE:
                raise BundleError(
                    f"the OCI manifest's config is {doc.get('config', {}).get('mediaType')!r}, "
                    f"expected {MEDIA_BUNDLE} (not a tierwise bundle)",
                    bundle=name,
                )
            return dict(doc)
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise BundleError("the OCI manifest is not valid JSON", bundle=name) from exc

    # -- reads -------------------------------------------------------------------------

    def resolve(self, name: str, reference: str) -> str:
        return self._oci_manifest(name, reference)[1]

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

    def _small_blob(self, name: str, digest: str, limit: int) -> bytes:
        body, _ = self._get_limited(
            self._container(name).get_blob_url(digest), limit, accept=None, name=name
        )
        if digest_bytes(body) != digest:
            raise IntegrityError(
                "registry-digest", f"blob {digest} hashes to {digest_bytes(body)}", bundle=name
            )
        return body

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

    # -- writes ------------------------------------------------------------------------

    def _upload(self, name: str, digest: str, size_bytes: int, body: Any) -> None:
        container = self._container(name)
        start = self._request("POST", container.upload_blob_url())
        if start.status_code != 202 or "Location" not in start.headers:
            raise self._fail(start, f"blob upload of {digest}", name)
        location = start.headers["Location"]
        if location.startswith("/"):
            location = f"{self.scheme}://{self.host}{location}"
        separator = "&" if "?" in location else "?"
        url = f"{location}{separator}digest={digest}"
        try:
            done = self.session.put(
                url,
                data=body,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(size_bytes)},
                timeout=self.timeout_s,
            )  # fmt: skip
        except requests.RequestException as exc:
            raise RegistryUnavailableError(f"upload of blob {digest} failed: {exc}") from exc
        if done.status_code != 201:
            raise self._fail(done, f"blob upload of {digest}", name)
        said = done.headers.get("Docker-Content-Digest")
        if said is not None and said != digest:
            raise IntegrityError(
                "registry-digest", f"uploaded {digest}, the registry stored {said}", bundle=name
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

    def _put_manifest_bytes(self, name: str, tag: str, body: bytes) -> None:
        url = self._container(name).manifest_url(tag)
        response = self._request(
            "PUT", url, data=body, headers={"Content-Type": MEDIA_OCI_MANIFEST}
        )
        if response.status_code != 201:
            raise self._fail(response, f"manifest {tag}", name)
        said = response.headers.get("Docker-Content-Digest")
        if said is not None and said != digest_bytes(body):
            raise IntegrityError(
                "registry-digest",
                f"pushed manifest {digest_bytes(body)}, the registry stored {said}",
                bundle=name,
            )

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
        if existing is None:
            self._put_manifest_bytes(name, bundle.version, body)
        for tag in tags:
            self.set_tag(name, tag, bundle.version)

    def set_tag(self, name: str, tag: str, version: str) -> None:
        check_version(tag)
        if tag == version:
            return
        body, _ = self._oci_manifest(name, version)
        current = self._existing(name, tag)
        if (
            current is not None
            and current.get("annotations", {}).get("io.tierwise.bundle.version") == tag
        ):
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
                    variants=[la["annotations"]["io.tierwise.variant"] for la in models],
                )
            for tag, version in pointers:
                if version in by_version:
                    by_version[version].tags.append(tag)
            rows.extend(sorted(by_version.values(), key=lambda r: r.created_at))
        return rows

    def close(self) -> None:
        self.session.close()
