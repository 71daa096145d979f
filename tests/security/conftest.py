"""A world for the route tables: one of every kind of user, a challenge with two teams, secrets to keep.

Everything is made through the real services where a rule decides (teams, registration, datasets, judge
panel, the 公示 notice); plain rows where only a state is needed quickly (the fresh "arenas" that
state-changing routes act on, so one user's success never decides the next user's answer).
"""
from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlmodel import Session

from challenges import judging, registration, teams
from challenges.challenges import DEFAULT_RUBRIC, change_status
from challenges.datasets import write_generated
from challenges.models import Challenge, JudgeAssignment, Phase, Registration, Submission, Team, TeamMember
from evaluator.quota.models import Reservation, Voucher
from hub.models import Organisation, OrgKind, Role, User, utcnow
from hub.users import issue_api_token
from marketplace.models import Scenario
from tests.factories import make_challenge, make_city, make_org, make_phase, make_scored_submission, make_user

ROLES = ("anonymous", "member", "captain", "other_team", "gov_owner", "gov_other", "judge", "judge_off",
         "operator", "admin")

_seq = itertools.count(1)


@dataclass
class Secrets:
    """What team A and the public must never read: team B's log, the truth, scores of a board before its reveal."""

    log_b: str
    truth: str
    hidden_b: float          # team B's score on the private phase, before the reveal
    hidden_a: float          # team A's own score there (teams see it only after the reveal too)

    def forms_of_hidden(self) -> dict[str, str]:
        """Every way a page or an API may print a hidden score (JSON repr, the `score` filter, chart labels)."""
        out: dict[str, str] = {}
        for name, value in (("team B's hidden score", self.hidden_b), ("team A's hidden score", self.hidden_a)):
            for text in (repr(value), f"{value:.6g}", f"{value:.4f}", f"{value:.3g}"):
                out[text] = name
        return out


