"""``tierwise keys`` and ``tierwise bundle``: make signing keys, bearer tokens and model
bundles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tierwise.cli.common import JsonOpt, err_console, out_console, print_json
from tierwise.errors import ConfigError

__all__ = ["bundle_app", "keys_app"]

keys_app = typer.Typer(
    help="Make ed25519 signing keys for bundles and bearer tokens for servers.",
    no_args_is_help=True,
)
bundle_app = typer.Typer(
    help="Make model bundles from ONNX files; a bundle is one model (see `bundle create`).",
    no_args_is_help=True,
)


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


def _append_line(path: Path, line: str) -> None:
    """``line`` at the end of ``path``, made with mode 0600 when it does not exist."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as file:
        if file.tell() > 0:
            with path.open("rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    file.write(b"\n")
        file.write(line.encode() + b"\n")


@keys_app.command("token")
def keys_token(
    client: Annotated[
        str, typer.Option("--client", help="Who the token is for (letters, digits, _.-).")
    ],
    scope: Annotated[
        str,
        typer.Option("--scope", help="Comma-separated scopes: infer, admin, telemetry."),
    ],
    append: Annotated[
        Path | None,
        typer.Option(
            "--append",
            help="Append the hash line to this tokens file (made with mode 0600) "
            "instead of printing it.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a bearer token for a server's --tokens-file.

    The token is printed once, on stdout: store it now, the server keeps only
    its hash line. Without --append the hash line is printed after the token.
    """
    from tierwise.security import hash_line, make_token, parse_scopes

    scopes = parse_scopes(scope, "--scope")
    token, record = make_token(client, scopes)
    line = hash_line(record)
    if append is not None:
        _append_line(append, line)
    if as_json:
        data = {
            "client": record.client,
            "scopes": sorted(record.scopes),
            "id": record.key_id,
            "token": token,
        }
        if append is None:
            data["hash_line"] = line
        else:
            data["appended_to"] = str(append)
        print_json(data)
        return
    err_console.print(
        f"token for {record.client} (scopes {','.join(sorted(record.scopes))}); store it "
        "now: it is shown only this once and the server keeps only its hash",
        markup=False,
        soft_wrap=True,
    )
    print(token)
    if append is None:
        err_console.print("hash line for the server's tokens file:", markup=False)
        print(line)
    else:
        err_console.print(f"hash line appended to {append}", markup=False, soft_wrap=True)


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
