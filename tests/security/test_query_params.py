"""Hostile query parameters and path numbers on every GET route: a 400 or a clamped answer, never a 500."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.factories import login
from tests.security.conftest import World
from tests.security.test_route_table import ARG_VALUES

# Every query parameter a view reads (grep request.args in */views.py, */api.py); a new one belongs here.
KNOWN_PARAMS = ("page", "phase", "org", "from", "to", "days", "month", "city", "industry", "status", "sort", "q",
                "kind", "lang", "next")
HOSTILE = ("99999999999999999999", "-1", "abc", "1e309", "x" * 10_000, "\x00", "0", "9999-12-31", "0001-01-01",
           "2026-13-45")
# Who reads each route: the admin passes every door but the team-only pages, which the member opens.
ROLES = ("anonymous", "admin", "member")


def _routes(app, world: World) -> list[tuple[str, list[str]]]:  # type: ignore[no-untyped-def]
    """(endpoint, [a URL with real ids, the same URL with every int path argument out of range])."""
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or "GET" not in (rule.methods or set()):
            continue
        names = sorted(rule.arguments)
        values = {n: ARG_VALUES[n](world)[0] for n in names}
        url = rule.build(values, append_unknown=False)[1]
        urls = [url]
        ints = [n for n in names if isinstance(values[n], int)]
        if ints:
            urls.append(rule.build({**values, **{n: 99999999999999999999 for n in ints}}, append_unknown=False)[1])
        out.append((rule.endpoint, urls))
    return out


def _status(client, url: str) -> int | str:
    """The answer's status; an exception that escaped the app (TESTING propagates them) is a 500 too."""
    try:
        return client.get(url).status_code
    except Exception as err:  # noqa: BLE001 - any escape is what this test looks for
        return f"500 ({err.__class__.__name__}: {str(err)[:80]})"


@pytest.mark.slow
def test_no_hostile_query_value_gets_a_500(app, world):
    clients = {"anonymous": app.test_client()}
    for role in ROLES[1:]:
        clients[role] = app.test_client()
        login(clients[role], world.users[role])
    failures, reads = [], 0
    for endpoint, urls in _routes(app, world):
        for role, client in clients.items():
            for url in urls[1:]:
                status = _status(client, url)
                reads += 1
                if not isinstance(status, int) or status >= 500:
                    failures.append(f"{role:9} GET {url} ({endpoint}): {status}")
            for name in KNOWN_PARAMS:
                for value in HOSTILE:
                    status = _status(client, f"{urls[0]}?{name}={quote(value)}")
                    reads += 1
                    if not isinstance(status, int) or status >= 500:
                        failures.append(f"{role:9} GET {urls[0]}?{name}={value[:24]!r} ({endpoint}): {status}")
    assert reads > 4000
    assert not failures, f"\n{len(failures)} of {reads} reads failed:\n" + "\n".join(failures)


def test_the_issues_page_number_is_clamped_and_a_bad_id_is_told(app, world):
    from hub.web import MAX_PAGE

    client = app.test_client()

    assert client.get("/scenarios?page=99999999999999999999").status_code == 200
    listing = client.get("/api/v1/scenarios?page=99999999999999999999").get_json()
    assert listing["pagination"]["page"] == MAX_PAGE and listing["items"] == []
    assert client.get("/api/v1/scenarios?page=-1").get_json()["pagination"]["page"] == 1
    resp = client.get(f"/api/v1/challenges/{world.ch.slug}/leaderboard?phase=99999999999999999999")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["field"] == "phase"
    assert "参数 phase" in resp.get_json()["error"]["message"]
    assert client.get("/scenarios/99999999999999999999").status_code == 404
