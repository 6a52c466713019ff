"""A token server of the distribution token spec on loopback, for registry tests.

It signs RS256 JWTs with a key whose self-signed certificate the registry trusts (its
``auth.token.rootcertbundle``), carrying the certificate in the ``x5c`` header. Users
with the right password get every action they ask for, unless ``read_only`` lists them
(pull only); anonymous callers get ``pull`` on the repositories in ``public`` and
nothing else, as a public repository on GHCR or Docker Hub behaves.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SERVICE = "tierwise-test-registry"
ISSUER = "tierwise-test-token-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Started by :func:`token_server`; ``requests`` records (user, scopes) per call."""

    users: dict[str, str]
    public: set[str] = field(default_factory=set)
    read_only: set[str] = field(default_factory=set)
    requests: list[tuple[str | None, list[str]]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    port: int = 0
    cert_path: Path = Path()

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tierwise test tokens")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_config(self) -> str:
        """The ``auth:`` section of a registry configuration that trusts this server."""
        return (
            f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n    rootcertbundle: {self.cert_path}\n"
        )

    def grant(self, user: str | None, scope: str) -> dict[str, Any] | None:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        wanted = [a for a in actions.split(",") if a]
        if user is None:
            allowed = [a for a in wanted if a == "pull" and name in self.public]
        elif user in self.read_only:
            allowed = [a for a in wanted if a == "pull"]
        else:
            allowed = wanted
        return {"type": kind, "name": name, "actions": allowed} if allowed else None

    def token(self, user: str | None, scopes: list[str]) -> str:
        cert = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        header = {"typ": "JWT", "alg": "RS256", "x5c": [cert]}
        now = int(time.time())
        access = [g for g in (self.grant(user, s) for s in scopes) if g is not None]
        claims = {
            "iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300,
            "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access,
        }  # fmt: skip
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{_b64(signature)}"
        self.issued.append(token)
        return token


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            user = None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if server.users.get(name) != password:
                    self.send_response(401)
                    self.end_headers()
                    return
                user = name
            scopes = query.get("scope", [])
            server.requests.append((user, scopes))
            if url.path != "/token" or query.get("service") != [SERVICE]:
                self.send_response(400)
                self.end_headers()
                return
            body = json.dumps({"token": server.token(user, scopes), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def start_token_server(tmp: Path, server: TokenServer) -> ThreadingHTTPServer:
    """Serve ``server`` on a free loopback port (``server.port``); shut it down after."""
    server.cert_path = tmp / "token-signer.pem"
    server.cert_path.write_bytes(server.cert.public_bytes(serialization.Encoding.PEM))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.port = int(httpd.server_address[1])
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
