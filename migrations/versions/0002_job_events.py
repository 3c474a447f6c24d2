"""job events: the log behind GET /v1/jobs/{id}/events; jobs.classes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00

Jobs created before this revision have no events: their stream sends only the final
`end` event (their /metrics history is untouched).
"""
from alembic import op
import sqlalchemy as sa
import app.models.base


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_events',
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_events_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'seq', name=op.f('pk_job_events'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('classes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('last_event_id', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('last_event_id')
        batch_op.drop_column('classes')
    op.drop_table('job_events')
