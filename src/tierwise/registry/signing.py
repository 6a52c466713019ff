"""Ed25519 signatures over manifest bytes, and the set of keys a node trusts.

A key pair is two PEM files: ``NAME.key`` (PKCS#8 private key, mode 0600) and
``NAME.pub`` (SubjectPublicKeyInfo). A key's id is the first 16 hex digits of the sha256
of its raw 32-byte public key. A signature is a small JSON document stored beside the
manifest: ``{"algorithm": "ed25519", "key_id": ..., "manifest_digest": ...,
"signature": <base64>}``; it signs the manifest's exact bytes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tierwise.errors import ConfigError, SignatureError
from tierwise.registry.digest import atomic_write_bytes, digest_bytes

__all__ = [
    "MAX_SIGNATURE_BYTES",
    "KeyPair",
    "Signer",
    "TrustStore",
    "generate_keys",
    "key_id",
]

MAX_SIGNATURE_BYTES = 4096
_ALGORITHM = "ed25519"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    key_id: str


def generate_keys(out_dir: Path, name: str, *, overwrite: bool = False) -> KeyPair:
    """Write a new key pair; refuses to overwrite an existing key unless told to."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError("name", "a plain file name for the key pair", name)
    private_path = out_dir / f"{name}.key"
    public_path = out_dir / f"{name}.pub"
    if private_path.exists() and not overwrite:
        raise ConfigError("out", f"no existing key at {private_path} (pass --force)", None)
    key = Ed25519PrivateKey.generate()
    try:
        return _write_pair(key, out_dir, private_path, public_path)
    except OSError as exc:
        raise ConfigError("out", "a folder the keys can be written to", str(out_dir)) from exc


def _write_pair(
    key: Ed25519PrivateKey, out_dir: Path, private_path: Path, public_path: Path
) -> KeyPair:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    public = key.public_key()
    atomic_write_bytes(
        public_path,
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return KeyPair(private_path, public_path, key_id(public))


class Signer:
    """Signs manifests with one private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._key = private
        self.key_id = key_id(private.public_key())

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError("key", "a readable private key file", str(path)) from exc
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError("key", "a PEM ed25519 private key", str(path)) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("key", "an ed25519 private key", type(key).__name__)
        return cls(key)

    def sign(self, manifest_bytes: bytes) -> bytes:
        """The signature document for these exact manifest bytes."""
        signature = self._key.sign(manifest_bytes)
        return orjson.dumps(
            {
                "algorithm": _ALGORITHM,
                "key_id": self.key_id,
                "manifest_digest": digest_bytes(manifest_bytes),
                "signature": base64.b64encode(signature).decode(),
            },
            option=orjson.OPT_SORT_KEYS,
        )


class TrustStore:
    """The public keys a node accepts bundles from."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(k): k for k in keys}

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    @classmethod
    def from_paths(cls, paths: Iterable[Path]) -> TrustStore:
        """Keys from ``.pub`` files, or every ``*.pub`` of a directory."""
        keys: list[Ed25519PublicKey] = []
        for path in paths:
            files = sorted(path.glob("*.pub")) if path.is_dir() else [path]
            for file in files:
                try:
                    key = serialization.load_pem_public_key(file.read_bytes())
                except (OSError, ValueError) as exc:
                    raise ConfigError(
                        "trusted_keys", "readable PEM ed25519 public keys", str(file)
                    ) from exc
                if not isinstance(key, Ed25519PublicKey):
                    raise ConfigError("trusted_keys", "ed25519 public keys", str(file))
                keys.append(key)
        return cls(keys)

    def verify(self, manifest_bytes: bytes, signature: bytes | None, *, bundle: str) -> str:
        """The id of the trusted key that signed these bytes; SignatureError otherwise."""
        if not self._keys:
            raise SignatureError(
                "signature check failed: no trusted keys are configured", bundle=bundle
            )
        if not signature:
            raise SignatureError("signature check failed: the bundle is unsigned", bundle=bundle)
        if len(signature) > MAX_SIGNATURE_BYTES:
            raise SignatureError(
                f"signature check failed: {len(signature)} bytes, the limit is "
                f"{MAX_SIGNATURE_BYTES}",
                bundle=bundle,
            )
        try:
            doc = orjson.loads(signature)
            algorithm, kid, encoded = doc["algorithm"], doc["key_id"], doc["signature"]
            if not all(isinstance(v, str) for v in (algorithm, kid, encoded)):
                raise TypeError("algorithm, key_id and signature must be strings")
            raw = base64.b64decode(encoded, validate=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SignatureError(
                "signature check failed: the signature document is malformed", bundle=bundle
            ) from exc
        if algorithm != _ALGORITHM:
            raise SignatureError(
                f"signature check failed: algorithm {algorithm!r}, expected {_ALGORITHM!r}",
                bundle=bundle,
            )
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(
                f"signature check failed: signed by key {kid!r}, which is not trusted "
                f"(trusted: {', '.join(self.key_ids)})",
                bundle=bundle,
            )
        try:
            key.verify(raw, manifest_bytes)
        except InvalidSignature as exc:
            raise SignatureError(
                f"signature check failed: the signature by key {kid} does not match the "
                "manifest (tampered manifest or signature)",
                bundle=bundle,
            ) from exc
        return str(kid)
