"""No open admin port by accident: a server bound beyond loopback must be guarded.

On a loopback address a server may run open (the demo, tests, a sidecar). On any other
address it needs tokens or mutual TLS; without either it refuses to start unless the
operator says ``--insecure``, and then the server says so in its first log line and in
its ``/v2`` metadata.
"""

from __future__ import annotations

import ipaddress

from tierwise.errors import ConfigError

__all__ = ["INSECURE_WARNING", "check_exposure", "is_loopback"]

INSECURE_WARNING = (
    "INSECURE: listening on {host} with no tokens and no mutual TLS (--insecure): anyone "
    "who can reach this port may infer, load and unload models"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, *, tokens: bool, mutual_tls: bool, insecure: bool) -> str | None:
    """None when the server may start as it is; the warning to log first when it runs
    unguarded because of ``insecure``; ConfigError (naming the ways out) otherwise."""
    if is_loopback(host) or tokens or mutual_tls:
        return None
    if insecure:
        return INSECURE_WARNING.format(host=host)
    raise ConfigError(
        "host",
        "a loopback address, or protection when bound elsewhere: tokens (--tokens-file / "
        "auth.tokens_file), mutual TLS (--tls-client-ca), or --insecure to run open anyway",
        host,
    )
