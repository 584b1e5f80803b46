"""The store's database engine: one SQLAlchemy implementation for both backends, and its migrations.

The backend is chosen by the URL's scheme:

- ``sqlite:///path/amploop.db`` (the default): WAL mode, so readers never block the writer;
  every write transaction starts with ``BEGIN IMMEDIATE``, so two processes never both read
  and then fail to upgrade to a write lock; a busy timeout makes writers queue instead of fail.
- ``postgresql+psycopg://user@host/db``: for teams; several servers and trainers share it.

Opening an engine applies the alembic migrations that are missing. Concurrent first opens are
serialised (a lock file next to the SQLite file; a transaction-scoped advisory lock on
PostgreSQL), and each applied step is recorded in ``schema_history``, so it is visible that
every step ran exactly once. Backend errors are translated into :class:`StoreError` here, at
the boundary, with the URL's password masked.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from amploop.errors import StoreError
from amploop.registry.tables import VERSION_TABLE
from amploop.workspace import Workspace, mask_url

__all__ = ["MAX_ROWS", "head_revision", "open_engine", "store_error"]

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same for every amploop process on the server.
_PG_MIGRATION_LOCK_KEY = 0x616D706C6F6F70  # "amploop"
_SQLITE_BUSY_TIMEOUT_S = 60
# A LIMIT larger than any table; also keeps a huge --limit from overflowing the driver's integer.
MAX_ROWS = 2**62


def open_engine(ws: Workspace) -> Engine:
    """An engine for the workspace's database, migrated to the newest schema."""
    engine = _create_engine(ws)
    try:
        _migrate(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise store_error(exc, ws.db_url) from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def store_error(exc: SQLAlchemyError, db_url: str) -> StoreError:
    """The :class:`StoreError` that reports a backend error, with the URL's password masked."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return StoreError(
        f"database error at {mask_url(db_url)}: {reason}; check that the database server is "
        "running and reachable and that AMPLOOP_DB_URL is right"
    )


def head_revision() -> str:
    return str(ScriptDirectory.from_config(_alembic_config(None)).get_current_head())


def _create_engine(ws: Workspace) -> Engine:
    masked = mask_url(ws.db_url)
    try:
        url = make_url(ws.db_url)
    except ArgumentError:
        raise StoreError(
            f"{masked} is not a database URL; set AMPLOOP_DB_URL to sqlite:///path/amploop.db "
            "or postgresql+psycopg://user@host:5432/db"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend in ("postgresql", "postgres"):
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        try:
            return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        except NoSuchModuleError as exc:
            raise StoreError(f"{masked}: {exc}; use postgresql+psycopg://") from None
    raise StoreError(f"{masked}: unsupported database '{backend}'; amploop stores state in SQLite or PostgreSQL")


def _sqlite_engine(url: Any) -> Engine:
    database = url.database
    if database and database != ":memory:":
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for {database}: {exc}") from None
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that "begin" below decides the BEGIN kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe in WAL mode; fsync at checkpoints
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("amploop_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _alembic_config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _migrate(engine: Engine) -> None:
    head = head_revision()
    if _current_revision(engine) == head:
        return
    database = engine.url.database
    sqlite_file = engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
    lock = FileLock(f"{database}.migrate.lock") if sqlite_file else nullcontext()
    with lock:
        if sqlite_file:
            # WAL must be switched on outside a transaction; it then persists in the file.
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA journal_mode=WAL")
            finally:
                raw.close()
        with engine.connect().execution_options(amploop_write=True) as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                # Held to the end of this transaction: concurrent openers wait, then find it done.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY})
            command.upgrade(_alembic_config(conn), "head")
