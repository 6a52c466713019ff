"""tierwise: decide, serve and route every ML inference across device, edge and cloud tiers.

Components live in subpackages (``spec``, ``zoo``, ``runtime``, ``protocol``, ``plan``,
``bench``, ``cli``); this top level stays light so ``import tierwise`` is cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