@dataclass
class World:
    session: Session
    data_dir: str
    users: dict[str, User]
    tokens: dict[str, str]
    owner: Organisation          # the city that owns the challenges
    other_city: Organisation
    org_a: Organisation          # team A's company (member and captain)
    org_b: Organisation          # team B's company (other_team)
    bureau: Organisation
    center: Organisation
    spare: User                  # a team account outside every role, captain of fresh teams
    ch: Challenge                # open; a finished public phase and a running private phase (not revealed)
    p_public: Phase
    p_private: Phase
    draft: Challenge             # a draft of the owner city
    noticed: Challenge           # final review with its 公示 notice running
    team_a: Team
    team_b: Team
    sub_a: Submission            # team A, private phase, hidden score
    sub_b_hidden: Submission     # team B, private phase, hidden score, log with the marker
    sub_b_public: Submission     # team B, public phase, shown score, log with the marker
    secrets: Secrets

    # ---------------------------------------------------------------- fresh objects for state-changing routes
    def arena(self, status: str = "open", panel: bool = True) -> Challenge:
        """A fresh challenge of the owner city (plain rows): one running public phase, the judge on its panel."""
        n = next(_seq)
        now = utcnow()
        scenario = Scenario(city_id=self.owner.id, title=f"安全场景{n}", industry="smart_logistics", description="d",
                            expected_outcome="e", indicators="i", deadline=date.today() + timedelta(days=30),
                            contact_name="c", contact_info="c@example.org", status="published")
        self.session.add(scenario)
        self.session.flush()
        challenge = Challenge(scenario_id=scenario.id, city_id=self.owner.id, slug=f"arena-{n}-{secrets.token_hex(3)}",
                              title=f"场地{n}", opens_at=now - timedelta(days=10), closes_at=now + timedelta(days=30),
                              status=status, metric="accuracy", prediction_column="label",
                              rubric=[dict(c) for c in DEFAULT_RUBRIC])
        self.session.add(challenge)
        self.session.flush()
        self.session.add(Phase(challenge_id=challenge.id, name="初赛", starts_at=now - timedelta(days=1),
                               ends_at=now + timedelta(days=10), split="public"))
        if panel:
            self.session.add(JudgeAssignment(challenge_id=challenge.id, judge_id=self.users["judge"].id))
        self.session.commit()
        return challenge

    def team_in(self, challenge: Challenge, captain: User, *, status: str = "approved",
                members: tuple[tuple[User, str], ...] = ()) -> Team:
        """A team of `captain` in `challenge`; members are (user, membership status) pairs."""
        team = Team(challenge_id=challenge.id, name=f"队伍{next(_seq)}", lead_org_id=captain.org_id,
                    captain_id=captain.id, invite_token=secrets.token_urlsafe(16), status=status)
        self.session.add(team)
        self.session.flush()
        self.session.add(TeamMember(team_id=team.id, challenge_id=challenge.id, user_id=captain.id, role="captain",
                                    status="active"))
        for user, member_status in members:
            self.session.add(TeamMember(team_id=team.id, challenge_id=challenge.id, user_id=user.id,
                                        status=member_status))
        self.session.commit()
        return team

    def phase_of(self, challenge: Challenge) -> Phase:
        from challenges.challenges import phases_of

        return phases_of(self.session, challenge.id)[0]

    def submission_in(self, challenge: Challenge, status: str = "queued") -> Submission:
        team = self.team_in(challenge, self.spare)
        outcome = {"queued": None, "failed": "nonzero_exit", "scored": "scored"}[status]
        return make_scored_submission(self.session, team, self.phase_of(challenge), 0.5, status=status,
                                      outcome=outcome, scores={"accuracy": 0.5} if status == "scored" else {})

    def pending_registration(self) -> Registration:
        team = self.team_in(self.arena(), self.spare, status="applied")
        reg = Registration(team_id=team.id, challenge_id=team.challenge_id, tech_route="时间序列特征 + 梯度提升树",
                           indicator_plan="各项指标逐项验证，误差低于要求")
        self.session.add(reg)
        self.session.commit()
        return reg

    def reservation(self) -> Reservation:
        now = utcnow()
        row = Reservation(challenge_id=self.arena(panel=False).id, accel_class="cpu", count=1, starts_at=now,
                          ends_at=now + timedelta(days=1))
        self.session.add(row)
        self.session.commit()
        return row

    def voucher(self) -> Voucher:
        now = utcnow()
        row = Voucher(code=f"SEC-{secrets.token_hex(6)}", scheme="西咸新区算力券", company_id=self.org_a.id,
                      bureau_id=self.bureau.id, supplier_id=self.center.id, percent=50, cap_fen=300_000_000,
                      valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=300))
        self.session.add(row)
        self.session.commit()
        return row

    def objection(self) -> int:
        row = judging.lodge_objection(self.session, self.spare, self.noticed, "对评审结果有异议，请复核。")
        return row.id  # type: ignore[return-value]


def _team_through_services(session: Session, challenge: Challenge, gov: User, captain: User,
                           members: list[User]) -> Team:
    team = teams.create_team(session, captain, challenge, f"队伍{next(_seq)}")
    for user in members:
        teams.request_join(session, user, team.invite_token)
        teams.approve_member(session, captain, team, user.id)
    reg = registration.submit(session, captain, team, tech_route="时间序列特征 + 梯度提升树",
                              indicator_plan="各项指标逐项验证，误差低于要求")
    registration.review(session, gov, reg, approve=True)
    return team


