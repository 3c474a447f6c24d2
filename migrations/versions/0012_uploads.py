"""uploads and upload_parts: resumable uploads in progress (POST /v1/uploads) and their received parts

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-14 10:00:00
"""
import sqlalchemy as sa
from alembic import op

import app.models.base

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'uploads',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('filename', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('targets', sa.JSON(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('part_size', sa.BigInteger(), nullable=False),
        sa.Column('parts_expected', sa.Integer(), nullable=False),
        sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('completing_since', app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('dataset_id', sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_uploads_tenant_id_tenants')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads')),
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uploads_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_uploads_expires_at'), ['expires_at'], unique=False)
    op.create_table(
        'upload_parts',
        sa.Column('upload_id', sa.String(length=40), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('received_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_upload_parts_upload_id_uploads')),
        sa.PrimaryKeyConstraint('upload_id', 'n', name=op.f('pk_upload_parts')),
    )


def downgrade() -> None:
    op.drop_table('upload_parts')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_expires_at'))
        batch_op.drop_index(batch_op.f('ix_uploads_tenant_id'))
    op.drop_table('uploads')
