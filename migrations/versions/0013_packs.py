"""jobs.pack_id, jobs.packed_with: a study member trained in a pack, the pack and its size at the claim

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pack_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('packed_with', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('packed_with')
        batch_op.drop_column('pack_id')
