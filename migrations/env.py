"""Alembic environment: migrations run against the URL the foundry's settings (or caller) name."""

from alembic import context

from foundry.db import make_engine
from foundry.models import Base

config = context.config


def render_item(type_, obj, autogen_context):
    """Migrations stay static: the app's UTC wrapper type is written as a plain timezone DateTime."""
    from foundry.db import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False

target_metadata = Base.metadata


def run_with(connection) -> None:
    """Run the migrations on ``connection``. On SQLite, a batch migration copies a table, drops the
    original and renames the copy; rows of other tables that reference it would refuse the drop, so
    foreign keys are off while migrating (as Alembic advises) and checked before they go back on."""
    foreign_keys_off = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if foreign_keys_off:  # a no-op inside a transaction
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          render_item=render_item)
        with context.begin_transaction():
            context.run_migrations()
        if foreign_keys_off:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
    finally:
        if foreign_keys_off:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        run_with(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
