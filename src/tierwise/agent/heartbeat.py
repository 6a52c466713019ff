"""The node's side of a control plane: who it is (labels), the heartbeats it sends, and
the desired state it takes from a control plane's answers.

With ``control.heartbeat_url`` set, the agent POSTs a heartbeat every ``heartbeat_s``
(with ``control.telemetry`` it publishes them through NATS instead,
:mod:`tierwise.agent.heartbeat_nats`)
(the first at start): its name, labels, addresses, status and per-bundle counters
(:func:`tierwise.agent.counters.heartbeat_document`). The control plane answers ``{"node":
NAME, "desired": {"refs": {BUNDLE: REF}} | null, "heartbeat_s": SECONDS | null}``. A
desired state that differs from the node's desired-state file is written there (the
file keeps the target through restarts) and a sync starts at once, so a control plane's
decision reaches the node within one heartbeat rather than one sync interval;
``heartbeat_s`` sets the next interval (bounded to [0.2, 3600] s). A heartbeat that fails
(no answer, not 200, not the document above, over 64 KiB) is logged once per change of
error and shown in the status (``control.heartbeat_error``); the loop and the node carry
on. The token and TLS settings are those of ``control.url``: the token goes only over
HTTPS or to a loopback host.

Labels follow Kubernetes' rules, so a fleet's selectors read the same everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from tierwise.agent.control import control_access
from tierwise.agent.counters import heartbeat_document
from tierwise.agent.desired import DesiredState, parse_desired
from tierwise.errors import AgentError, ConfigError, PayloadTooLargeError, TierError
from tierwise.http.client import HttpClient

if TYPE_CHECKING:
    from tierwise.agent.control import ControlPlane
    from tierwise.agent.node import EdgeAgent
    from tierwise.agent.settings import ControlSettings

__all__ = [
    "HEARTBEAT_BOUNDS_S",
    "MAX_ANSWER_BYTES",
    "Heartbeat",
    "HeartbeatAnswer",
    "HeartbeatSender",
    "beat",
    "heartbeat_for",
    "heartbeat_loop",
    "parse_answer",
    "poll_desired",
]

log = logging.getLogger("tierwise.agent")

#: Largest heartbeat answer read from the control plane.
MAX_ANSWER_BYTES = 64 * 1024
#: The least and the most seconds between two heartbeats a control plane may ask for.
HEARTBEAT_BOUNDS_S = (0.2, 3600.0)

_ANSWER = '{"node": NAME, "desired": {"refs": {BUNDLE: REF}} | null, "heartbeat_s": SECONDS | null}'


@dataclass(frozen=True)
class HeartbeatAnswer:
    """What a control plane answered a heartbeat: the desired state it names (None: no
    word on it) and the seconds until the next heartbeat (None: the settings' own)."""

    desired: DesiredState | None = None
    heartbeat_s: float | None = None


def parse_answer(content: bytes, node: str, where: str) -> HeartbeatAnswer:
    """The answer to ``node``'s heartbeat; ConfigError naming ``where`` and the field."""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(where, f"a JSON answer {_ANSWER}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(where, f"a JSON object {_ANSWER}", type(doc).__name__)
    named = doc.get("node")
    if named is not None and named != node:
        raise ConfigError(f"{where}: node", f"this node's name ({node})", str(named)[:128])
    desired = None
    raw = doc.get("desired")
    if raw is not None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: desired", '{"refs": {BUNDLE: REF}} or null',
                              type(raw).__name__)  # fmt: skip
        desired = parse_desired(orjson.dumps(raw), f"{where}: desired")
    interval = doc.get("heartbeat_s")
    if interval is None:
        return HeartbeatAnswer(desired)
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise ConfigError(f"{where}: heartbeat_s", "a number of seconds or null",
                          type(interval).__name__)  # fmt: skip
    if not math.isfinite(interval):
        raise ConfigError(f"{where}: heartbeat_s", "a finite number of seconds", interval)
    low, high = HEARTBEAT_BOUNDS_S
    return HeartbeatAnswer(desired, min(max(float(interval), low), high))


class HeartbeatSender(ABC):
    """What sends a node's heartbeats, :class:`Heartbeat` (HTTP) or
    :class:`~tierwise.agent.heartbeat_nats.NatsHeartbeat` (JetStream), and the record
    both keep: the last error and when a heartbeat was last taken."""

    def __init__(self, node: str, url: str, heartbeat_s: float) -> None:
        self.node = node
        self.url = url
        self.default_s = heartbeat_s
        #: the seconds until the next heartbeat (a control plane may change it)
        self.interval_s = heartbeat_s
        self.last_error: str | None = None
        self.last_heartbeat_s: float | None = None

    @property
    @abstractmethod
    def where(self) -> str:
        """Where heartbeats go, for logs and errors."""

    @abstractmethod
    async def send(self, document: Mapping[str, Any]) -> HeartbeatAnswer:
        """Send one heartbeat; AgentError or ConfigError saying what failed."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection."""

    def failed(self, error: str) -> None:
        """Record a failed heartbeat; logged when the error is not the last one's."""
        if error != self.last_error:
            log.warning("heartbeat: %s; the node carries on", error)
        self.last_error = error

    def answered(self) -> None:
        """Record a heartbeat that was taken."""
        if self.last_error is not None:
            log.info("heartbeat: %s answers again", self.where)
        self.last_error = None
        self.last_heartbeat_s = time.time()


class Heartbeat(HeartbeatSender):
    """Sends one node's heartbeats to ``settings.heartbeat_url`` and reads the answers;
    remembers the last error and when a heartbeat was last answered. ConfigError, when
    built, for a token variable that is not set or a URL it may not go to."""

    def __init__(self, settings: ControlSettings, node: str, env: Mapping[str, str]) -> None:
        if settings.heartbeat_url is None:
            raise ConfigError("control.heartbeat_url", "an http(s) URL for heartbeats")
        url = settings.heartbeat_url.replace("{node}", quote(node, safe=""))
        super().__init__(node, url, settings.heartbeat_s)
        self.token, context = control_access(settings, self.url, "control.heartbeat_url", env)
        self.client = HttpClient(
            timeout_s=settings.timeout_s, max_response_bytes=MAX_ANSWER_BYTES,
            ssl_context=context, max_connections=1,
        )  # fmt: skip

    @property
    def where(self) -> str:
        return f"control plane {self.url}"

    async def send(self, document: Mapping[str, Any]) -> HeartbeatAnswer:
        """POST one heartbeat; the answer, or AgentError / ConfigError saying what failed."""
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            answer = await self.client.request("POST", self.url, json=document, headers=headers)
        except PayloadTooLargeError as exc:
            raise AgentError(
                f"{self.where} answered a heartbeat with more than {MAX_ANSWER_BYTES} bytes"
            ) from exc
        except TierError as exc:
            raise AgentError(f"{self.where} did not take a heartbeat: {exc.reason}") from exc
        if answer.status_code != 200:
            raise AgentError(
                f"{self.where} answered a heartbeat with {answer.status_code}; expected 200 "
                f"with {_ANSWER}"
            )
        return parse_answer(answer.content, self.node, self.where)

    async def aclose(self) -> None:
        await self.client.aclose()


def heartbeat_for(
    control: ControlSettings | None, node: str, env: Mapping[str, str]
) -> HeartbeatSender | None:
    """What sends ``node``'s heartbeats under ``control`` (None: it sends none)."""
    if control is None:
        return None
    if control.telemetry is not None:
        from tierwise.agent.heartbeat_nats import NatsHeartbeat  # loads nats-py

        return NatsHeartbeat(control.telemetry, node, control.heartbeat_s)
    if control.heartbeat_url is not None:
        return Heartbeat(control, node, env)
    return None


async def beat(agent: EdgeAgent, heartbeat: HeartbeatSender) -> float:
    """Send one heartbeat and act on its answer; the seconds until the next one. Never
    raises for what the control plane does (the status says it)."""
    document = heartbeat_document(agent)
    try:
        answer = await heartbeat.send(document)
        if answer.desired is not None:
            answer.desired.check(agent.bundle_names, heartbeat.where)
    except (AgentError, ConfigError) as exc:
        heartbeat.failed(str(exc))
        heartbeat.interval_s = heartbeat.default_s
        return heartbeat.interval_s
    heartbeat.answered()
    heartbeat.interval_s = heartbeat.default_s if answer.heartbeat_s is None else answer.heartbeat_s
    if answer.desired is not None and agent.adopt_desired(answer.desired, heartbeat.where):
        agent.kick()
    return heartbeat.interval_s


async def heartbeat_loop(agent: EdgeAgent, heartbeat: HeartbeatSender) -> None:
    """Beat now, then every interval, until cancelled; no failure ends it."""
    while True:
        try:
            delay_s = await beat(agent, heartbeat)
        except Exception:  # the loop outlives any one failure
            log.exception("heartbeat failed unexpectedly")
            delay_s = heartbeat.default_s
        await asyncio.sleep(delay_s)


async def poll_desired(agent: EdgeAgent, control: ControlPlane) -> None:
    """Take the desired state ``control.url`` names into the node's desired-state file;
    when it cannot be read, keep the one the node has and say why in the status."""
    try:
        answer = await asyncio.to_thread(control.fetch)
        if answer is not None:
            answer.check(agent.bundle_names, f"control plane {control.url}")
    except (AgentError, ConfigError) as exc:
        control.last_error = str(exc)
        log.warning("%s; keeping the desired state this node has", exc)
        return
    control.last_error = None
    if answer is not None:
        agent.adopt_desired(answer, f"control plane {control.url}")
