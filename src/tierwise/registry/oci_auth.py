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

__all__ = ["RegistryAuth", "parse_challenges"]

#: Largest token response read from a realm.
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
#: a scheme: a token at the start or after a comma, then a space and a parameter name
_SCHEME = re.compile(r"(?:^|,)\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s+(?=[A-Za-z_][A-Za-z0-9_-]*\s*=)")
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_RETRIED = "_tierwise_auth_retried"


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """Each challenge of a ``WWW-Authenticate`` header, as (scheme in lowercase,
    parameters), in order: a header may offer several (``Basic realm=..., Bearer ...``)."""
    starts = list(_SCHEME.finditer(header))
    out = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(header)
        params = {
            key.lower(): (quoted.replace('\\"', '"') if quoted else bare)
            for key, quoted, bare in _PARAM.findall(header, match.end(), end)
        }
        out.append((match.group(1).lower(), params))
    return out


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
        self.origin = _origin(f"{'http' if plain_http else 'https'}://{host}")
        self.basic = HTTPBasicAuth(username, password or "") if username is not None else None
        self.plain_http = plain_http
        self.timeout_s = timeout_s
        self.token: str | None = None
        self.bearer = False  # the registry asked for tokens: stop sending basic to it

    @property
    def has_credentials(self) -> bool:
        return self.basic is not None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if _origin(request.url or "") != self.origin:
            # credentials and tokens belong to this registry, over its own scheme: not to
            # another host, nor to plain HTTP on its host
            return request
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
        if _origin(request.url or "") != self.origin:
            # a host (or plain HTTP) a redirect led to: its challenge could name any
            # realm, and the credentials belong to this registry and the realm it names
            return response
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        params = next((p for scheme, p in challenges if scheme == "bearer"), None)
        if params is None:
            return response
        self.bearer = True
        try:
            token = self._fetch_token(params)
        except BaseException:
            response.close()
            raise
        self.token = token
        retry = request.copy()
        if not _rewind(request, retry):
            return response  # a body that cannot be sent twice: the caller sees the 401
        retry.headers["Authorization"] = f"Bearer {token}"
        # requests follows a redirect of the retried answer with the original request:
        # it must carry the token too, not the basic credentials
        request.headers["Authorization"] = f"Bearer {token}"
        setattr(retry, _RETRIED, True)
        response.close()
        connection = response.connection
        again: requests.Response = connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again

    def _fetch_token(self, params: dict[str, str]) -> str:
        realm = params.get("realm", "")
        scheme, hostname, port = _origin(realm)
        parts = urlsplit(realm)
        if scheme not in ("https", "http") or not hostname or port < 0 or parts.username:
            raise RegistryError(
                f"registry {self.host} asked for a token from a realm that is not an http(s) "
                f"URL of a host ({len(realm)} characters, starting {realm[:12]!r})"
            )
        where = f"token realm {scheme}://{hostname}:{port}{parts.path}"
        if scheme == "http" and not self.plain_http:
            raise RegistryError(
                f"registry {self.host} asked for a token from {where}, over plain HTTP; "
                "refusing to send credentials there (plain_http is off)"
            )
        query = {key: params[key] for key in ("service", "scope") if params.get(key)}
        try:
            answer = requests.get(
                realm, params=query, auth=self.basic, timeout=self.timeout_s, stream=True
            )
        except requests.RequestException as exc:
            raise RegistryUnavailableError(f"{where} did not answer: {exc}") from exc
        with answer:
            body = answer.raw.read(MAX_TOKEN_RESPONSE_BYTES + 1, decode_content=True)
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
        if not isinstance(token, str) or not token.isascii() or not token.isprintable() \
                or " " in token or not token:  # fmt: skip
            raise RegistryError(f"{where} answered without a usable 'token'")
        return token


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, lowercase host, port) of a URL, the port filled in from the scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: matches nothing
        return scheme, "", -1
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, (parts.hostname or "").lower(), port


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
