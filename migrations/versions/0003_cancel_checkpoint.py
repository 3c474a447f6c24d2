"""jobs.cancel_requested, checkpoint_step, enqueued_at: cancel, resume from checkpoints, resend lost messages

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:10:00
"""
from alembic import op
import sqlalchemy as sa
import app.models.base


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('checkpoint_step', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('enqueued_at', app.models.base.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('enqueued_at')
        batch_op.drop_column('checkpoint_step')
        batch_op.drop_column('cancel_requested')