@pytest.fixture
def world(app, session) -> World:  # type: ignore[no-untyped-def]
    data_dir = app.config["DATA_DIR"]
    marker = secrets.token_hex(6)
    secret = Secrets(log_b=f"LOG-OF-TEAM-B-{marker}", truth=f"TRUTH-MARKER-{marker}",
                     hidden_b=0.97531246, hidden_a=0.31415926)

    owner, other_city = make_city(session), make_city(session)
    org_a, org_b, org_spare = make_org(session), make_org(session), make_org(session)
    center = make_org(session, OrgKind.CENTER)
    bureau = make_org(session, OrgKind.DISTRICT, credit_code=None)
    users = {
        "member": make_user(session, Role.TEAM, org_a),
        "captain": make_user(session, Role.TEAM, org_a),
        "other_team": make_user(session, Role.TEAM, org_b),
        "gov_owner": make_user(session, Role.GOV, owner),
        "gov_other": make_user(session, Role.GOV, other_city),
        "judge": make_user(session, Role.JUDGE),
        "judge_off": make_user(session, Role.JUDGE),
        "operator": make_user(session, Role.OPERATOR, center),
        "admin": make_user(session, Role.ADMIN),
    }
    spare = make_user(session, Role.TEAM, org_spare)
    gov = users["gov_owner"]
    now = utcnow()

    # The main challenge: a finished public phase (scores shown) and a running private phase (scores at the reveal).
    ch = make_challenge(session, gov=gov, metric="accuracy", prediction_column="label",
                        opens_at=now - timedelta(days=10), closes_at=now + timedelta(days=30))
    p_public = make_phase(session, ch, gov, days=(-9, -2), split="public", scores_visible="now")
    p_private = make_phase(session, ch, gov, days=(-1, 20), split="private", scores_visible="reveal")
    ids = range(1, 5)
    inputs = "id,x\n" + "".join(f"{i},{i * 2}\n" for i in ids)
    truth = "id,label\n" + "".join(f"{i},{secret.truth}-{i}\n" for i in ids)
    write_generated(session, gov, ch, "public", inputs, truth, data_dir,
                    sample_inputs="id,x\ns1,1\n", sample_truth="id,label\ns1,sample-label\n")
    write_generated(session, gov, ch, "private", inputs, truth, data_dir)
    change_status(session, gov, ch, "publish")
    judging.assign_judge(session, gov, ch, users["judge"].id)
    team_a = _team_through_services(session, ch, gov, users["captain"], [users["member"]])
    team_b = _team_through_services(session, ch, gov, users["other_team"], [])
    sub_b_public = make_scored_submission(session, team_b, p_public, 0.25, scores={"accuracy": 0.25},
                                          at=now - timedelta(days=3), log_excerpt=f"step 1\n{secret.log_b}\n")
    sub_b_hidden = make_scored_submission(session, team_b, p_private, secret.hidden_b,
                                          scores={"accuracy": secret.hidden_b},
                                          log_excerpt=f"epoch 3\n{secret.log_b}\n", reason=secret.log_b)
    sub_a = make_scored_submission(session, team_a, p_private, secret.hidden_a, scores={"accuracy": secret.hidden_a},
                                   log_excerpt=f"LOG-OF-TEAM-A-{marker}\n")

    draft = make_challenge(session, gov=gov, slug=f"draft-{marker}")
    make_phase(session, draft, gov)

    # A challenge in final review whose proposed ranking is published (公示 running).
    noticed = make_challenge(session, gov=gov, metric="accuracy", prediction_column="label")
    final = make_phase(session, noticed, gov, days=(-0.5, 5), split="public")
    finalist = make_user(session, Role.TEAM)
    noticed.status = "final_review"
    session.add(noticed)
    session.commit()
    fin_team = Team(challenge_id=noticed.id, name="决赛队", lead_org_id=finalist.org_id, captain_id=finalist.id,
                    invite_token=secrets.token_urlsafe(16), status="approved")
    session.add(fin_team)
    session.flush()
    session.add(TeamMember(team_id=fin_team.id, challenge_id=noticed.id, user_id=finalist.id, role="captain",
                           status="active"))
    session.commit()
    make_scored_submission(session, fin_team, final, 0.5, scores={"accuracy": 0.5})
    judging.assign_judge(session, gov, noticed, users["judge"].id)
    judging.publish_notice(session, gov, noticed, 5)

    tokens = {role: issue_api_token(session, user) for role, user in users.items()}
    session.commit()
    return World(session=session, data_dir=data_dir, users=users, tokens=tokens, owner=owner,
                 other_city=other_city, org_a=org_a, org_b=org_b, bureau=bureau, center=center, spare=spare, ch=ch,
                 p_public=p_public, p_private=p_private, draft=draft, noticed=noticed, team_a=team_a, team_b=team_b,
                 sub_a=sub_a, sub_b_hidden=sub_b_hidden, sub_b_public=sub_b_public, secrets=secret)
