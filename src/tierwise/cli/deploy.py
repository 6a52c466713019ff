"""``tierwise deploy``: put a plan onto Kubernetes (``k8s``) or an edge box's systemd."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from tierwise.cli.common import JsonOpt, out_console, print_json
from tierwise.settings_errors import settings_error

if TYPE_CHECKING:
    from tierwise.deploy import DeploySettings

__all__ = ["deploy_app"]

deploy_app = typer.Typer(
    help="Render a plan for the engines a fleet already runs: `k8s` writes a Kustomize "
    "base and overlays (KServe InferenceServices for cloud tiers, agent DaemonSets for "
    "KubeEdge, OpenYurt or k3s edge nodes, the gateway, ConfigMaps, Prometheus Operator "
    "monitoring, Flagger or Argo Rollouts canaries with the rollout gates); `systemd` "
    "writes a hardened unit and agent.yaml for an edge box without Kubernetes. Secrets "
    "are referenced, never written.",
    no_args_is_help=True,
)

PlanArg = Annotated[Path, typer.Argument(help="plan.yaml to render.")]
OutOpt = Annotated[Path, typer.Option("-o", "--out", help="Folder to write into.")]
ImageOpt = Annotated[
    str | None,
    typer.Option("--image", help="Image of tierwise (default ghcr.io/tierwise/tierwise:VERSION)."),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option("--registry", help="oci://HOST/PREFIX edge agents sync bundles from."),
]


def _settings(**given: Any) -> DeploySettings:
    from tierwise.deploy import DeploySettings

    try:
        return DeploySettings.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise settings_error("deploy options", exc, DeploySettings) from exc


def _report(written: list[Path], out: Path, as_json: bool) -> None:
    if as_json:
        print_json({"out": str(out), "files": [str(p.relative_to(out)) for p in written]})
        return
    out_console.print(f"wrote {len(written)} files to {out}")


@deploy_app.command()
def k8s(
    plan: PlanArg,
    out: OutOpt,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="Fleet spec: replicas, CPU, memory and GPUs per tier."),
    ] = None,
    edge: Annotated[
        str, typer.Option("--edge", help="Edge nodes: kubeedge | openyurt | k3s.")
    ] = "k3s",
    progressive: Annotated[
        str,
        typer.Option(
            "--progressive",
            help="Cloud tier canaries: flagger | argo | none (none: KServe InferenceServices).",
        ),
    ] = "none",
    runtime: Annotated[
        str, typer.Option("--runtime", help="Cloud tier server: tierwise | triton.")
    ] = "tierwise",
    storage_uri: Annotated[
        str | None,
        typer.Option(
            "--storage-uri",
            help="oci:// or s3:// URI of a tier's bundle; {tier} and {model} are filled in.",
        ),
    ] = None,
    image: ImageOpt = None,
    registry: RegistryOpt = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Namespace of the production overlay.")
    ] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate", help="Rollout gate NAME=LIMIT or NAME=off (as tierwise rollout); repeatable."
        ),
    ] = None,
    canary_percent: Annotated[
        int | None,
        typer.Option(
            "--canary-percent",
            help="KServe canaryTrafficPercent while a rollout runs (--progressive none).",
        ),
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="Name of the Secret pods read keys of.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a Kustomize tree for PLAN into OUT: base/ and overlays/{staging,production}.
    Apply with `kubectl apply -k OUT/overlays/production`."""
    from tierwise.deploy import render_k8s, write_tree
    from tierwise.planfile.load import load_plan
    from tierwise.spec import load_spec

    settings = _settings(
        edge=edge, progressive=progressive, runtime=runtime, storage_uri=storage_uri,
        image=image, registry=registry, namespace=namespace, gates=tuple(gate or ()),
        canary_traffic_percent=canary_percent, secret_name=secret,
    )  # fmt: skip
    loaded = load_plan(plan, check_files=False)  # the models are not run here
    fleet = load_spec(spec) if spec is not None else None
    written = write_tree(render_k8s(loaded, settings, fleet), out)
    _report(written, out, as_json)


@deploy_app.command()
def systemd(
    plan: PlanArg,
    node: Annotated[str, typer.Option("--node", help="The node's name.")],
    out: OutOpt,
    tier: Annotated[
        str | None,
        typer.Option("--tier", help="The edge tier it serves (default: the plan's only one)."),
    ] = None,
    executable: Annotated[
        str, typer.Option("--exec", help="Absolute path of tierwise on the box.")
    ] = "/usr/local/bin/tierwise",
    image: ImageOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write tierwise-agent-NODE.service, agent.yaml and plan.yaml for one edge box into
    OUT. Install the unit in /etc/systemd/system, the YAML files in /etc/tierwise, and the
    node's tokens in /etc/tierwise/agent.env."""
    from tierwise.deploy import render_systemd, write_tree
    from tierwise.planfile.load import load_plan

    settings = _settings(image=image, registry=registry)
    loaded = load_plan(plan, check_files=False)
    files = render_systemd(loaded, node, settings, tier=tier, executable=executable)
    _report(write_tree(files, out), out, as_json)
