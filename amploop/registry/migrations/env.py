"""Alembic environment: runs on the connection the store hands over (no alembic.ini)."""

import os
import socket

from alembic import context

from amploop.registry.tables import VERSION_TABLE, Base, SchemaHistory, utcnow

connection = context.config.attributes["connection"]


def _record_step(*, ctx, step, heads, run_args):  # noqa: ARG001 - alembic's callback signature
    if step.is_upgrade:
        ctx.connection.execute(
            SchemaHistory.__table__.insert().values(
                revision=step.up_revision_id,
                applied_at=utcnow(),
                pid=os.getpid(),
                host=socket.gethostname(),
            )
        )


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them
    on_version_apply=_record_step,
)
with context.begin_transaction():
    context.run_migrations()
