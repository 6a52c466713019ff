"""Who may call what: the token settings a server reads, and the guard its route table
asks before every endpoint that needs a scope.

A server with no token configured is open (every endpoint answers anyone); bind it to a
non-loopback address and :func:`tierwise.security.exposure.check_exposure` refuses to
start it unless mutual TLS guards it or ``--insecure`` is given. Once any token is
configured, every endpoint with a scope needs a token that holds it, except the scopes
listed in ``open_scopes`` (``admin`` can never be open). Health probes have no scope.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import Field, field_validator

from tierwise.errors import ConfigError, ForbiddenError, UnauthenticatedError
from tierwise.security.tokens import (
    Principal,
    Scope,
    TokenRecord,
    TokenStore,
    parse_token_lines,
    record_for,
)
from tierwise.settings_errors import SettingsModel

__all__ = ["AuthSettings", "EnvToken", "Guard"]

#: The most bytes a tokens file may hold (a million tokens' lines is far beyond any fleet).
_MAX_TOKENS_FILE_BYTES = 16 * 1024 * 1024


class EnvToken(SettingsModel):
    """A token given whole in an environment variable (a Kubernetes secret mounted as one):
    ``env`` names the variable, never the token; ``client`` and ``scopes`` say whose it is
    and what it may do."""

    env: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    client: str = Field(min_length=1, max_length=64)
    scopes: list[Scope] = Field(min_length=1)


class AuthSettings(SettingsModel):
    """Where a server's tokens come from. ``tokens_file`` holds hash lines (``tierwise keys
    token`` prints one); ``tokens_env`` names variables that hold whole tokens.
    ``open_scopes`` are answered without a token even when tokens exist (``infer`` for a
    shop-floor line that every station may ask); ``admin`` may not be among them."""

    tokens_file: Path | None = None
    tokens_env: list[EnvToken] = Field(default_factory=list)
    open_scopes: list[Scope] = Field(default_factory=list)

    @field_validator("open_scopes")
    @classmethod
    def _admin_never_open(cls, value: list[Scope]) -> list[Scope]:
        if "admin" in value:
            raise ConfigError("open_scopes", "infer and/or telemetry (admin always needs a token)")
        return value

    @property
    def configured(self) -> bool:
        """Whether any token source is named."""
        return self.tokens_file is not None or bool(self.tokens_env)


def _read_tokens_file(path: Path) -> list[TokenRecord]:
    try:
        size = path.stat().st_size
        if size > _MAX_TOKENS_FILE_BYTES:
            raise ConfigError("tokens_file", f"at most {_MAX_TOKENS_FILE_BYTES} bytes", size)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("tokens_file", "a readable file of token hash lines", str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("tokens_file", "UTF-8 text", str(path)) from exc
    return parse_token_lines(text, str(path))


class Guard:
    """Checks a request's ``Authorization`` against the scope its endpoint needs."""

    def __init__(self, store: TokenStore, open_scopes: Iterable[str] = ()) -> None:
        self.store = store
        self.open_scopes = frozenset(open_scopes)

    @classmethod
    def from_settings(
        cls, settings: AuthSettings | None, env: Mapping[str, str] | None = None
    ) -> Guard:
        """The guard ``settings`` describe, tokens read now; ConfigError naming a missing
        variable or a bad line (never a token)."""
        if settings is None:
            return cls(TokenStore())
        environ = os.environ if env is None else env
        records: list[TokenRecord] = []
        if settings.tokens_file is not None:
            records.extend(_read_tokens_file(settings.tokens_file))
        for entry in settings.tokens_env:
            value = environ.get(entry.env)
            if not value:
                raise ConfigError(
                    f"tokens_env[{entry.env}]", "the variable set to a token", "not set"
                )
            try:
                records.append(record_for(value, entry.client, entry.scopes))
            except ConfigError as exc:
                raise ConfigError(f"tokens_env[{entry.env}]", exc.expected) from None
        ids = [r.key_id for r in records]
        duplicate = next((i for i in ids if ids.count(i) > 1), None)
        if duplicate is not None:
            raise ConfigError("tokens", "each token id once", duplicate)
        return cls(TokenStore(records), settings.open_scopes)

    @property
    def protects(self) -> bool:
        """Whether any token is configured (else every endpoint is open)."""
        return len(self.store) > 0

    def check(self, scope: str, authorization: bytes | str | None) -> Principal | None:
        """The caller for an endpoint that needs ``scope``: None when the endpoint is open
        to anyone; UnauthenticatedError (401) without a valid token, ForbiddenError (403)
        when the token lacks the scope."""
        if not self.store:
            return None
        if scope in self.open_scopes:
            if not authorization:
                return None
            principal = self.store.authenticate(authorization)
            if principal is None:
                raise UnauthenticatedError(scope, invalid=True)
            return principal
        principal = self.store.authenticate(authorization)
        if principal is None:
            raise UnauthenticatedError(scope, invalid=bool(authorization))
        if not principal.may(scope):
            raise ForbiddenError(principal.client, scope, sorted(principal.scopes))
        return principal
