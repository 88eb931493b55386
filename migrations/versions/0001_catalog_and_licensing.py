"""catalog and licensing

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 10:31:28.045151
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('catalog_import',
    sa.Column('source', sa.String(length=1000), nullable=False),
    sa.Column('source_format', sa.String(length=32), nullable=False),
    sa.Column('source_sha256', sa.String(length=64), nullable=True),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('rows_imported', sa.Integer(), nullable=False),
    sa.Column('rows_unchanged', sa.Integer(), nullable=False),
    sa.Column('rows_rejected', sa.Integer(), nullable=False),
    sa.Column('contributors_created', sa.Integer(), nullable=False),
    sa.Column('near_duplicates', sa.Integer(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_import'))
    )
    op.create_table('contributor',
    sa.Column('display_name', sa.String(length=300), nullable=False),
    sa.Column('external_ref', sa.String(length=400), nullable=False),
    sa.Column('payout_identity', sa.String(length=400), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contributor')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_contributor_external_ref'))
    )
    op.create_table('asset',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('phash', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('byte_size', sa.Integer(), nullable=False),
    sa.Column('rendition_sha256', sa.String(length=64), nullable=False),
    sa.Column('caption', sa.Text(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('source_ref', sa.String(length=1000), nullable=False),
    sa.Column('embedded_rights', sa.JSON(), nullable=False),
    sa.Column('contributor_id', sa.Uuid(), nullable=False),
    sa.Column('import_id', sa.Uuid(), nullable=False),
    sa.Column('near_duplicate_of_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contributor_id'], ['contributor.id'], name=op.f('fk_asset_contributor_id_contributor')),
    sa.ForeignKeyConstraint(['import_id'], ['catalog_import.id'], name=op.f('fk_asset_import_id_catalog_import')),
    sa.ForeignKeyConstraint(['near_duplicate_of_id'], ['asset.id'], name=op.f('fk_asset_near_duplicate_of_id_asset')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_asset')),
    sa.UniqueConstraint('sha256', name=op.f('uq_asset_sha256'))
    )
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.create_index('ix_asset_contributor_id', ['contributor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_asset_import_id'), ['import_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_asset_phash'), ['phash'], unique=False)
        batch_op.create_index(batch_op.f('ix_asset_source_ref'), ['source_ref'], unique=False)

    op.create_table('license_grant',
    sa.Column('asset_id', sa.Uuid(), nullable=False),
    sa.Column('license_code', sa.String(length=64), nullable=False),
    sa.Column('license_name', sa.String(length=300), nullable=False),
    sa.Column('license_url', sa.String(length=1000), nullable=False),
    sa.Column('credit_line', sa.Text(), nullable=True),
    sa.Column('permits_base_training', sa.Boolean(), nullable=False),
    sa.Column('permits_customer_finetune', sa.Boolean(), nullable=False),
    sa.Column('permits_generation', sa.Boolean(), nullable=False),
    sa.Column('data_mining', sa.String(length=64), nullable=True),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.Text(), nullable=True),
    sa.Column('revoked_by', sa.String(length=200), nullable=True),
    sa.Column('import_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], name=op.f('fk_license_grant_asset_id_asset')),
    sa.ForeignKeyConstraint(['import_id'], ['catalog_import.id'], name=op.f('fk_license_grant_import_id_catalog_import')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_grant'))
    )
    with op.batch_alter_table('license_grant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_license_grant_asset_id'), ['asset_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('license_grant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_license_grant_asset_id'))

    op.drop_table('license_grant')
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_asset_source_ref'))
        batch_op.drop_index(batch_op.f('ix_asset_phash'))
        batch_op.drop_index(batch_op.f('ix_asset_import_id'))
        batch_op.drop_index('ix_asset_contributor_id')

    op.drop_table('asset')
    op.drop_table('contributor')
    op.drop_table('catalog_import')
    
