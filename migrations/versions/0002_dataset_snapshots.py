"""dataset snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:46:34.191709
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A snapshot's entries, and the fields that identify it, are write-once: the database itself
# refuses to change them, whatever code or person connects.
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER snapshot_entry_immutable_update BEFORE UPDATE ON snapshot_entry
       BEGIN SELECT RAISE(ABORT, 'snapshot entries are immutable'); END""",
    """CREATE TRIGGER snapshot_entry_immutable_delete BEFORE DELETE ON snapshot_entry
       BEGIN SELECT RAISE(ABORT, 'snapshot entries are immutable'); END""",
    """CREATE TRIGGER dataset_snapshot_immutable_update
       BEFORE UPDATE OF use, filters, merkle_root, entry_count, contributor_count, created_at ON dataset_snapshot
       BEGIN SELECT RAISE(ABORT, 'snapshots are immutable'); END""",
    """CREATE TRIGGER dataset_snapshot_immutable_delete BEFORE DELETE ON dataset_snapshot
       BEGIN SELECT RAISE(ABORT, 'snapshots are immutable'); END""",
]
_POSTGRES_TRIGGERS = [
    """CREATE FUNCTION foundry_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
       END $$""",
    """CREATE TRIGGER snapshot_entry_immutable BEFORE UPDATE OR DELETE ON snapshot_entry
       FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()""",
    """CREATE TRIGGER dataset_snapshot_immutable_update
       BEFORE UPDATE OF use, filters, merkle_root, entry_count, contributor_count, created_at ON dataset_snapshot
       FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()""",
    """CREATE TRIGGER dataset_snapshot_immutable_delete BEFORE DELETE ON dataset_snapshot
       FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()""",
]


def upgrade() -> None:
    op.create_table('dataset_snapshot',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('use', sa.String(length=32), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('merkle_root', sa.String(length=64), nullable=False),
    sa.Column('entry_count', sa.Integer(), nullable=False),
    sa.Column('contributor_count', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_snapshot'))
    )
    with op.batch_alter_table('dataset_snapshot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_snapshot_merkle_root'), ['merkle_root'], unique=False)

    op.create_table('snapshot_entry',
    sa.Column('snapshot_id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('asset_sha256', sa.String(length=64), nullable=False),
    sa.Column('rendition_sha256', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.Uuid(), nullable=False),
    sa.Column('grant_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('contributor_id', sa.Uuid(), nullable=False),
    sa.Column('caption', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], name=op.f('fk_snapshot_entry_asset_id_asset')),
    sa.ForeignKeyConstraint(['contributor_id'], ['contributor.id'], name=op.f('fk_snapshot_entry_contributor_id_contributor')),
    sa.ForeignKeyConstraint(['grant_id'], ['license_grant.id'], name=op.f('fk_snapshot_entry_grant_id_license_grant')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['dataset_snapshot.id'], name=op.f('fk_snapshot_entry_snapshot_id_dataset_snapshot')),
    sa.PrimaryKeyConstraint('snapshot_id', 'asset_id', name=op.f('pk_snapshot_entry'))
    )
    with op.batch_alter_table('snapshot_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_snapshot_entry_contributor_id'), ['contributor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_snapshot_entry_grant_id'), ['grant_id'], unique=False)
    triggers = _POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS snapshot_entry_immutable ON snapshot_entry")
        op.execute("DROP TRIGGER IF EXISTS dataset_snapshot_immutable_update ON dataset_snapshot")
        op.execute("DROP TRIGGER IF EXISTS dataset_snapshot_immutable_delete ON dataset_snapshot")
        op.execute("DROP FUNCTION IF EXISTS foundry_refuse_change()")
    else:
        for name in ("snapshot_entry_immutable_update", "snapshot_entry_immutable_delete",
                     "dataset_snapshot_immutable_update", "dataset_snapshot_immutable_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table('snapshot_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_snapshot_entry_grant_id'))
        batch_op.drop_index(batch_op.f('ix_snapshot_entry_contributor_id'))

    op.drop_table('snapshot_entry')
    with op.batch_alter_table('dataset_snapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_snapshot_merkle_root'))

    op.drop_table('dataset_snapshot')
