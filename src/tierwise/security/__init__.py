"""Transport security and access control, one mechanism for every server.

:mod:`~tierwise.security.tokens`: bearer tokens with scopes (``infer``, ``admin``,
``telemetry``), kept as salted hashes; :mod:`~tierwise.security.auth`: the settings a
server reads and the :class:`Guard` its route table asks; :mod:`~tierwise.security.tls`:
TLS and mutual TLS for servers and clients; :mod:`~tierwise.security.exposure`: a server
bound beyond loopback refuses to run unguarded unless told ``--insecure``;
:mod:`~tierwise.security.audit`: one line per admin action, naming the client.
"""

from __future__ import annotations

from tierwise.security import audit
from tierwise.security.auth import AuthSettings, EnvToken, Guard
from tierwise.security.exposure import INSECURE_WARNING, check_exposure, is_loopback
from tierwise.security.tls import (
    TlsClientSettings,
    TlsServerSettings,
    client_context,
    server_context,
)
from tierwise.security.tokens import (
    SCOPES,
    Principal,
    Scope,
    TokenRecord,
    TokenStore,
    hash_line,
    make_token,
    parse_scopes,
    parse_token_lines,
    record_for,
)

__all__ = [
    "INSECURE_WARNING",
    "SCOPES",
    "AuthSettings",
    "EnvToken",
    "Guard",
    "Principal",
    "Scope",
    "TlsClientSettings",
    "TlsServerSettings",
    "TokenRecord",
    "TokenStore",
    "audit",
    "check_exposure",
    "client_context",
    "hash_line",
    "is_loopback",
    "make_token",
    "parse_scopes",
    "parse_token_lines",
    "record_for",
    "server_context",
]
