"""workers.devices: how many devices (GPUs) a worker owns, so that a job asking for N waits for one with N

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('devices', sa.Integer(), nullable=False, server_default='1'))


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_column('devices')
