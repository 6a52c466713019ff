"""``tierwise link``: a user-space link emulator in front of one server."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from tierwise.errors import ConfigError
from tierwise.settings_errors import settings_error

__all__ = ["link"]

log = logging.getLogger("tierwise.link")


def _address(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(what, "HOST:PORT (or :PORT for loopback)", value)
    return host.strip("[]") or "127.0.0.1", int(port)


def link(
    to: Annotated[str, typer.Option("--to", help="HOST:PORT the link leads to.")],
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to accept on (port 0: any free one).")
    ] = "127.0.0.1:0",
    rtt_p50_ms: Annotated[
        float, typer.Option("--rtt-p50-ms", help="Median round trip added, in ms.")
    ] = 0.0,
    rtt_p99_ms: Annotated[
        float | None,
        typer.Option("--rtt-p99-ms", help="99th percentile round trip (default: the median)."),
    ] = None,
    bandwidth_mbps: Annotated[
        float | None,
        typer.Option("--bandwidth-mbps", help="Each direction's bandwidth (default: unpaced)."),
    ] = None,
    partition_mode: Annotated[
        str,
        typer.Option(
            "--partition-mode",
            help="blackhole (bytes held until it heals) or reset (connections closed).",
        ),
    ] = "blackhole",
    control: Annotated[
        str | None,
        typer.Option(
            "--control",
            help="Loopback HOST:PORT of the control endpoint (GET /v1/link, POST "
            "/v1/link/partition, /v1/link/heal, PUT /v1/link).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the round trips drawn.")] = None,
) -> None:
    """Relay TCP to --to with the round trips of a link (a log-normal through --rtt-p50-ms
    and --rtt-p99-ms), its bandwidth and a partition switch (SIGUSR1 cuts it, SIGUSR2
    heals it, or the --control endpoint) - a fleet's network rehearsed on one machine."""
    from tierwise.link import LinkControlApp, LinkRelay, LinkSettings
    from tierwise.security import is_loopback

    listen_host, listen_port = _address(listen, "--listen")
    target_host, target_port = _address(to, "--to")
    data: dict[str, Any] = {
        "listen_host": listen_host, "listen_port": listen_port,
        "target_host": target_host, "target_port": target_port,
        "rtt_p50_ms": rtt_p50_ms, "rtt_p99_ms": rtt_p99_ms,
        "bandwidth_mbps": bandwidth_mbps, "partition_mode": partition_mode, "seed": seed,
    }  # fmt: skip
    try:
        settings = LinkSettings.model_validate(data)
    except ValidationError as exc:
        raise settings_error("link options", exc, LinkSettings) from exc
    relay = LinkRelay(settings)
    if control is None:
        asyncio.run(_run(relay))
        return
    control_host, control_port = _address(control, "--control")
    if not is_loopback(control_host):
        raise ConfigError("--control", "a loopback address (the endpoint has no tokens)", control)
    from tierwise.server.app import uvicorn_server

    uvicorn_server(LinkControlApp(relay, announce=True), host=control_host, port=control_port).run()


async def _run(relay: Any) -> None:
    from tierwise.link import add_signal_handlers

    await relay.start()
    add_signal_handlers(relay)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    status = relay.status()
    log.info("link %s -> %s", status["listen"], status["target"])
    print(f"link {status['listen']} -> {status['target']}", flush=True)
    try:
        await stop.wait()
    finally:
        await relay.stop()
