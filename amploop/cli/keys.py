"""`amploop keys create|list|revoke`: API keys for the prediction server (see :mod:`amploop.serve.auth`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from amploop.cli._common import JsonFlag, app, command, err, out, print_json
from amploop.registry import Store

keys_app = typer.Typer(help="API keys for the prediction server: made once, kept hashed.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@command
def keys_create(
    role: Annotated[str, typer.Option(help="reader (predict and read) or operator (also feedback and admin).")],
    name: Annotated[str, typer.Option(help="What the key is for, e.g. the client's name.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Make an API key; its token is printed now and never again (the store keeps only a hash)."""
    from amploop.serve.auth import create_api_key

    with Store.open() as store:
        created = create_api_key(store, role=role, name=name)
    if as_json:
        print_json(created.to_dict())
        return
    out.print(created.token, highlight=False)
    key = created.record
    err.print(
        f"API key {key.id} (role {key.role}) created: the token above is shown only now; "
        "keep it in a secret store, amploop keeps only its hash",
        highlight=False,
        markup=False,
    )


@keys_app.command("list")
@command
def keys_list(as_json: JsonFlag = False) -> None:
    """Every API key: id, name, role, when and by whom it was made, and whether it is revoked (no secrets)."""
    with Store.open() as store:
        keys = store.list_api_keys()
    if as_json:
        print_json({"keys": [k.to_dict() for k in keys]})
        return
    if not keys:
        out.print("no API keys; `amploop keys create --role reader` makes one", highlight=False)
        return
    table = Table(title="API keys (times in UTC)")
    table.add_column("id", no_wrap=True, min_width=12)  # never cut: it is what `keys revoke` takes
    for column in ("name", "role", "created", "created by", "revoked"):
        table.add_column(column)
    for k in keys:
        revoked = "-" if k.revoked_at is None else f"{k.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(k.id, k.name, k.role, f"{k.created_at:%Y-%m-%d %H:%M}", k.created_by, revoked)
    out.print(table)


@keys_app.command("revoke")
@command
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id, as `amploop keys list` shows it.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key: servers refuse it within their key cache period (5 s by default)."""
    from amploop.serve.auth import key_id_of

    with Store.open() as store:
        result = store.revoke_api_key(key_id_of(key_id), reason=reason).to_dict()
    if as_json:
        print_json(result)
        return
    out.print(f"API key {result['id']} revoked at {result['revoked_at']}", highlight=False)
