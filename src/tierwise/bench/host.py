"""What machine this is, and how much memory a measurement made the process use at peak."""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
from pathlib import Path

from tierwise.bench.profiles import Host

__all__ = ["PeakMemory", "host_info"]

_KIB_PER_MIB = 1024.0
_KIB_PER_GIB = 1024.0 * 1024.0


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text(errors="replace").splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key:
                return value.strip()
    except OSError:
        return None
    return None


def _cpu_model() -> str | None:
    model = _proc_field("/proc/cpuinfo", "model name")
    if model is None:
        model = platform.processor() or None
    return model


def _memory_gib() -> float | None:
    total = _proc_field("/proc/meminfo", "MemTotal")
    if total is None or not total.split()[0].isdigit():
        return None
    return round(int(total.split()[0]) / _KIB_PER_GIB, 2)


def host_info(*, label: str | None = None, accelerator: str | None = None) -> Host:
    """This machine: CPU, cores, memory, platform and runtime versions. ``label`` names the
    hardware in a way people recognise (``pi5``, ``laptop``); ``accelerator`` the GPU."""
    import onnxruntime as ort

    return Host(
        label=label,
        hostname=socket.gethostname() or None,
        platform=platform.platform(),
        machine=platform.machine() or None,
        cpu_model=_cpu_model(),
        cpu_cores=os.cpu_count(),
        memory_gib=_memory_gib(),
        accelerator=accelerator,
        onnxruntime=str(ort.__version__),
        python=sys.version.split()[0],
    )


def _rss_kib(key: str) -> int | None:
    value = _proc_field("/proc/self/status", key)
    if value is None or not value.split()[0].isdigit():
        return None
    return int(value.split()[0])


class PeakMemory:
    """How much the process's peak resident memory grows between :meth:`start` and
    :meth:`peak_mib`.

    On Linux the kernel's high-water mark is reset first (``/proc/self/clear_refs``), so
    the figure is this measurement's own; elsewhere the process-wide peak
    (``getrusage``) is used, which only ever grows, so later measurements in the same
    process can read low. ``None`` when neither is available.
    """

    def __init__(self) -> None:
        self._baseline_kib: int | None = None
        self._reset = False

    def start(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._reset = True
        except OSError:
            self._reset = False
        if self._reset:
            self._baseline_kib = _rss_kib("VmRSS")
        else:
            self._baseline_kib = self._max_rss_kib()

    @staticmethod
    def _max_rss_kib() -> int:
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(usage // 1024) if sys.platform == "darwin" else int(usage)

    def peak_mib(self) -> float | None:
        """Growth of the peak resident memory since :meth:`start`, in MiB."""
        if self._baseline_kib is None:
            return None
        peak = _rss_kib("VmHWM") if self._reset else self._max_rss_kib()
        if peak is None:
            return None
        return round(max(peak - self._baseline_kib, 0) / _KIB_PER_MIB, 3)
