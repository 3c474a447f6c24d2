"""tenants: quota overrides (NULL: the server's default); jobs: artifact_bytes (the job's stored files)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quota_jobs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('quota_running_jobs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('quota_study_members', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('quota_stored_bytes', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact_bytes', sa.BigInteger(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('artifact_bytes')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('quota_stored_bytes')
        batch_op.drop_column('quota_study_members')
        batch_op.drop_column('quota_running_jobs')
        batch_op.drop_column('quota_jobs')
