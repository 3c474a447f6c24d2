"""jobs.name, jobs.labels, studies.labels: what a user calls a job and tags jobs and studies with

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('labels', sa.JSON(), nullable=True))
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('labels', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('labels')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('labels')
        batch_op.drop_column('name')
