"""tierwise: decide, serve and route every ML inference across device, edge and cloud tiers.

Components live in subpackages (``spec``, ``zoo``, ``runtime``, ``protocol``, ``plan``,
``bench``, ``cli``); this top level stays light so ``import tierwise`` is cheap.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from tierwise.router.client import Client


def __getattr__(name: str) -> Any:
    # ``tierwise.Client`` without importing onnxruntime and httpx on ``import tierwise``.
    if name == "Client":
        from tierwise.router.client import Client

        return Client
    raise AttributeError(f"module 'tierwise' has no attribute {name!r}")
