"""studies and study_events; jobs.study_id, variant, member, params: a job can be a study's member

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:45:54

Existing jobs belong to no study (all four columns null).
"""
from alembic import op
import sqlalchemy as sa
import app.models.base


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('studies',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('planned', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_studies_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name=op.f('uq_studies_tenant_id'))
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studies_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('study_events',
    sa.Column('study_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_study_events_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('study_id', 'seq', name=op.f('pk_study_events'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('study_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('variant', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('member', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_study_id'), ['study_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_jobs_study_id_studies'), 'studies', ['study_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_jobs_study_id_studies'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_jobs_study_id'))
        batch_op.drop_column('params')
        batch_op.drop_column('member')
        batch_op.drop_column('variant')
        batch_op.drop_column('study_id')

    op.drop_table('study_events')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_studies_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_studies_status'))
        batch_op.drop_index(batch_op.f('ix_studies_created_at'))

    op.drop_table('studies')
