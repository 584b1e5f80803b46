"""`amploop store info` and `amploop config show`."""

from __future__ import annotations

from amploop.cli._common import JsonFlag, command, config_app, out, print_json, state, store_app
from amploop.registry import Store

# -- store -------------------------------------------------------------------------------------


@store_app.command("info")
@command
def store_info(as_json: JsonFlag = False) -> None:
    """Where state lives, the schema revision, and how many rows each table holds."""
    with Store.open() as store:
        info = store.info()
    if as_json:
        print_json(info.to_dict())
        return
    out.print(f"database   {info.db_url}  ({info.server})", highlight=False)
    out.print(f"artifacts  {info.artifacts_url}", highlight=False)
    out.print(f"schema     revision {info.schema_revision}", highlight=False)
    out.print("rows       " + ", ".join(f"{k} {v}" for k, v in info.counts.items()), highlight=False)


# -- config ------------------------------------------------------------------------------------


@config_app.command("show")
@command
def config_show(as_json: JsonFlag = False) -> None:
    """Print the configuration after file, environment and flags are merged and validated."""
    cfg = state.config()
    if as_json:
        print_json(cfg.to_dict())
        return
    import yaml

    out.print(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(), highlight=False)
