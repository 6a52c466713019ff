"""TLS for servers and for the clients that call them.

A server takes a certificate and key, and optionally ``client_ca``: then every client
must present a certificate that CA signed (mutual TLS). A client (a plan's remote tier)
verifies the server's certificate by default, against ``ca`` or else the system's trust
store, and may present its own ``cert``/``key``. ``insecure_skip_verify`` turns the
check off and is logged as a warning each time a context is made with it.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from tierwise.errors import ConfigError
from tierwise.settings_errors import SettingsModel

__all__ = ["TlsClientSettings", "TlsServerSettings", "client_context", "server_context"]

log = logging.getLogger("tierwise.security")


def _readable(path: Path, what: str) -> str:
    if not path.is_file():
        raise ConfigError(what, "a readable PEM file", str(path))
    return str(path)


class TlsServerSettings(SettingsModel):
    """A server's certificate chain and key (PEM); ``client_ca`` makes it mutual TLS."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn's ``ssl_*`` options, after :func:`server_context` has proved the files
        load (so a bad file is a clear error at start, not a failed handshake later)."""
        server_context(self)
        options: dict[str, Any] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            options["ssl_ca_certs"] = str(self.client_ca)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options


def server_context(settings: TlsServerSettings) -> ssl.SSLContext:
    """The server side's context; ConfigError naming the file that does not load."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert = _readable(settings.cert, "tls.cert")
    key = _readable(settings.key, "tls.key")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            "tls.cert/tls.key", "a PEM certificate chain and its private key", f"{cert} ({exc})"
        ) from exc
    if settings.client_ca is not None:
        ca = _readable(settings.client_ca, "tls.client_ca")
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError("tls.client_ca", "PEM CA certificates", f"{ca} ({exc})") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class TlsClientSettings(SettingsModel):
    """How a client checks a server and proves itself: ``ca`` (PEM bundle; default: the
    system's trust store), ``cert`` and ``key`` (its own certificate, for mutual TLS),
    ``server_name`` (the name the certificate must hold, when it differs from the URL's
    host) and ``insecure_skip_verify`` (no check at all: for a lab, never a fleet)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = Field(default=None, min_length=1)
    insecure_skip_verify: bool = Field(default=False, strict=True)  # true, never "yes"

    @model_validator(mode="after")
    def _pair(self) -> TlsClientSettings:
        if (self.cert is None) != (self.key is None):
            raise ConfigError(
                "tls.cert/tls.key", "both a client certificate and its key, or neither"
            )
        return self


def client_context(settings: TlsClientSettings | None, *, who: str = "client") -> ssl.SSLContext:
    """A client context that verifies the server (unless told not to, which is logged);
    ConfigError naming a file that does not load."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings is None:
        return context
    if settings.ca is not None:
        ca = _readable(settings.ca, "tls.ca")
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError("tls.ca", "PEM CA certificates", f"{ca} ({exc})") from exc
    if settings.cert is not None and settings.key is not None:
        cert = _readable(settings.cert, "tls.cert")
        key = _readable(settings.key, "tls.key")
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                "tls.cert/tls.key", "a PEM certificate and its private key", f"{cert} ({exc})"
            ) from exc
    if settings.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        log.warning(
            "TLS certificate verification is OFF for %s (insecure_skip_verify): anyone on "
            "the path can read and change its traffic",
            who,
        )
    return context
