"""HTTP to an OCI distribution registry: references and URLs (oras-py), one pooled
session with a timeout and no silent retries, reads bounded in size, and the registry's
own digests checked both ways."""

from __future__ import annotations

import re
from typing import Any

import requests
from oras.container import Container

from tierwise.errors import (
    BundleError,
    BundleNotFoundError,
    IntegrityError,
    RegistryError,
    RegistryUnavailableError,
)
from tierwise.registry.digest import DIGEST_PATTERN, digest_bytes
from tierwise.registry.oci_auth import RegistryAuth

__all__ = ["MEDIA_OCI_MANIFEST", "OciClient"]

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_MAX_OCI_MANIFEST_BYTES = 4 * 1024 * 1024
_URL = re.compile(r"^oci://(?P<host>[A-Za-z0-9.-]+(?::\d{1,5})?)(?P<prefix>(?:/[a-z0-9._-]+)*)/?$")


class OciClient:
    """``oci://host[:port][/prefix]``; ``plain_http`` for a registry without TLS (loopback,
    tests). Basic credentials when ``username`` is given; bearer tokens whenever the
    registry asks for them (:mod:`tierwise.registry.oci_auth`)."""

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
        self.auth = RegistryAuth(
            self.host, username=username, password=password, plain_http=plain_http,
            timeout_s=timeout_s,
        )  # fmt: skip
        self.session.auth = self.auth

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
        if response.status_code in (401, 403):
            given = (
                "the credentials given were refused"
                if self.auth.has_credentials
                else (
                    "it needs credentials (--username, and the password in the variable "
                    "--password-env names)"
                )
            )
            return RegistryError(
                f"{what}: {self.location} answered {response.status_code}: {given}", bundle=name
            )
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
        if DIGEST_PATTERN.match(reference) and reference != digest:
            raise IntegrityError(
                "registry-digest",
                f"asked for manifest {reference}, got bytes hashing to {digest}",
                bundle=name,
            )
        return body, digest

    def _small_blob(self, name: str, digest: str, limit: int) -> bytes:
        body, _ = self._get_limited(
            self._container(name).get_blob_url(digest), limit, accept=None, name=name
        )
        if digest_bytes(body) != digest:
            raise IntegrityError(
                "registry-digest", f"blob {digest} hashes to {digest_bytes(body)}", bundle=name
            )
        return body

    def _upload(self, name: str, digest: str, size_bytes: int, body: Any) -> None:
        container = self._container(name)
        start = self._request("POST", container.upload_blob_url())
        if start.status_code != 202 or "Location" not in start.headers:
            raise self._fail(start, f"blob upload of {digest}", name)
        location = start.headers["Location"]
        if location.startswith("/"):
            location = f"{self.scheme}://{self.host}{location}"
        # the session's auth sends credentials to this registry's host only, never to
        # another host an upload is sent to
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
