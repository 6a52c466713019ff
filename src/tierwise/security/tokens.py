"""Bearer tokens with scopes, stored as salted hashes.

A token is ``tw_<id>_<secret>``: ``id`` (12 hex digits) finds its record, ``secret`` (32
random bytes, URL-safe base64) proves it. A server keeps one line per token and never
the token itself::

    client=line-7 scopes=infer,telemetry id=3f9a1c0b2d4e sha256=<salt hex>:<digest hex>

``digest`` is SHA-256 over the salt and the secret. A token is 256 random bits, not a
password a person chose, so a fast hash is as safe as a slow one: nobody can guess their
way to a secret, and checking one costs about a microsecond on every request. The
comparison runs in constant time (:func:`hmac.compare_digest`), and a token whose ``id``
is unknown is compared against a dummy record, so neither reveals which ids exist.

Scopes: ``infer`` (inference and model metadata), ``admin`` (repository load, unload and
index; an agent's desired state and rollback) and ``telemetry`` (metrics, status).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from tierwise.errors import ConfigError

__all__ = [
    "SCOPES",
    "Principal",
    "Scope",
    "TokenRecord",
    "TokenStore",
    "hash_line",
    "make_token",
    "parse_scopes",
    "parse_token_lines",
    "record_for",
]

Scope = Literal["infer", "admin", "telemetry"]
SCOPES: tuple[Scope, ...] = get_args(Scope)

_ID_DIGITS = 12
_SECRET_BYTES = 32
_SALT_BYTES = 16
_TOKEN = re.compile(r"tw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_CLIENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX = re.compile(r"[0-9a-f]+")
_FIELDS = ("client", "scopes", "id", "sha256")
#: header values kept as passed, at most (one or two per client in practice)
_MAX_PASSED = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request: the client its token names and the scopes the token holds."""

    client: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One token as a server keeps it: no secret, only its salted hash."""

    key_id: str
    client: str
    scopes: frozenset[str]
    salt: bytes
    digest: bytes

    @property
    def principal(self) -> Principal:
        return Principal(self.client, self.scopes)


def parse_scopes(value: str | Iterable[str], where: str = "scopes") -> frozenset[str]:
    """Scopes from ``infer,telemetry`` or a list; ConfigError naming an unknown one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    found = frozenset(item.strip() for item in items if item.strip())
    unknown = sorted(found - set(SCOPES))
    if unknown or not found:
        raise ConfigError(where, f"one or more of {', '.join(SCOPES)}", unknown or value)
    return found


def _check_client(client: str, where: str) -> str:
    if not _CLIENT.fullmatch(client):
        raise ConfigError(where, "a client name of letters, digits, '_', '.', '-' (1-64)", client)
    return client


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


def record_for(token: str, client: str, scopes: str | Iterable[str]) -> TokenRecord:
    """The record of a token given in full (from an environment variable). ConfigError,
    without the token in it, when it is not a tierwise token."""
    matched = _TOKEN.fullmatch(token.strip())
    if matched is None:
        raise ConfigError(
            "token", "a tierwise token, tw_<12 hex digits>_<43 characters> (tierwise keys token)"
        )
    salt = secrets.token_bytes(_SALT_BYTES)
    return TokenRecord(
        matched.group(1),
        _check_client(client, "client"),
        parse_scopes(scopes),
        salt,
        _digest(salt, matched.group(2)),
    )


