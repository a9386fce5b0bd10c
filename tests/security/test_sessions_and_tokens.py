"""Attacks on sessions and admin tokens: a replayed cookie, a leaked or expired token, a login
or logout forged from another site, and an endless stream of token guesses."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from worker.cli import app
from worker.clock import utcnow
from worker.services.credentials import create_admin_token, list_admin_tokens, revoke_admin_token
from worker.store.models import AdminToken

PAGE = "/orgs/clinic-a/"


def _log_in(client, token: str) -> str:
    response = client.post("/orgs/clinic-a/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.cookies["ptsync_session"]


def _csrf(client) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(PAGE).text).group(1)


def _opens(client, cookie: str) -> bool:
    client.cookies.clear()
    client.cookies.set("ptsync_session", cookie)
    return client.get(PAGE, follow_redirects=False).status_code == 200


def test_a_session_cookie_replayed_after_logout_is_refused(client, clinic):
    # Given an admin who logged in, and a copy of their cookie taken before they log out
    _, token = clinic
    cookie = _log_in(client, token)
    assert _opens(client, cookie)
    # When they log out (with the form's CSRF token)
    client.cookies.set("ptsync_session", cookie)
    logged_out = client.post("/orgs/clinic-a/logout", data={"csrf": _csrf(client)}, follow_redirects=False)
    # Then the copied cookie no longer opens the pages: the session ended on the server
    assert logged_out.status_code == 303
    assert not _opens(client, cookie)


def test_a_revoked_token_opens_neither_the_api_nor_the_sessions_made_with_it(runtime, client, clinic):
    # Given a token in use by the API and by a browser session
    _, token = clinic
    cookie = _log_in(client, token)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/orgs/clinic-a/runs", headers=bearer).status_code == 200
    # When it is revoked
    [info] = list_admin_tokens(runtime, "clinic-a")
    revoke_admin_token(runtime, "clinic-a", info.id)
    # Then the API refuses it and its session is over
    assert client.get("/api/v1/orgs/clinic-a/runs", headers=bearer).status_code == 401
    assert not _opens(client, cookie)
    assert list_admin_tokens(runtime, "clinic-a")[0].state(utcnow()) == "revoked"


def test_an_expired_token_is_refused(runtime, client, clinic):
    # Given a token created to expire, whose time has come
    token = create_admin_token(runtime, "clinic-a", "contractor", expires_in_days=1)
    with runtime.db.transaction() as session:
        row = session.query(AdminToken).filter_by(label="contractor").one()
        row.expires_at = utcnow() - timedelta(seconds=1)
    # When it is used, Then it opens nothing
    assert (
        client.get("/api/v1/orgs/clinic-a/runs", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )
    login = client.post("/orgs/clinic-a/login", data={"token": token}, follow_redirects=False)
    assert login.status_code == 200 and "ptsync_session" not in login.cookies


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}],
)
def test_a_login_posted_from_another_site_is_refused(client, clinic, headers):
    # Given a page on another site that posts the attacker's own token (login CSRF)
    _, token = clinic
    # When the victim's browser submits it
    response = client.post(
        "/orgs/clinic-a/login", data={"token": token}, headers=headers, follow_redirects=False
    )
    # Then no session is started
    assert response.status_code == 403 and "ptsync_session" not in response.cookies


def test_a_logout_forged_from_another_site_does_not_end_the_session(client, clinic):
    # Given a logged-in admin
    _, token = clinic
    cookie = _log_in(client, token)
    # When another site posts to logout without the CSRF token
    client.cookies.set("ptsync_session", cookie)
    forged = client.post(
        "/orgs/clinic-a/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    # Then it is refused and the session lives on
    assert forged.status_code == 403
    assert _opens(client, cookie)


def test_repeated_failed_logins_are_rate_limited_and_logged_without_the_token(client, clinic, caplog):
    # Given a client guessing tokens
    guesses = [f"pts_guess{n:04d}-secretish" for n in range(12)]
    # When it keeps failing
    with caplog.at_level(logging.WARNING, logger="ptsync.security"):
        answers = [client.post("/orgs/clinic-a/login", data={"token": g}).status_code for g in guesses]
    # Then after 10 failures it is told to wait, and each failure is logged, never the guess
    assert answers[:10] == [200] * 10 and answers[10:] == [429, 429]
    assert "refused an admin login for organisation 'clinic-a' from testclient" in caplog.text
    assert not any(guess in caplog.text for guess in guesses)
    # And even the right token waits until the window has passed
    _, token = clinic
    assert client.post("/orgs/clinic-a/login", data={"token": token}).status_code == 429


def test_repeated_api_token_failures_are_rate_limited(client, clinic, caplog):
    # Given a client sending wrong bearer tokens
    with caplog.at_level(logging.WARNING, logger="ptsync.security"):
        answers = [
            client.get(
                "/api/v1/orgs/clinic-a/runs", headers={"Authorization": f"Bearer pts_wrong{n}"}
            ).status_code
            for n in range(11)
        ]
    # Then the eleventh is answered 429 with Retry-After, and the token is not in the log
    assert answers[:10] == [401] * 10 and answers[10] == 429
    assert "pts_wrong" not in caplog.text and "refused an API token" in caplog.text


def test_tokens_are_listed_without_the_secret_and_revoked_from_the_cli(runtime, clinic):
    # Given an organisation with an admin token (and one that expires)
    _, token = clinic
    runner = CliRunner()
    created = runner.invoke(app, ["org", "token", "clinic-a", "--label", "ci", "--expires-in", "30"])
    assert created.exit_code == 0, created.output
    # When the tokens are listed
    listed = runner.invoke(app, ["org", "tokens", "clinic-a"], env={"COLUMNS": "200"})
    # Then the list has ids, labels and expiry, and no token
    assert listed.exit_code == 0, listed.output
    assert "ci" in listed.output and "never" in listed.output and "active" in listed.output
    assert token not in listed.output and "pts_" not in listed.output
    # When one is revoked, Then it shows as revoked
    first = list_admin_tokens(runtime, "clinic-a")[0].id
    revoked = runner.invoke(app, ["org", "revoke-token", "clinic-a", str(first)])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in runner.invoke(app, ["org", "tokens", "clinic-a"], env={"COLUMNS": "200"}).output


def test_a_logout_posted_from_another_site_without_the_cookie_leaves_the_cookie_alone(client, clinic):
    """Given a logged-in admin / When another site posts to logout and the browser keeps the
    cookie back (SameSite=Lax) / Then the answer does not clear the cookie: it would log the
    browser out while the session lives on on the server (found by a security probe)."""
    _, token = clinic
    cookie = _log_in(client, token)
    client.cookies.clear()
    forged = client.post(
        "/orgs/clinic-a/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert forged.status_code == 303
    assert "ptsync_session" not in forged.headers.get("set-cookie", "")
    assert _opens(client, cookie)
