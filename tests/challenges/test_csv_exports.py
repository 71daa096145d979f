"""Every CSV export of the challenges neutralises team names that a spreadsheet would run as formulas."""
from __future__ import annotations

import csv
import io

from hub.models import Role
from tests.factories import login, make_approved_team, make_open_challenge, make_scored_submission, make_user

HOSTILE = ['=HYPERLINK("http://x")', "-2+3"]


def test_leaderboard_csv_writes_hostile_team_names_as_text_and_scores_as_numbers(app, session, data_dir):
    oc = make_open_challenge(session, data_dir)   # rmse: lower ranks first
    for i, name in enumerate(HOSTILE):
        team = make_approved_team(session, oc.challenge, oc.gov, name=name).team
        make_scored_submission(session, team, oc.phases[0], -0.25 * (i + 1), scores={"rmse": -0.25 * (i + 1)})
    for who in (None, oc.gov, make_user(session, Role.ADMIN)):   # the public and the privileged export
        client = app.test_client()
        if who is not None:
            login(client, who)
        resp = client.get(f"/challenges/{oc.challenge.slug}/leaderboard.csv")
        assert resp.status_code == 200 and resp.mimetype == "text/csv"
        rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
        assert [r[1] for r in rows[1:]] == ["'-2+3", "'=HYPERLINK(\"http://x\")"]
        # A negative score (an organiser's scorer may write one) is still a number for the spreadsheet.
        assert [r[2] for r in rows[1:]] == ["-0.5", "-0.25"]
