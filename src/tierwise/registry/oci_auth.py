"""Registry authentication: HTTP basic, and the bearer-token flow of the distribution
token spec that Docker Hub, GHCR, Harbor, Quay and ECR use.

The registry answers 401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``;
the client asks the realm for a token (with its basic credentials, or anonymously for
public repositories), then sends the request again with ``Authorization: Bearer``. A
token is reused until the registry refuses it (expired, or a scope it does not cover),
which starts the flow again. Basic credentials go only to the registry's own host and to
the token realm it names, never over plain HTTP unless the client itself was told to use
plain HTTP; tokens never appear in errors or logs.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from tierwise.errors import RegistryError, RegistryUnavailableError

__all__ = ["RegistryAuth", "parse_challenge"]

#: Largest token response read from a realm.
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_RETRIED = "_tierwise_auth_retried"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """The scheme (lowercase) and parameters of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        key.lower(): (quoted.replace('\\"', '"') if quoted is not None else bare)
        for key, quoted, bare in _PARAM.findall(rest)
    }
    return scheme.lower(), params


class RegistryAuth(AuthBase):
    """A requests auth hook for one registry host: basic credentials sent up front when
    given, bearer tokens fetched when the registry asks for them."""

    def __init__(
        self,
        host: str,
        *,
        username: str | None = None,
        password: str | None = None,
        plain_http: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        self.host = host
        self.basic = HTTPBasicAuth(username, password or "") if username is not None else None
        self.plain_http = plain_http
        self.timeout_s = timeout_s
        self.token: str | None = None
        self.bearer = False  # the registry asked for tokens: stop sending basic to it

    @property
    def has_credentials(self) -> bool:
        return self.basic is not None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if urlsplit(request.url or "").netloc != self.host:
            return request  # credentials and tokens belong to this registry only
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token}"
        elif self.basic is not None and not self.bearer:
            self.basic(request)
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if response.status_code != 401 or getattr(request, _RETRIED, False):
            return response
        if urlsplit(request.url or "").netloc != self.host:
            # a host a redirect led to: its challenge could name any realm, and the
            # credentials belong to this registry and the realm it names
            return response
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme != "bearer":
            return response
        self.bearer = True
        self.token = self._fetch_token(params)
        retry = request.copy()
        if not _rewind(request, retry):
            return response  # a body that cannot be sent twice: the caller sees the 401
        retry.headers["Authorization"] = f"Bearer {self.token}"
        setattr(retry, _RETRIED, True)
        response.close()
        connection = response.connection
        again: requests.Response = connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again

    def _fetch_token(self, params: dict[str, str]) -> str:
        realm = params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise RegistryError(
                f"registry {self.host} asked for a token from realm {realm!r}, which is not "
                "an http(s) URL"
            )
        if parts.scheme == "http" and not self.plain_http:
            raise RegistryError(
                f"registry {self.host} asked for a token from {realm}, over plain HTTP; "
                "refusing to send credentials there (plain_http is off)"
            )
        query = {key: params[key] for key in ("service", "scope") if params.get(key)}
        try:
            answer = requests.get(
                realm, params=query, auth=self.basic, timeout=self.timeout_s, stream=True
            )
        except requests.RequestException as exc:
            raise RegistryUnavailableError(
                f"token realm {parts.scheme}://{parts.netloc}{parts.path} did not answer: {exc}"
            ) from exc
        with answer:
            body = answer.raw.read(MAX_TOKEN_RESPONSE_BYTES + 1, decode_content=True)
        where = f"token realm {parts.scheme}://{parts.netloc}{parts.path}"
        if answer.status_code in (401, 403):
            given = (
                "the credentials given were refused"
                if self.basic is not None
                else "it needs credentials (--username, and the password in the variable "
                "--password-env names)"
            )
            raise RegistryError(f"{where} answered {answer.status_code}: {given}")
        if answer.status_code != 200:
            raise RegistryUnavailableError(f"{where} answered {answer.status_code}")
        if len(body) > MAX_TOKEN_RESPONSE_BYTES:
            raise RegistryError(f"{where} sent more than {MAX_TOKEN_RESPONSE_BYTES} bytes")
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise RegistryError(f"{where} did not answer JSON") from exc
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n "):
            raise RegistryError(f"{where} answered without a usable 'token'")
        return token


def _rewind(original: requests.PreparedRequest, retry: requests.PreparedRequest) -> bool:
    """Make ``retry``'s body readable from the start; False when it cannot be."""
    body = original.body
    if body is None or isinstance(body, bytes | str):
        return True
    seek = getattr(body, "seek", None)
    if seek is None:
        return False
    seek(0)
    retry.body = body
    return True
