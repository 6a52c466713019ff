"""The Typer application and the entry point that maps errors to exit codes."""

from __future__ import annotations

import typer
from pydantic import BaseModel, ValidationError

from tierwise import __version__
from tierwise.cli.agent import agent_app
from tierwise.cli.bench import bench_app
from tierwise.cli.bundle import bundle_app, keys_app
from tierwise.cli.calibrate import calibrate
from tierwise.cli.common import EXIT_FAILURE, EXIT_USAGE, err_console
from tierwise.cli.control import control_app
from tierwise.cli.demo import demo
from tierwise.cli.deploy import deploy_app
from tierwise.cli.drift import drift_app
from tierwise.cli.gateway import gateway, route_app
from tierwise.cli.link import link
from tierwise.cli.observe import observe_app
from tierwise.cli.plan import plan_app
from tierwise.cli.registry import registry_app
from tierwise.cli.report import report
from tierwise.cli.rollout import rollout_app
from tierwise.cli.serve import serve
from tierwise.cli.simulate import simulate
from tierwise.cli.validate import validate
from tierwise.cli.zoo import zoo_app
from tierwise.errors import (
    BundleError,
    ConfigError,
    PlanError,
    ProfileError,
    ReportError,
    RouteError,
    SpecError,
    TierwiseError,
)
from tierwise.settings_errors import settings_error

__all__ = ["app", "main"]

app = typer.Typer(
    name="tierwise",
    help="Decide, serve and route every ML inference across device, edge and cloud tiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(validate)
app.command()(demo)
app.command()(serve)
app.command()(calibrate)
app.command()(gateway)
app.add_typer(route_app, name="route")
app.add_typer(zoo_app, name="zoo")
app.add_typer(bench_app, name="bench")
app.add_typer(plan_app, name="plan")
app.command()(report)
app.add_typer(keys_app, name="keys")
app.add_typer(bundle_app, name="bundle")
app.add_typer(registry_app, name="registry")
app.add_typer(agent_app, name="agent")
app.add_typer(observe_app, name="observe")
app.add_typer(drift_app, name="drift")
app.add_typer(control_app, name="control")
app.add_typer(rollout_app, name="rollout")
app.add_typer(deploy_app, name="deploy")
app.command()(link)
app.command()(simulate)


def _version(value: bool) -> None:
    if value:
        print(f"tierwise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Decide, serve and route every ML inference across device, edge and cloud tiers."""


def main() -> None:
    """Console entry point: a tierwise error is one line on stderr and an exit code, never a
    traceback."""
    try:
        app(standalone_mode=True)
    except (
        SpecError,
        ConfigError,
        RouteError,
        BundleError,
        PlanError,
        ProfileError,
        ReportError,
    ) as exc:
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise SystemExit(EXIT_USAGE) from None
    except TierwiseError as exc:
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise SystemExit(EXIT_FAILURE) from None
    except ValidationError as exc:  # settings built from options, checked by pydantic
        problem = settings_error("options", exc, BaseModel)
        err_console.print(f"error: {problem}", markup=False, soft_wrap=True)
        raise SystemExit(EXIT_USAGE) from None
    except OSError as exc:  # a path that cannot be read or written
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise SystemExit(EXIT_USAGE) from None
    except RecursionError:
        err_console.print("error: the input nests too deeply (a recursive YAML alias?)")
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise SystemExit(130) from None
