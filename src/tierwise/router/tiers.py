"""Tiers the router can call: a model in this process, or any V2 HTTP endpoint.

``RemoteTier`` speaks the Open Inference Protocol to tierwise serve, Triton, KServe or
MLServer through :class:`~tierwise.http.client.HttpClient` (pooled keep-alive
connections by default), with a per-call timeout, an optional Authorization header, TLS
for ``https://`` endpoints (the server's certificate checked, a client certificate shown
where the context holds one) and the binary-tensor extension when the peer lists it.
"""

from __future__ import annotations

import abc
import ssl
import time

import orjson

from tierwise.errors import (
    ConfigError,
    PayloadTooLargeError,
    ProtocolError,
    TierError,
    TierRejectedError,
    TierTimeoutError,
    TierUnavailableError,
)
from tierwise.http.client import HttpClient
from tierwise.http.transport import HttpResponse, Transport
from tierwise.protocol import (
    HEADER_LENGTH_HEADER,
    InferRequest,
    InferResponse,
    ModelMetadata,
    TensorMetadata,
    decode_response,
    encode_request,
    parse_header_length,
)
from tierwise.router.bounded import bounded
from tierwise.runtime import Backend, Signature, TensorSpec
from tierwise.spec.tiers import TierKind

__all__ = ["LocalTier", "RemoteTier", "Tier"]


class Tier(abc.ABC):
    """One place a request can run. Override :meth:`infer` (and :meth:`close`;
    :meth:`model_signature` and :attr:`model_label` where the tier can say what it runs)."""

    def __init__(self, name: str, kind: TierKind, *, timeout_s: float = 5.0) -> None:
        if timeout_s <= 0:
            raise ConfigError("timeout_s", "> 0", timeout_s)
        self.name = name
        self.kind = kind
        self.timeout_s = timeout_s

    @property
    def remote(self) -> bool:
        return False

    @property
    def model_label(self) -> str:
        """How messages name the model this tier runs (the tier's name by default)."""
        return self.name

    @abc.abstractmethod
    async def infer(self, request: InferRequest, *, timeout_s: float) -> InferResponse:
        """Answer ``request`` within ``timeout_s`` or raise a TierError."""

    async def model_signature(self) -> Signature | None:
        """The inputs and outputs of the model this tier runs, for the router's start-up
        checks of each stage's score output; None when the tier cannot say (its answers
        are checked instead). Raises TierError when it cannot be asked now."""
        return None

    async def close(self) -> None:
        """Release connections or models (nothing by default)."""
        return None


class LocalTier(Tier):
    """A model run in this process (the device's own model).

    The time limit costs no timer when the model answers on the event loop's thread
    (nothing could interrupt it there); a model that waits on a worker thread is given up
    on after ``timeout_s`` with TierTimeoutError (see :mod:`tierwise.router.bounded`). The
    router awaits a plain LocalTier's backend itself when a request has no deadline.
    """

    def __init__(
        self, name: str, backend: Backend, *, kind: TierKind = "device", timeout_s: float = 5.0
    ) -> None:
        super().__init__(name, kind, timeout_s=timeout_s)
        self.backend = backend

    @property
    def model_label(self) -> str:
        path = getattr(self.backend, "path", None)
        return str(path) if path is not None else self.backend.name

    async def model_signature(self) -> Signature | None:
        return self.backend.signature if self.backend.loaded else None

    async def infer(self, request: InferRequest, *, timeout_s: float) -> InferResponse:
        call = self.backend.infer(request.inputs, request.requested_output_names())
        try:
            outputs = await bounded(call, timeout_s)
        except TimeoutError as exc:
            raise TierTimeoutError(tier=self.name, timeout_s=timeout_s) from exc
        return InferResponse(model_name=self.backend.name, outputs=outputs, id=request.id)

    async def close(self) -> None:
        await self.backend.unload()