def make_token(client: str, scopes: str | Iterable[str]) -> tuple[str, TokenRecord]:
    """A new token for ``client`` and its record (whose :func:`hash_line` a server keeps)."""
    key_id = secrets.token_hex(_ID_DIGITS // 2)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).decode().rstrip("=")
    token = f"tw_{key_id}_{secret}"
    return token, record_for(token, client, scopes)


def hash_line(record: TokenRecord) -> str:
    """The line a tokens file holds for ``record``."""
    scopes = ",".join(s for s in SCOPES if s in record.scopes)
    return (
        f"client={record.client} scopes={scopes} id={record.key_id} "
        f"sha256={record.salt.hex()}:{record.digest.hex()}"
    )


def parse_token_lines(text: str, source: str) -> list[TokenRecord]:
    """The records of a tokens file (``source`` names it in errors). Blank lines and lines
    starting with ``#`` are skipped. A plaintext token where a hash line belongs is
    refused without echoing it."""
    records: list[TokenRecord] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        if _TOKEN.search(line):
            raise ConfigError(
                where, "a hash line (client=... scopes=... id=... sha256=...), never a token"
            )
        fields: dict[str, str] = {}
        for part in line.split():
            key, sep, value = part.partition("=")
            if not sep or key not in _FIELDS or key in fields:
                raise ConfigError(where, f"fields {', '.join(_FIELDS)}, each once as key=value")
            fields[key] = value
        missing = [f for f in _FIELDS if f not in fields]
        if missing:
            raise ConfigError(where, f"fields {', '.join(_FIELDS)}", f"missing {missing}")
        salt_hex, _, digest_hex = fields["sha256"].partition(":")
        if not (
            _HEX.fullmatch(salt_hex)
            and _HEX.fullmatch(digest_hex)
            and len(salt_hex) >= 2 * 8
            and len(digest_hex) == 64
        ):
            raise ConfigError(f"{where}: sha256", "<salt hex>:<64 hex digits of SHA-256>")
        key_id = fields["id"]
        if not re.fullmatch(r"[0-9a-f]{12}", key_id):
            raise ConfigError(f"{where}: id", "12 hex digits", key_id)
        if key_id in seen:
            raise ConfigError(f"{where}: id", "each token id once", key_id)
        seen.add(key_id)
        records.append(
            TokenRecord(
                key_id,
                _check_client(fields["client"], f"{where}: client"),
                parse_scopes(fields["scopes"], f"{where}: scopes"),
                bytes.fromhex(salt_hex),
                bytes.fromhex(digest_hex),
            )
        )
    return records


_DUMMY = TokenRecord("0" * _ID_DIGITS, "-", frozenset(), b"\0" * _SALT_BYTES, b"\0" * 32)


class TokenStore:
    """The tokens a server accepts, by id. :meth:`authenticate` takes the raw
    ``Authorization`` header value."""

    def __init__(self, records: Iterable[TokenRecord] = ()) -> None:
        self._by_id: Mapping[str, TokenRecord] = {r.key_id: r for r in records}
        # made once: a request that passes gets a shared, immutable principal
        self._principals = {key_id: r.principal for key_id, r in self._by_id.items()}
        # header values that passed, so a client's next request is one lookup: a dict
        # finds a key by a hash keyed afresh in each process, so a guess learns nothing
        # from how long a miss takes; bounded, and never holds a value that failed
        self._passed: dict[bytes | str, Principal] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def clients(self) -> frozenset[str]:
        return frozenset(r.client for r in self._by_id.values())

    def authenticate(self, authorization: bytes | str | None) -> Principal | None:
        """The principal of a valid ``Bearer`` token; None when there is none or it is
        not valid (the caller decides between 401 and an open endpoint)."""
        if not authorization:
            return None
        passed = self._passed.get(authorization)
        if passed is not None:
            return passed
        value = (
            authorization.decode("latin-1") if isinstance(authorization, bytes) else authorization
        )
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        matched = _TOKEN.fullmatch(token.strip())
        if matched is None:
            return None
        record = self._by_id.get(matched.group(1))
        known = record is not None
        check = record if record is not None else _DUMMY
        ok = hmac.compare_digest(_digest(check.salt, matched.group(2)), check.digest)
        if not (ok and known):
            return None
        principal = self._principals[check.key_id]
        if len(self._passed) < _MAX_PASSED:
            self._passed[authorization] = principal
        return principal
