"""Open a store from where it is: a folder (the embedded store) or ``oci://`` (a registry)."""

from __future__ import annotations

from pathlib import Path

from tierwise.errors import BundleError
from tierwise.registry.local import LocalStore
from tierwise.registry.oci import OciStore
from tierwise.registry.store import BundleStore

__all__ = ["open_store"]


def open_store(
    location: str | Path,
    *,
    plain_http: bool = False,
    timeout_s: float = 30.0,
    username: str | None = None,
    password: str | None = None,
    create: bool = False,
) -> BundleStore:
    """``oci://HOST[:PORT][/PREFIX]`` opens a registry; anything else is a local folder
    (made when ``create``, else it must be a store already)."""
    text = str(location)
    scheme = text.split("://", 1)[0] if "://" in text else None
    if scheme is not None and scheme != "oci":
        raise BundleError(
            f"store {text!r}: expected a local folder or oci://HOST[:PORT][/PREFIX] "
            f"(a registry is addressed as oci://, whatever its own protocol)"
        )
    if text.startswith("oci://"):
        return OciStore(
            text, plain_http=plain_http, timeout_s=timeout_s, username=username, password=password
        )
    return LocalStore(Path(text), create=create)
