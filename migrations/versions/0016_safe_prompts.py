"""safe prompts: moderation rules, refusals, named-style consent

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('moderation_rule',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('phrase', sa.String(length=200), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moderation_rule'))
    )
    op.create_table('prompt_refusal',
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('api_key_id', sa.Uuid(), nullable=True),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.Uuid(), nullable=True),
    sa.Column('field', sa.String(length=64), nullable=False),
    sa.Column('matched', sa.String(length=300), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_key.id'], name=op.f('fk_prompt_refusal_api_key_id_api_key')),
    sa.ForeignKeyConstraint(['rule_id'], ['moderation_rule.id'],
                            name=op.f('fk_prompt_refusal_rule_id_moderation_rule')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_prompt_refusal_tenant_id_tenant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompt_refusal'))
    )
    with op.batch_alter_table('prompt_refusal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prompt_refusal_rule'), ['rule'], unique=False)
        batch_op.create_index(batch_op.f('ix_prompt_refusal_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('contributor', schema=None) as batch_op:
        batch_op.add_column(sa.Column('style_name_consent', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))

    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('named_styles', sa.JSON(), server_default=sa.text("'[]'"),
                                      nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.drop_column('named_styles')

    with op.batch_alter_table('contributor', schema=None) as batch_op:
        batch_op.drop_column('style_name_consent')

    with op.batch_alter_table('prompt_refusal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prompt_refusal_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_prompt_refusal_rule'))

    op.drop_table('prompt_refusal')
    op.drop_table('moderation_rule')
