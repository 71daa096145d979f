"""submission rank index: a covering index for the leaderboard's one ranking query

Revision ID: 5a1c0e7b9d21
Revises: 428cc7dd8bbb
Create Date: 2026-11-26 02:40:00
"""
from alembic import op

revision = '5a1c0e7b9d21'
down_revision = '428cc7dd8bbb'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.create_index('ix_submission_rank', ['phase_id', 'status', 'team_id', 'primary_score', 'created_at',
                                                     'disqualified'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_index('ix_submission_rank')
