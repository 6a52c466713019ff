"""A user-space link emulator for rehearsing a fleet's network on one machine.

:class:`LinkRelay` (:mod:`tierwise.link.relay`) relays TCP to a target with a round trip
drawn from :class:`RttModel` (:mod:`tierwise.link.delay`, a log-normal through the link's
p50 and p99, the same model the simulator draws from), bandwidth pacing and a partition
switch; :class:`LinkSettings` (:mod:`tierwise.link.settings`) says how; the control
endpoint is :class:`LinkControlApp` (:mod:`tierwise.link.control`). ``tierwise link``
runs one.
"""

from tierwise.link.control import LinkControlApp, add_signal_handlers
from tierwise.link.delay import RttModel
from tierwise.link.relay import LinkRelay, LinkStats
from tierwise.link.settings import LinkSettings, PartitionMode

__all__ = [
    "LinkControlApp",
    "LinkRelay",
    "LinkSettings",
    "LinkStats",
    "PartitionMode",
    "RttModel",
    "add_signal_handlers",
]
