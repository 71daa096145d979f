"""trust: memberships, named API tokens, session keys, check runs, cut scores, registration re-check

Revision ID: 7a03fa8b381b
Revises: 5a1c0e7b9d21
Create Date: 2026-11-28 08:06:00

Data, not only schema:
- Membership. Until now `/register` put a person into any company at once, so no existing team account's
  organisation can be trusted: each becomes a PENDING request to that organisation (its `org_id` is cleared),
  for the organisation's administrator to approve. Accounts that only a platform admin could create (government
  staff, judges, operators, admins) keep their organisation as an active membership. Name each organisation's
  first administrator afterwards with `flask --app app set-org-admin --org CODE EMAIL`.
- Sessions. Every account gets a random session key: every session signed before the upgrade ends.
- API tokens. A user's one token becomes a named, read-and-submit token that expires 90 days after the upgrade.
- Cuts. The score of a team cut by 赛马制 moves from its free-text reason ("phase: score / bar") into `cut_score`,
  so the hidden score is no longer shown with the reason.
"""
import re
import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '7a03fa8b381b'
down_revision = '5a1c0e7b9d21'
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('pending', 'invited', 'active')")
TEAM_ROLE = "team"


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(timezone.utc)

    op.create_table('apitoken',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('apitoken', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_apitoken_token_hash'), ['token_hash'], unique=True)
        batch_op.create_index(batch_op.f('ix_apitoken_user_id'), ['user_id'], unique=False)

    op.create_table('membership',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('requested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('invited_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['decided_by'], ['user.id'], ),
    sa.ForeignKeyConstraint(['invited_by'], ['user.id'], ),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_user_id'), ['user_id'], unique=False)
        batch_op.create_index('uq_membership_open_user', ['user_id'], unique=True, sqlite_where=OPEN,
                              postgresql_where=OPEN)

    with op.batch_alter_table('registration', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recheck_reason', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      nullable=False, server_default=''))

    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False,
                                      server_default='submission'))
        batch_op.add_column(sa.Column('image_bytes', sa.Integer(), nullable=False, server_default='0'))
        batch_op.drop_index(batch_op.f('ix_submission_rank'))
        batch_op.create_index('ix_submission_rank', ['phase_id', 'status', 'team_id', 'primary_score', 'created_at',
                                                     'disqualified', 'kind'], unique=False)

    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cut_score', sa.Float(), nullable=True))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))

    user = sa.table('user', sa.column('id', sa.Integer), sa.column('email', sa.String), sa.column('role', sa.String),
                    sa.column('org_id', sa.Integer), sa.column('session_key', sa.String),
                    sa.column('api_token_hash', sa.String))
    membership = sa.table('membership', sa.column('user_id', sa.Integer), sa.column('email', sa.String),
                          sa.column('org_id', sa.Integer), sa.column('status', sa.String),
                          sa.column('is_admin', sa.Boolean), sa.column('reason', sa.String),
                          sa.column('requested_at', sqlmodel.sql.sqltypes.UTCDateTime),
                          sa.column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime))
    apitoken = sa.table('apitoken', sa.column('user_id', sa.Integer), sa.column('name', sa.String),
                        sa.column('token_hash', sa.String), sa.column('prefix', sa.String),
                        sa.column('scope', sa.String), sa.column('created_at', sqlmodel.sql.sqltypes.UTCDateTime),
                        sa.column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime))
    rows = conn.execute(sa.select(user.c.id, user.c.email, user.c.role, user.c.org_id, user.c.api_token_hash)).all()
    for uid, email, role, org_id, token_hash in rows:
        conn.execute(user.update().where(user.c.id == uid).values(session_key=secrets.token_urlsafe(24)))
        if org_id is not None:
            trusted = role != TEAM_ROLE
            conn.execute(membership.insert().values(
                user_id=uid, email=email, org_id=org_id, status='active' if trusted else 'pending', is_admin=False,
                reason='', requested_at=now, decided_at=now if trusted else None))
            if not trusted:
                conn.execute(user.update().where(user.c.id == uid).values(org_id=None))
        if token_hash:
            conn.execute(apitoken.insert().values(
                user_id=uid, name='API', token_hash=token_hash, prefix='hub_', scope='submit', created_at=now,
                expires_at=now + timedelta(days=90)))

    team = sa.table('team', sa.column('id', sa.Integer), sa.column('status', sa.String),
                    sa.column('reason', sa.String), sa.column('cut_score', sa.Float))
    for tid, reason in conn.execute(sa.select(team.c.id, team.c.reason).where(team.c.status == 'cut')).all():
        match = re.search(r": (\S+) / \S+$", reason or "")
        try:
            score = float(match[1]) if match else None
        except ValueError:  # "—": the team had no scored submission
            score = None
        conn.execute(team.update().where(team.c.id == tid).values(cut_score=score, reason=''))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.alter_column('session_key', existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
                              nullable=False)
        batch_op.drop_index(batch_op.f('ix_user_api_token_hash'))
        batch_op.drop_column('api_token_hash')


def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_token_hash', sa.VARCHAR(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_user_api_token_hash'), ['api_token_hash'], unique=False)
        batch_op.drop_column('session_key')

    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.drop_column('cut_score')

    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_index('ix_submission_rank')
        batch_op.create_index(batch_op.f('ix_submission_rank'), ['phase_id', 'status', 'team_id', 'primary_score',
                                                                 'created_at', 'disqualified'], unique=False)
        batch_op.drop_column('image_bytes')
        batch_op.drop_column('kind')

    with op.batch_alter_table('registration', schema=None) as batch_op:
        batch_op.drop_column('recheck_reason')

    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index('uq_membership_open_user', sqlite_where=OPEN, postgresql_where=OPEN)
        batch_op.drop_index(batch_op.f('ix_membership_user_id'))
        batch_op.drop_index(batch_op.f('ix_membership_status'))
        batch_op.drop_index(batch_op.f('ix_membership_org_id'))
        batch_op.drop_index(batch_op.f('ix_membership_email'))
    op.drop_table('membership')

    with op.batch_alter_table('apitoken', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_apitoken_user_id'))
        batch_op.drop_index(batch_op.f('ix_apitoken_token_hash'))
    op.drop_table('apitoken')
