"""``tierwise keys``, ``tierwise bundle`` and ``tierwise registry``: make, sign, store,
fetch and check model bundles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tierwise.cli.common import EXIT_USAGE, err_console, out_console, print_json
from tierwise.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.registry import BundleStore, TrustStore

__all__ = ["bundle_app", "keys_app", "registry_app"]

keys_app = typer.Typer(help="Make ed25519 signing keys for bundles.", no_args_is_help=True)
bundle_app = typer.Typer(
    help="Make model bundles from ONNX files; a bundle is one model (see `bundle create`).",
    no_args_is_help=True,
)
registry_app = typer.Typer(
    help="Push, pull, list, show, tag, verify and garbage-collect bundles in a store "
    "(a local folder, or oci://HOST:PORT/PREFIX for an OCI registry). A bundle is one "
    "model; a node that serves several pulls one bundle per model, each on its own.",
    no_args_is_help=True,
)

#: the variable that holds the registry password (its name, never the secret)
PASSWORD_ENV = "TIERWISE_REGISTRY_PASSWORD"  # noqa: S105

JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as JSON.")]
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


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, tag = value.partition("=")
        if not sep or not key or not tag:
            raise ConfigError(option, "KEY=VALUE (e.g. hw=pi5, quant=int8)", value)
        out[key] = tag
    return out


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write NAME.key and NAME.pub.")],
    name: Annotated[str, typer.Option(help="File name of the key pair.")] = "tierwise",
    force: Annotated[bool, typer.Option(help="Overwrite an existing key pair.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make an ed25519 key pair: NAME.key signs (keep it secret, mode 0600), NAME.pub goes
    to every node that should trust the bundles it signs."""
    from tierwise.registry import generate_keys

    pair = generate_keys(out, name, overwrite=force)
    data = {
        "private": str(pair.private_path),
        "public": str(pair.public_path),
        "key_id": pair.key_id,
    }
    if as_json:
        print_json(data)
    else:
        out_console.print(f"key {pair.key_id}: {pair.private_path} (secret), {pair.public_path}")


@bundle_app.command("create")
def bundle_create(
    sources: Annotated[list[Path], typer.Argument(help="ONNX files, or model repository folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
    name: Annotated[str, typer.Option(help="Bundle name (lowercase).")],
    version: Annotated[str, typer.Option(help="Version (an OCI tag: 3, 1.2.0, 2026-11-29).")],
    task: Annotated[str, typer.Option(help="What the model does.")] = "classification",
    description: Annotated[str, typer.Option(help="One line about this version.")] = "",
    parent: Annotated[
        str | None, typer.Option("--parent", help="The version this one replaces.")
    ] = None,
    tag: Annotated[
        list[str], typer.Option("--tag", help="KEY=VALUE tag for every variant (hw=pi5).")
    ] = [],  # noqa: B006 -- typer needs a literal default
    variant_tag: Annotated[
        list[str],
        typer.Option("--variant-tag", help="VARIANT:KEY=VALUE tag for one variant."),
    ] = [],  # noqa: B006
    as_json: JsonOpt = False,
) -> None:
    """Make a bundle folder (manifest + content-addressed blobs) from ONNX files or a
    model repository (DIR/<model>/<version>/model.onnx), signed when pushed. Sources are
    variants of one model, with the same inputs and outputs: a different model (a
    detector beside a classifier) is a bundle of its own (agent.yaml `bundles:`)."""
    from tierwise.registry import create_bundle

    per_variant: dict[str, dict[str, str]] = {}
    for value in variant_tag:
        variant, sep, pair = value.partition(":")
        if not sep:
            raise ConfigError("--variant-tag", "VARIANT:KEY=VALUE", value)
        per_variant.setdefault(variant, {}).update(_pairs([pair], "--variant-tag"))
    manifest = create_bundle(
        sources,
        out,
        name=name,
        version=version,
        task=task,
        description=description,
        tags=_pairs(tag, "--tag"),
        variant_tags=per_variant,
        parent_version=parent,
    )
    if as_json:
        print_json(
            {"dir": str(out), "digest": manifest.digest, **manifest.model_dump(by_alias=True)}
        )
        return
    table = Table(title=f"bundle {manifest.ref} in {out}  ({manifest.digest[:19]})")
    for column in ("variant", "quant", "tags", "accuracy", "size", "digest"):
        table.add_column(column)
    for v in manifest.variants:
        table.add_row(
            v.name,
            v.quantization,
            " ".join(f"{k}={t}" for k, t in sorted(v.tags.items())),
            "-" if v.accuracy is None else f"{v.accuracy * 100:.1f}%",
            f"{v.size_bytes / 1024:.1f} KiB",
            v.digest[:19],
        )
    out_console.print(table)


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