class RemoteTier(Tier):
    """A V2 REST endpoint serving ``model`` (optionally pinned to ``version``).
    An ``https://`` endpoint is checked with ``ssl_context`` (the system's trust store
    by default; see :func:`tierwise.security.tls.client_context`) against ``server_name``
    when its certificate names it differently from the URL. ``transport`` replaces the
    client's pooled HTTP/1.1 transport (an ASGI app in process, for tests)."""

    def __init__(
        self,
        name: str,
        url: str,
        model: str,
        *,
        kind: TierKind = "cloud",
        version: str | None = None,
        timeout_s: float = 5.0,
        authorization: str | None = None,
        binary: bool | None = None,
        max_connections: int = 64,
        transport: Transport | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        super().__init__(name, kind, timeout_s=timeout_s)
        if not url.startswith(("http://", "https://")):
            raise ConfigError("url", "an http:// or https:// URL", url)
        if max_connections < 1:
            raise ConfigError("max_connections", ">= 1", max_connections)
        if (ssl_context is not None or server_name is not None) and not url.startswith("https://"):
            raise ConfigError("url", "an https:// URL (TLS settings were given)", url)
        self.url = url.rstrip("/")
        self.model = model
        self.version = version
        self._binary = binary  # None: use it when the peer lists binary_tensor_data
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        self._metadata_path = path
        self._infer_path = path + "/infer"
        self._authorization = authorization or None
        self._get_headers = {"authorization": authorization} if authorization else None
        self._client = HttpClient(
            self.url,
            name=name,
            transport=transport,
            max_connections=max_connections,
            ssl_context=ssl_context,
            server_name=server_name,
        )

    @property
    def remote(self) -> bool:
        return True

    @property
    def model_label(self) -> str:
        return self.model + (f" version {self.version}" if self.version else "")

    async def model_signature(self) -> Signature | None:
        """The model's V2 metadata (``GET /v2/models/{model}``) as a signature;
        TierUnavailableError when the endpoint cannot be reached or does not answer 200,
        TierError when its answer is not V2 model metadata."""
        path = self._metadata_path
        try:
            response = await self._client.request(
                "GET", path, headers=self._get_headers, timeout_s=self.timeout_s
            )
        except PayloadTooLargeError as exc:
            raise TierUnavailableError(f"GET {path}: {exc}", tier=self.name) from exc
        if response.status_code != 200:
            raise TierUnavailableError(f"GET {path}: HTTP {response.status_code}", tier=self.name)
        try:
            meta = ModelMetadata.from_dict(orjson.loads(response.content))
        except (ProtocolError, orjson.JSONDecodeError) as exc:
            raise TierError(f"GET {path}: not V2 model metadata: {exc}", tier=self.name) from exc

        def specs(tensors: list[TensorMetadata]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in tensors)

        return Signature(specs(meta.inputs), specs(meta.outputs))

    async def _peer_binary(self, timeout_s: float) -> bool:
        if self._binary is None:
            try:
                response = await self._client.request(
                    "GET", "/v2", headers=self._get_headers, timeout_s=timeout_s
                )
                doc = orjson.loads(response.content) if response.status_code == 200 else {}
                extensions = doc.get("extensions", []) if isinstance(doc, dict) else []
            except (TierError, PayloadTooLargeError, orjson.JSONDecodeError):
                return False  # ask again next time; JSON is always understood
            self._binary = "binary_tensor_data" in extensions
        return self._binary

    async def infer(self, request: InferRequest, *, timeout_s: float) -> InferResponse:
        deadline = time.monotonic() + timeout_s
        binary = await self._peer_binary(timeout_s)
        body, header_length = encode_request(request, binary=binary)
        headers = {"content-type": "application/octet-stream" if binary else "application/json"}
        if header_length is not None:
            headers[HEADER_LENGTH_HEADER] = str(header_length)
        if self._authorization is not None:
            headers["authorization"] = self._authorization
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            response = await self._client.request(
                "POST", self._infer_path, content=body, headers=headers, timeout_s=remaining
            )
        except TierTimeoutError as exc:  # its limit was what remained of timeout_s
            raise TierTimeoutError(tier=self.name, timeout_s=timeout_s) from exc
        except PayloadTooLargeError as exc:
            raise TierUnavailableError(f"unreadable response: {exc}", tier=self.name) from exc
        if response.status_code != 200:
            raise self._http_error(response, timeout_s)
        try:
            return decode_response(
                response.content,
                header_length=parse_header_length(response.headers.get(HEADER_LENGTH_HEADER)),
            )
        except ProtocolError as exc:
            raise TierError(f"unreadable response: {exc}", tier=self.name) from exc

    def _http_error(self, response: HttpResponse, timeout_s: float) -> TierError:
        if response.status_code == 408:  # the deadline passed on passed before it ran
            return TierTimeoutError(tier=self.name, timeout_s=timeout_s)
        try:
            message = str(orjson.loads(response.content).get("error", ""))
        except (orjson.JSONDecodeError, AttributeError):
            message = response.content[:200].decode("utf-8", "replace")
        reason = f"HTTP {response.status_code}: {message}".rstrip(": ")
        if response.status_code == 429 or response.status_code >= 500:
            return TierUnavailableError(reason, tier=self.name)
        return TierRejectedError(reason, tier=self.name, status_code=response.status_code)

    async def close(self) -> None:
        await self._client.aclose()
