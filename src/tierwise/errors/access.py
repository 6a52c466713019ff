"""Errors of access control: who is asking, what they may do, and how often."""

from __future__ import annotations

from collections.abc import Sequence

from tierwise.errors.base import TierwiseError

__all__ = ["AccessError", "ForbiddenError", "RateLimitedError", "UnauthenticatedError"]


class AccessError(TierwiseError):
    """A request the server refuses because of who sent it. ``http_headers`` are added to
    the error response."""

    status_code = 403

    @property
    def http_headers(self) -> list[tuple[bytes, bytes]]:
        return []


class UnauthenticatedError(AccessError):
    """No bearer token, or one the server does not know (401). ``scope`` is the scope the
    endpoint needs; ``invalid`` says a token was sent but not recognised. The message
    never holds the token."""

    status_code = 401

    def __init__(self, scope: str, *, invalid: bool = False) -> None:
        self.scope = scope
        self.invalid = invalid
        if invalid:
            why = "the bearer token is not one this server knows"
        else:
            why = "this endpoint needs a bearer token (Authorization: Bearer ...)"
        super().__init__(f"{why}; it needs a token with scope {scope!r}")

    @property
    def http_headers(self) -> list[tuple[bytes, bytes]]:
        value = f'Bearer realm="tierwise", scope="{self.scope}"'
        if self.invalid:
            value += ', error="invalid_token"'
        return [(b"www-authenticate", value.encode())]


class ForbiddenError(AccessError):
    """A known client whose token lacks the scope an endpoint needs (403)."""

    status_code = 403

    def __init__(self, client: str, scope: str, scopes: Sequence[str]) -> None:
        self.client = client
        self.scope = scope
        self.scopes = tuple(scopes)
        held = ", ".join(sorted(self.scopes)) or "none"
        super().__init__(
            f"client {client!r} may not do this: it needs scope {scope!r}, the token has {held}"
        )

    @property
    def http_headers(self) -> list[tuple[bytes, bytes]]:
        value = f'Bearer realm="tierwise", scope="{self.scope}", error="insufficient_scope"'
        return [(b"www-authenticate", value.encode())]


class RateLimitedError(AccessError):
    """A client over its request rate, or one whose budget is spent (429).
    ``retry_after_s`` goes into the Retry-After header."""

    status_code = 429

    def __init__(self, client: str, reason: str, *, retry_after_s: int = 1) -> None:
        self.client = client
        self.reason = reason
        self.retry_after_s = max(1, int(retry_after_s))
        super().__init__(f"client {client!r}: {reason}; retry after {self.retry_after_s} s")

    @property
    def http_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after_s).encode())]
