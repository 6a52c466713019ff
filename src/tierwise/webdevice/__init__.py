"""The device tier in the browser: what the gateway serves to pages running
``tierwise-device`` (the JavaScript module in ``web/``): the demo page and the runtime,
each workload's device settings derived from the plan, and its verified device model."""

from tierwise.webdevice.models import PAGE_RULES, DeviceModel, DeviceModels
from tierwise.webdevice.page import WEB_DIR, DevicePage, Skips, device_settings

__all__ = [
    "PAGE_RULES",
    "WEB_DIR",
    "DeviceModel",
    "DeviceModels",
    "DevicePage",
    "Skips",
    "device_settings",
]
