"""job_events: a partial index on (job_id, seq) of the status events, for the attempt history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:40:00

GET /v1/jobs/{id} reads the job's status events; without this index it walks every
metric event of the job too. On PostgreSQL the index is built inside the migration's
transaction, which holds off writes to job_events while it runs: on a large table, run
the upgrade while no job trains.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_job_events_status', 'job_events', ['job_id', 'seq'], unique=False,
                    postgresql_where=sa.text("kind = 'status'"), sqlite_where=sa.text("kind = 'status'"))


def downgrade() -> None:
    op.drop_index('ix_job_events_status', table_name='job_events')
