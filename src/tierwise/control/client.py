"""A small client of the control plane's API, for the CLI, tests and benchmarks."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote, urlencode

from tierwise.errors import ConfigError, RolloutError, TierError
from tierwise.http.client import HttpClient

__all__ = ["ControlClient", "refused"]


def refused(status_code: int, message: str) -> RolloutError:
    """The control plane's refusal as an error carrying its status and message."""
    error = RolloutError(message)
    error.status_code = status_code
    return error


class ControlClient:
    """Calls one control plane at ``url`` (``http(s)://HOST:PORT``) with ``token``."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("--control", "the control plane's http(s)://HOST:PORT", url)
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = HttpClient(timeout_s=timeout_s, ssl_context=ssl_context)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        """The JSON answer; RolloutError (carrying the status) with the control plane's
        error message."""
        params = {k: v for k, v in query.items() if v is not None}
        url = f"{self.url}{path}" + (f"?{urlencode(params)}" if params else "")
        try:
            response = self.client.request_sync(method, url, json=body, headers=self.headers)
        except TierError as exc:
            raise refused(
                503, f"the control plane at {self.url} did not answer: {exc.reason}"
            ) from exc
        try:
            doc = response.json() if response.content else {}
        except ValueError:
            doc = {"error": response.text[:500]}
        if response.status_code >= 400:
            message = doc.get("error") if isinstance(doc, dict) else None
            raise refused(response.status_code, str(message or response.text[:500]))
        return doc

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = self.call("POST", "/v1/rollouts", request)
        return doc

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.call("GET", f"/v1/rollouts/{quote(rollout_id, safe='')}")
        return doc

    def act(self, rollout_id: str, action: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else {}
        doc: dict[str, Any] = self.call(
            "POST", f"/v1/rollouts/{quote(rollout_id, safe='')}/{action}", body
        )
        return doc

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
