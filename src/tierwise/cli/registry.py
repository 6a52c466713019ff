"""``tierwise registry``: store, fetch and check signed model bundles (``tierwise keys``
and ``tierwise bundle``, which make them, are in :mod:`tierwise.cli.bundle`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tierwise.cli.common import EXIT_USAGE, JsonOpt, err_console, out_console, print_json
from tierwise.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.registry import BundleStore, TrustStore

__all__ = ["registry_app"]

registry_app = typer.Typer(
    help="Push, pull, list, show, tag, verify and garbage-collect bundles in a store "
    "(a local folder, or oci://HOST:PORT/PREFIX for an OCI registry). A bundle is one "
    "model; a node that serves several pulls one bundle per model, each on its own.",
    no_args_is_help=True,
)

#: the variable that holds the registry password (its name, never the secret)
PASSWORD_ENV = "TIERWISE_REGISTRY_PASSWORD"  # noqa: S105

StoreOpt = Annotated[
    str,
    typer.Option(
        "--store",
        help="A local store folder, or oci://HOST:PORT/PREFIX for an OCI registry.",
        envvar="TIERWISE_STORE",
    ),
]
PlainHttpOpt = Annotated[
    bool, typer.Option("--plain-http", help="Talk to the OCI registry without TLS.")
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--username",
        help="Registry user: sent as basic auth, or to the token realm of a registry that "
        "uses bearer tokens (GHCR, Harbor, Docker Hub). Without it, public repositories "
        "are read anonymously.",
    ),
]
PasswordEnvOpt = Annotated[
    str,
    typer.Option(
        "--password-env", help="Name of the environment variable holding the registry password."
    ),
]
TrustOpt = Annotated[
    list[Path],
    typer.Option(
        "--trusted-keys",
        help="Public key files (.pub) or folders of them; repeat for several. Required: "
        "nothing is pulled or verified without a key to check its signature.",
    ),
]


def _no_store(store: str | Path) -> None:
    """Exit 2 when a local ``store`` is not there: verbs that only read it never make one
    (only `registry push` does), so a mistyped path is a usage error, not an empty store."""
    from tierwise.registry import LocalStore

    if str(store).startswith("oci://"):
        return
    reason = LocalStore.missing(Path(store))
    if reason is not None:
        err_console.print(f"error: {reason}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)


@contextmanager
def _store(
    store: str, plain_http: bool, username: str | None, password_env: str, *, create: bool = False
) -> Iterator[BundleStore]:
    from tierwise.registry import open_store

    if not create:
        _no_store(store)
    password = os.environ.get(password_env) if username is not None else None
    opened = open_store(
        store, plain_http=plain_http, username=username, password=password, create=create
    )
    try:
        yield opened
    finally:
        opened.close()


def _trust(paths: list[Path]) -> TrustStore:
    from tierwise.registry import TrustStore

    if not paths:
        raise ConfigError("--trusted-keys", "at least one public key file or folder")
    return TrustStore.from_paths(paths)


@registry_app.command("push")
def registry_push(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder made by `bundle create`.")],
    store: StoreOpt,
    key: Annotated[Path, typer.Option("--key", help="Private key (.key) to sign with.")],
    tag: Annotated[
        list[str], typer.Option("--tag", help="Movable tag to point at this version (stable).")
    ] = [],  # noqa: B006
    plain_http: PlainHttpOpt = False,
    username: UserOpt = None,
    password_env: PasswordEnvOpt = PASSWORD_ENV,
    as_json: JsonOpt = False,
) -> None:
    """Sign a bundle and push it; blobs the store already holds are not sent again."""
    from tierwise.registry import Signer, push, read_bundle_dir

    with _store(store, plain_http, username, password_env, create=True) as target:
        report = push(read_bundle_dir(bundle), target, Signer.from_file(key), tags=tag)
    if as_json:
        print_json(report.to_dict())
    else:
        out_console.print(
            f"pushed {report.name}:{report.version} ({report.digest[:19]}) signed by "
            f"{report.key_id}: {len(report.uploaded)} blob(s) sent "
            f"({report.uploaded_bytes} bytes), {len(report.skipped)} already there"
        )


@registry_app.command("pull")
def registry_pull(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION, NAME:TAG or NAME@sha256:...")],
    store: StoreOpt,
    into: Annotated[Path, typer.Option("--into", help="Local store folder to pull into.")],
    trusted_keys: TrustOpt = [],  # noqa: B006
    plain_http: PlainHttpOpt = False,
    username: UserOpt = None,
    password_env: PasswordEnvOpt = PASSWORD_ENV,
    as_json: JsonOpt = False,
) -> None:
    """Pull a bundle version into a local store, checking sizes, digests and the
    signature; nothing is kept unless every check passes."""
    from tierwise.registry import LocalStore, parse_ref, pull

    name, reference = parse_ref(ref)
    trust = _trust(trusted_keys)
    with _store(store, plain_http, username, password_env) as source:
        local = LocalStore(into)
        try:
            report = pull(source, name, reference, local, trust)
        finally:
            local.close()
    if as_json:
        print_json(report.to_dict())
    else:
        out_console.print(
            f"pulled {report.manifest.ref} ({report.digest[:19]}), signed by {report.key_id}: "
            f"{len(report.fetched)} blob(s) fetched, {len(report.reused)} reused"
        )


@registry_app.command("list")
def registry_list(
    store: StoreOpt,
    name: Annotated[str | None, typer.Argument(help="Only this bundle.")] = None,
    plain_http: PlainHttpOpt = False,
    username: UserOpt = None,
    password_env: PasswordEnvOpt = PASSWORD_ENV,
    as_json: JsonOpt = False,
) -> None:
    """List bundle versions with their tags."""
    with _store(store, plain_http, username, password_env) as source:
        rows = source.list_bundles(name)
    if as_json:
        print_json({"store": store, "bundles": [r.to_dict() for r in rows]})
        return
    table = Table(title=f"bundles in {store}")
    for column in ("name", "version", "tags", "variants", "size", "created", "digest"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.name, r.version, ", ".join(r.tags), str(len(r.variants)),
            f"{r.size_bytes / 1024:.1f} KiB", r.created_at, r.digest[:19],
        )  # fmt: skip
    out_console.print(table)


@registry_app.command("show")
def registry_show(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION, NAME:TAG or NAME@sha256:...")],
    store: StoreOpt,
    plain_http: PlainHttpOpt = False,
    username: UserOpt = None,
    password_env: PasswordEnvOpt = PASSWORD_ENV,
    as_json: JsonOpt = False,
) -> None:
    """Show one version's manifest (not verified: use `registry verify` for that)."""
    from tierwise.registry import MAX_MANIFEST_BYTES, parse_manifest, parse_ref

    name, reference = parse_ref(ref)
    with _store(store, plain_http, username, password_env) as source:
        stored = source.get_manifest(
            name, source.resolve(name, reference), limit_bytes=MAX_MANIFEST_BYTES
        )
    manifest = parse_manifest(stored.manifest_bytes)
    data = {
        "digest": stored.digest,
        "signed": stored.signature is not None,
        **manifest.model_dump(by_alias=True),
    }
    if as_json:
        print_json(data)
        return
    out_console.print(
        f"{manifest.ref}  {stored.digest}\n  task {manifest.task}, created {manifest.created_at}, "
        f"parent {manifest.parent_version or '-'}, "
        f"{'signed' if stored.signature else 'UNSIGNED'}\n"
        f"  inputs  {', '.join(f'{t.name} {t.datatype}{t.shape}' for t in manifest.inputs)}\n"
        f"  outputs {', '.join(f'{t.name} {t.datatype}{t.shape}' for t in manifest.outputs)}"
    )
    for v in manifest.variants:
        tags = " ".join(f"{k}={t}" for k, t in sorted(v.tags.items()))
        out_console.print(
            f"  - {v.name}: {v.quantization} {v.runtime} {tags} {v.size_bytes} bytes {v.digest}"
        )


