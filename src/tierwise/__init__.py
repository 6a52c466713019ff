"""tierwise: decide, serve and route every ML inference across device, edge and cloud tiers.

The map. Each line below is a box: a package (or a top-level module) and what it holds.
Boxes stand in layers, the highest first; a box imports only from layers below its own,
never from a box beside it, so every arrow points down and no import cycle can form.
``tests/test_import_graph.py`` reads this drawing and checks every import against it,
lazy ones included::

    12  cli              the ``tierwise`` command, one verb per task (``__main__`` runs it)
         v
    11  demo             the demo's story: zoo, profiles, plan, servers, replay, report
         v
    10  report           the one-page report of a plan: tables and plots
         v
     9  calibrate        cascade thresholds and costs measured on evaluation data
        deploy           the plan on Kubernetes (KServe, KubeEdge, OpenYurt, k3s) and systemd
        sim              the fleet simulator: the live policy on simulated traffic and faults
         v
     8  plan             decision matrix, cost model, placement optimizer, plan.yaml writer
        control          the fleet control plane: nodes, desired versions, staged rollouts
         v
     7  bench            measured profiles of models and live tiers, for the planner
        agent            the edge agent: a node's server, router, outbox and bundle sync
        observe          the fleet's dashboard, alert rules, scrape config and status view
         v
     6  router           the cascade: tiers, the pure policy, the router, client, gateway
        server           the tier server: V2 over ASGI, batching, hot swap, metrics
         v
     5  webdevice        the device tier in the browser: the page, its settings and model
         v
     4  zoo              the model family (tiny, small, large) the demo and tests use
        registry         signed, content-addressed model bundles; local store or OCI
        outbox           the durable queue for deferred work and unreachable tiers
        link             a user-space link emulator: round trips, bandwidth, partitions
         v
     3  runtime          the Backend contract, the onnxruntime backend, warm-up
        http             the ASGI routing and the one HTTP client with its transports
        planfile         the plan file the planner writes and the router reads
        telemetry        samples of the requests the fleet served
         v
     2  protocol         Open Inference Protocol (V2) wire types and the numpy codec
        spec             the fleet spec as data, and the privacy and residency rules
        security         scoped bearer tokens, TLS and mutual TLS, exposure checks
         v
     1  escalation       escalation rules: how sure a tier's answer is, from its outputs
        settings_errors  one clear line for settings that pydantic refused
        yaml_limits      YAML whose aliases cannot explode
         v
     0  errors           the one error tree
        database         the one way tierwise opens a SQLite file

This top level stays light so ``import tierwise`` is cheap: it holds ``__version__``,
which any box may import, and gives ``tierwise.Client`` (:mod:`tierwise.router.client`)
only when asked for it.
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
