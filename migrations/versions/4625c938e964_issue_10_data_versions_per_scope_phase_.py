"""issue 10: data versions per cache scope (with their triggers), the phase-ended guard, image_pull, the queue index

Revision ID: 4625c938e964
Revises: 7a03fa8b381b
Create Date: 2026-11-28 10:17:45

- `dataversion`: one row per cache scope ('scenario', 'challenge:12', …), bumped by database triggers on the tracked
  tables (hub.cache.TRACKED), so that a page cache is dropped only by a write to what it shows, by any process,
  raw SQL included. The triggers come from `hub.cache.trigger_ddl`, the same statements `create_all` installs; the
  statements are idempotent, so a later change of TRACKED ships as a migration that runs them again. They are
  installed last: a SQLite batch operation that recreates a tracked table would drop its triggers.
- `phase.ended_signalled_at`: `challenges.signals.phase_ended` goes out once per phase.
- `submission.image_pull`: where a node pulls the image (the center's registry, by digest); `image_ref` keeps what
  the team named (an uploaded file's name).
- `ix_submission_queue`: the dispatcher's per-challenge heads and counts (evaluator.dispatch) without a scan.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

from hub.cache import trigger_ddl

revision = '4625c938e964'
down_revision = '7a03fa8b381b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dataversion',
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('scope')
    )
    with op.batch_alter_table('phase', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ended_signalled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_pull', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False,
                                      server_default=''))
        batch_op.create_index('ix_submission_queue', ['status', 'job_id', 'challenge_id', 'id'], unique=False)
    # A registry submission's pinned reference was its image_ref; uploads of before were kept archives ("").
    op.execute("UPDATE submission SET image_pull = image_ref WHERE image_source = 'registry'")

    bind = op.get_bind()
    tables = set(sa.inspect(bind).get_table_names())
    for statement in trigger_ddl(bind.dialect.name, tables):
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for (name,) in bind.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                            "AND name LIKE 'hub_dv_%'").fetchall():
            op.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    else:
        for table, name in bind.exec_driver_sql(
                "SELECT c.relname, g.tgname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
                "WHERE g.tgname IN ('hub_dv_1_note', 'hub_dv_2_flush')").fetchall():
            op.execute(f'DROP TRIGGER IF EXISTS "{name}" ON "{table}"')
        op.execute("DROP FUNCTION IF EXISTS hub_dv_note() CASCADE")
        op.execute("DROP FUNCTION IF EXISTS hub_dv_flush() CASCADE")
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_index('ix_submission_queue')
        batch_op.drop_column('image_pull')

    with op.batch_alter_table('phase', schema=None) as batch_op:
        batch_op.drop_column('ended_signalled_at')

    op.drop_table('dataversion')
