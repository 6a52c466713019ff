"""``tierwise rollout``: move a bundle version through the fleet in stages, with gates and
automatic rollback, through a running control plane."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tierwise.cli.common import EXIT_FAILURE, JsonOpt, as_flag, out_console, print_json
from tierwise.cli.control import (
    DEFAULT_CONTROL,
    DEFAULT_TOKEN_ENV,
    CaOpt,
    ControlOpt,
    TokenEnvOpt,
    control_client,
    split_target,
)
from tierwise.errors import ConfigError

__all__ = ["rollout_app"]

rollout_app = typer.Typer(
    help="Staged rollouts through the control plane: `start BUNDLE:VERSION --selector hw=pi5 "
    "--stages canary,10,50,100 --interval 30s`. The canary pool (nodes labelled "
    "canary=true) goes first, then each percentage of the selected nodes; each stage is "
    "analysed once per interval against the nodes still on the previous version (p99 "
    "latency ratio, error-rate delta, agreement with the cloud tier, energy per inference, "
    "fallback rate). A gate failing --threshold analyses in a row rolls the cohort back "
    "automatically; `abort` does it at once.",
    no_args_is_help=True,
)

IdArg = Annotated[str, typer.Argument(help="The rollout's id (`tierwise rollout list`).")]


def _print(doc: dict[str, Any]) -> None:
    from tierwise.control.render import rollout_lines

    out_console.print("\n".join(rollout_lines(doc)), markup=False, soft_wrap=True)


#: the flags of `rollout start` by the request field each sets (errors name the flag)
_FLAGS = {
    "bundle": "BUNDLE:VERSION", "ref": "BUNDLE:VERSION", "selector": "--selector",
    "canary_selector": "--canary-selector", "stages": "--stages", "interval_s": "--interval",
    "stage_intervals_s": "--stage-interval", "threshold": "--threshold",
    "min_requests": "--min-requests", "gates": "--gate", "gate": "--gate", "reason": "--reason",
}  # fmt: skip


@rollout_app.command("start")
def start(
    target: Annotated[str, typer.Argument(help="BUNDLE:VERSION (or tag, or sha256 digest).")],
    selector: Annotated[
        str, typer.Option("--selector", "-l", help="Label selector of the nodes, e.g. hw=pi5.")
    ] = "",
    stages: Annotated[
        str, typer.Option("--stages", help="canary, then ascending percentages ending at 100.")
    ] = "canary,10,50,100",
    interval: Annotated[
        str, typer.Option("--interval", help="Analysis interval of each stage: 30s, 2m, 500ms.")
    ] = "30s",
    stage_interval: Annotated[
        list[str] | None,
        typer.Option(
            "--stage-interval", help="A stage's own interval, STAGE=DURATION (canary=10s, 50=2m)."
        ),
    ] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            help="NAME=LIMIT overriding a default gate (p99_ratio=1.5, "
            "error_rate_delta=0.01, agreement_delta=-0.05, energy_ratio=1.3, "
            "fallback_delta=0.05); NAME=off disables one.",
        ),
    ] = None,
    threshold: Annotated[
        int, typer.Option("--threshold", help="Failed analyses in a row that roll back.")
    ] = 2,
    min_requests: Annotated[
        int, typer.Option("--min-requests", help="Requests per cohort for a conclusive analysis.")
    ] = 20,
    canary_selector: Annotated[
        str, typer.Option("--canary-selector", help="Which selected nodes form the canary pool.")
    ] = "canary=true",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (for the audit log).")] = None,
    control: ControlOpt = DEFAULT_CONTROL,
    token_env: TokenEnvOpt = DEFAULT_TOKEN_ENV,
    ca: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a rollout; refused before any node moves when the version is not a signed,
    pushed bundle, the selector matches nothing or another rollout covers the nodes."""
    from tierwise.control.gates import gates_from
    from tierwise.control.spec import RolloutRequest, parse_duration, parse_stages

    bundle, ref = split_target(target)
    stage_list = parse_stages(stages)
    interval_s = parse_duration(interval, "--interval")
    per_stage = None
    if stage_interval:
        names = [str(s).lower() for s in stage_list]
        given = {}
        for item in stage_interval:
            name, _, value = item.partition("=")
            name = name.strip().rstrip("%").lower()
            if name not in names:
                raise ConfigError(
                    "--stage-interval", f"STAGE=DURATION with STAGE one of {', '.join(names)}",
                    item,
                )  # fmt: skip
            given[name] = parse_duration(value, "--stage-interval")
        per_stage = [given.get(name, interval_s) for name in names]
    try:
        chosen = gates_from(gate or [])
        request = RolloutRequest.from_doc(
            {
                "bundle": bundle,
                "ref": ref,
                "selector": selector,
                "canary_selector": canary_selector,
                "stages": stage_list,
                "interval_s": interval_s,
                "stage_intervals_s": per_stage,
                "threshold": threshold,
                "min_requests": min_requests,
                "gates": [{"name": g.name, "limit": g.limit} for g in chosen],
                "reason": reason,
            }
        )
    except ConfigError as exc:  # the field a flag set: name the flag
        raise as_flag(exc, _FLAGS) from exc
    with control_client(control, token_env, ca) as client:
        doc = client.start(request.model_dump(mode="json"))
    print_json(doc) if as_json else _print(doc)


@rollout_app.command("status")
def status(
    rollout_id: IdArg,
    control: ControlOpt = DEFAULT_CONTROL,
    token_env: TokenEnvOpt = DEFAULT_TOKEN_ENV,
    ca: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Where a rollout stands: stage, cohort, last analysis with each gate's numbers; exit
    1 when it failed or was aborted."""
    with control_client(control, token_env, ca) as client:
        doc = client.rollout(rollout_id)
    print_json(doc) if as_json else _print(doc)
    if doc["state"] in ("failed", "aborted"):
        raise typer.Exit(EXIT_FAILURE)


@rollout_app.command("list")
def list_rollouts(
    active: Annotated[bool, typer.Option("--active", help="Only running or paused ones.")] = False,
    control: ControlOpt = DEFAULT_CONTROL,
    token_env: TokenEnvOpt = DEFAULT_TOKEN_ENV,
    ca: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rollouts, newest first."""
    with control_client(control, token_env, ca) as client:
        doc = client.call("GET", "/v1/rollouts", active="1" if active else None)
    if as_json:
        print_json(doc)
        return
    for item in doc["rollouts"]:
        out_console.print(
            f"{item['id']:<40} {item['bundle']}:{item['version']:<12} {item['state']:<10} "
            f"{item['stage_name']}",
            markup=False,
            soft_wrap=True,
        )
    count = len(doc["rollouts"])
    out_console.print(f"{count} rollout(s){' running or paused' if active else ''}", markup=False)


def _action(action: str, help_text: str) -> None:
    def command(
        rollout_id: IdArg,
        reason: Annotated[
            str | None, typer.Option("--reason", help="Why (an abort keeps it in the audit log).")
        ] = None,
        control: ControlOpt = DEFAULT_CONTROL,
        token_env: TokenEnvOpt = DEFAULT_TOKEN_ENV,
        ca: CaOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        with control_client(control, token_env, ca) as client:
            doc = client.act(rollout_id, action, reason)
        print_json(doc) if as_json else _print(doc)

    command.__doc__ = help_text
    rollout_app.command(action)(command)


_action("pause", "Hold a rollout where it is: no analysis, no next stage.")
_action("resume", "Go on with a paused rollout.")
_action("promote", "Move every selected node to the new version now, skipping the analysis left.")
_action("abort", "Send every node the rollout moved back to its previous version at once.")
