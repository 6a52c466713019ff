"""Desired state from a control plane: a URL the agent reads at every sync.

The document is the desired-state file's (:mod:`tierwise.agent.desired`): JSON or
YAML ``{ref: VERSION | TAG | sha256:...}``, or ``{refs: {BUNDLE: REF, ...}}`` for a node
that syncs several bundles. ``{node}`` in the URL becomes the node's name, so one service
can answer each node. The agent sends ``If-None-Match`` with the last ETag and keeps what it knows
when the answer is 304. A new desired state is written to the node's desired-state file
before the sync uses it, so the node keeps its target through restarts and outages;
when the control plane cannot be reached, or answers something unusable, the node keeps
the desired state it had and the status says what went wrong. The bearer token (from the
variable ``token_env`` names) goes only over HTTPS or to a loopback host. An https
control plane's certificate is checked against ``tls.ca`` (default: the system's trust
store), and ``tls.cert``/``tls.key`` prove the node to it (mutual TLS).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from tierwise.agent.desired import REFERENCE, DesiredState, parse_desired
from tierwise.agent.settings import ControlSettings
from tierwise.errors import AgentError, ConfigError, PayloadTooLargeError, TierError
from tierwise.http.client import HttpClient
from tierwise.security import client_context, is_loopback

__all__ = ["MAX_DESIRED_BYTES", "REFERENCE", "ControlPlane", "control_access", "parse_desired"]

#: Largest desired-state document read from the control plane.
MAX_DESIRED_BYTES = 64 * 1024


def control_access(
    settings: ControlSettings, url: str, field: str, env: Mapping[str, str]
) -> tuple[str | None, ssl.SSLContext | None]:
    """The bearer token (read from ``token_env``) and TLS context for calling ``url`` of
    the control plane; ConfigError naming ``field`` when a token would go over plain HTTP
    to another host than loopback, or TLS settings come with an http URL."""
    parts = urlsplit(url)
    token: str | None = None
    if settings.token_env is not None:
        token = env.get(settings.token_env)
        if not token:
            raise ConfigError(
                "control.token_env", f"a variable holding the token ({settings.token_env} "
                "is not set)",
            )  # fmt: skip
        if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
            raise ConfigError(field, "an https URL (or a loopback host) when a token is sent", url)
    context = None
    if settings.tls is not None:
        if parts.scheme != "https":
            raise ConfigError(field, "an https URL when control.tls is given", url)
        context = client_context(settings.tls, who=f"control plane {url}")
    return token, context


class ControlPlane:
    """Reads one node's desired state from ``settings.url``."""

    def __init__(self, settings: ControlSettings, node: str, env: Mapping[str, str]) -> None:
        self.url = settings.url.replace("{node}", quote(node, safe=""))
        self.timeout_s = settings.timeout_s
        self.token, context = control_access(settings, self.url, "control.url", env)
        self.etag: str | None = None
        self.last_fetch_s: float | None = None
        self.last_error: str | None = None
        self.client = HttpClient(
            timeout_s=self.timeout_s, max_response_bytes=MAX_DESIRED_BYTES, ssl_context=context
        )

    def fetch(self) -> DesiredState | None:
        """The desired state the control plane names now, or None when it answered 304
        (not changed since the last fetch). AgentError or ConfigError say what failed."""
        headers = {"Accept": "application/json, application/yaml"}
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            answer = self.client.request_sync("GET", self.url, headers=headers)
        except PayloadTooLargeError as exc:
            self.last_fetch_s = time.time()
            raise AgentError(
                f"control plane {self.url} sent more than {MAX_DESIRED_BYTES} bytes"
            ) from exc
        except TierError as exc:
            raise AgentError(f"control plane {self.url} did not answer: {exc.reason}") from exc
        self.last_fetch_s = time.time()
        if answer.status_code == 304:
            return None
        if answer.status_code != 200:
            raise AgentError(
                f"control plane {self.url} answered {answer.status_code}; expected 200 with "
                "{ref: VERSION | TAG | sha256:...} or {refs: {BUNDLE: REF, ...}}"
            )
        desired = parse_desired(answer.content, f"control plane {self.url}")
        self.etag = answer.headers.get("etag")
        return desired

    def close(self) -> None:
        self.client.close()
