"""Test credentials: a certificate authority made in the test, server and client
certificates it signs (or an expired one), and bearer tokens. Every secret made here is
remembered, so the suite-wide scan (``conftest.py``) can prove none reaches a log line,
an error body or a metrics label."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tierwise.security import TokenRecord, hash_line, make_token

#: Every token and private key (PEM text) the tests made: none may appear in any output.
SECRETS: set[str] = set()


def remember(secret: str) -> str:
    SECRETS.add(secret)
    return secret


def find_secret(text: str) -> str | None:
    """The first remembered secret ``text`` holds (a short prefix of it, for the message)."""
    for secret in SECRETS:
        if secret and secret in text:
            return secret[:12] + "..."
    return None


def new_token(client: str, scopes: str) -> tuple[str, TokenRecord]:
    """A fresh token (remembered as a secret) and its record."""
    token, record = make_token(client, scopes)
    remember(token)
    return token, record


def tokens_file(path: Path, *grants: tuple[str, str]) -> tuple[Path, dict[str, str]]:
    """A tokens file with one line per ``(client, scopes)``; the tokens by client."""
    tokens: dict[str, str] = {}
    lines = []
    for client, scopes in grants:
        token, record = new_token(client, scopes)
        tokens[client] = token
        lines.append(hash_line(record))
    path.write_text("\n".join(lines) + "\n")
    return path, tokens


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    path.parent.mkdir(parents=True, exist_ok=True)
    cert_path = path.with_suffix(".crt")
    key_path = path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    remember(pem.decode().split("\n")[1])  # a line of the key's body
    key_path.write_bytes(pem)
    return Pem(cert_path, key_path)


@dataclass
class TestCA:
    """A certificate authority that lives in one test's folder."""

    __test__ = False  # a helper, not a test class

    folder: Path
    name: str = "tierwise test CA"

    def __post_init__(self) -> None:
        self.key = _key()
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = _write(self.folder / self.name.replace(" ", "-"), self.cert, self.key)

    @property
    def ca_file(self) -> Path:
        return self.pem.cert

    def issue(
        self,
        name: str,
        *,
        server: bool = True,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        expired: bool = False,
    ) -> Pem:
        """A certificate for a server (valid for ``hosts``) or a client, signed by this CA;
        ``expired`` gives one whose validity ended yesterday."""
        key = _key()
        now = dt.datetime.now(dt.UTC)
        start, end = (
            (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
            if expired
            else (now - dt.timedelta(days=1), now + dt.timedelta(days=10))
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            usage = ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(self.folder / name, cert, key)
