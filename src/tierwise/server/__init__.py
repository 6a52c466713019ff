"""The tier server: an Open Inference Protocol (V2) server with dynamic batching, hot swap,
admission control and Prometheus metrics."""

from tierwise.outbox.idempotency import IdempotencyStore
from tierwise.server.app import TierServer, create_app, serve
from tierwise.server.batching import Batcher, BatcherSettings, merge, split
from tierwise.server.manager import ModelManager
from tierwise.server.settings import ModelConfig, ServerSettings, load_yaml_settings

__all__ = [
    "Batcher",
    "BatcherSettings",
    "IdempotencyStore",
    "ModelConfig",
    "ModelManager",
    "ServerSettings",
    "TierServer",
    "create_app",
    "load_yaml_settings",
    "merge",
    "serve",
    "split",
]