@registry_app.command("tag")
def registry_tag(
    name: Annotated[str, typer.Argument(help="Bundle name.")],
    version: Annotated[str, typer.Argument(help="Version to point the tag at.")],
    tag: Annotated[str, typer.Argument(help="Movable tag (stable, canary).")],
    store: StoreOpt,
    plain_http: PlainHttpOpt = False,
    username: UserOpt = None,
    password_env: PasswordEnvOpt = PASSWORD_ENV,
) -> None:
    """Point a movable tag at a version (versions themselves never move)."""
    with _store(store, plain_http, username, password_env) as source:
        source.set_tag(name, tag, version)
    out_console.print(f"{name}:{tag} -> {version}")


@registry_app.command("verify")
def registry_verify(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION, NAME:TAG or NAME@sha256:...")],
    store: StoreOpt,
    trusted_keys: TrustOpt = [],  # noqa: B006
    plain_http: PlainHttpOpt = False,
    username: UserOpt = None,
    password_env: PasswordEnvOpt = PASSWORD_ENV,
    as_json: JsonOpt = False,
) -> None:
    """Re-read and re-hash every blob of a version and check its signature. Exit 1 names
    the check that failed."""
    from tierwise.registry import parse_ref, verify

    name, reference = parse_ref(ref)
    trust = _trust(trusted_keys)
    with _store(store, plain_http, username, password_env) as source:
        report = verify(source, name, reference, trust)
    if as_json:
        print_json(report.to_dict())
    else:
        out_console.print(
            f"ok: {report.manifest.ref} ({report.digest[:19]}) signed by {report.key_id}, "
            f"{report.blobs} blob(s), {report.checked_bytes} bytes checked"
        )


@registry_app.command("gc")
def registry_gc(
    store: StoreOpt,
    as_json: JsonOpt = False,
) -> None:
    """Delete blobs no version refers to and partial downloads (local stores; an OCI
    registry collects its own garbage, e.g. `registry garbage-collect`)."""
    from tierwise.registry import LocalStore

    if store.startswith("oci://"):
        raise ConfigError(
            "--store", "a local store folder (OCI registries run their own garbage collection)"
        )
    _no_store(store)
    local = LocalStore(Path(store), create=False)
    try:
        report = local.gc()
    finally:
        local.close()
    if as_json:
        print_json(report.to_dict())
    else:
        out_console.print(
            f"removed {len(report.removed_blobs)} blob(s), {report.freed_bytes} bytes freed, "
            f"{report.removed_partials} partial file(s)"
        )
