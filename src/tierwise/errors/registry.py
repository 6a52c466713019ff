"""Errors of the model registry (bundles, signatures, stores), the edge agent and the
control plane's rollouts."""

from __future__ import annotations

from tierwise.errors.base import TierwiseError

__all__ = [
    "AgentError",
    "BundleError",
    "BundleExistsError",
    "BundleNotFoundError",
    "IntegrityError",
    "RegistryError",
    "RegistryUnavailableError",
    "RolloutError",
    "SignatureError",
]


class RegistryError(TierwiseError):
    """A bundle could not be stored, fetched or checked. ``bundle`` names it when known."""

    def __init__(self, reason: str, *, bundle: str | None = None) -> None:
        self.reason = reason
        self.bundle = bundle
        super().__init__(f"bundle {bundle}: {reason}" if bundle else reason)


class BundleError(RegistryError):
    """A bundle or its manifest is malformed: a bad name, an unsafe path, an oversized or
    unparsable manifest, a source that is not a model."""

    status_code = 400


class IntegrityError(RegistryError):
    """Content does not match what the manifest promised. ``check`` names the check that
    failed (``digest``, ``size``, ``registry-digest``...)."""

    status_code = 422

    def __init__(self, check: str, reason: str, *, bundle: str | None = None) -> None:
        self.check = check
        super().__init__(f"{check} check failed: {reason}", bundle=bundle)


class SignatureError(RegistryError):
    """A bundle is unsigned, signed by a key that is not trusted, or its signature does not
    match its manifest."""

    status_code = 422


class BundleNotFoundError(RegistryError):
    """No such bundle, version, tag or blob in the store."""

    status_code = 404


class BundleExistsError(RegistryError):
    """A version is immutable: the store already holds it with different content."""

    status_code = 409


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached or dropped the connection."""

    status_code = 503


class AgentError(TierwiseError):
    """The edge agent could not do what it was asked (a rollback with nothing to roll back
    to, a desired state it cannot read)."""

    status_code = 409


class RolloutError(TierwiseError):
    """The control plane refuses a rollout change: an overlapping rollout of the bundle,
    a selector that matches no node, an action its state does not allow. Nothing moved."""

    status_code = 409
