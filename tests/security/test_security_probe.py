"""Findings of a security probe of `ptsync web` (pages, admin API, webhooks) and of what it
stores, logs and shows. Each test fails on the code as probed and passes once the hole is closed.

- A Halaxy client secret changed with `org update` is written in clear into the audit trail.
- Halaxy's `--pms-token-url`, where the client secret is posted, skips the check every other
  credential URL gets: plain http to another machine and `user:password@` are accepted.
- Three pages show a `?notice=` from the link, so a crafted link plants words on them.
- The unsigned webhooks' URL token is written to the log whenever their answer is a 5xx.
- A notification webhook URL keeps its path (where Zapier-style hooks carry their secret) in
  the page, the audit trail and `notify list`; plain http to a public host is accepted; a
  refused URL's password is copied into the redirect's query string.
- `ptsync runs`, `ptsync org locations` and `ptsync ptdirect show` print text from a webhook,
  the PMS or PT Direct as rich markup with its escape sequences: `[/bold]` crashes them, an
  OSC-8 link or ANSI colour reaches the operator's terminal.
- Malformed input answered 500 instead of a 4xx: a Halaxy delivery id over 200 characters, a
  notification URL with a port out of range, a PT Direct form with a non-numeric row count.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from urllib.parse import unquote_plus

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from connectors.emulators.cliniko import ClinikoEmulator, generate_group
from tests.clinic_files import write_clinic
from tests.security.helpers import synced_clinic_with_names
from worker.cli import app as cli_app
from worker.errors import ConfigurationError, InvalidInput
from worker.services import audit
from worker.services.credentials import create_admin_token, rotate_webhook_credentials
from worker.services.org_admin import update_organisation
from worker.services.orgs import NewOrganisation, add_organisation, validate
from worker.web import create_app

PLANTED = "Your token expired: mail it to help@evil.example"
HOSTILE = "X[/bold]\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\\x1b[31m"
"""Rich markup that does not balance, an OSC-8 link and an ANSI colour."""


@pytest.fixture
def app_client(runtime, sent):
    """The app answering unhandled errors with a 500, as a real server does (not raising them)."""
    with TestClient(create_app(send=sent, background=False), raise_server_exceptions=False) as client:
        yield client


def _halaxy_clinic(runtime, tmp_path, slug: str = "clinic-h"):
    _, ptdirect = write_clinic(tmp_path / slug)
    add_organisation(
        runtime,
        NewOrganisation(
            slug=slug,
            pms="halaxy",
            pms_client_id="cid",
            pms_client_secret="first-halaxy-secret",
            ptdirect="file",
            ptdirect_path=str(ptdirect),
        ),
    )
    return rotate_webhook_credentials(runtime, slug)


def _logged_in(client, token: str, slug: str) -> None:
    answer = client.post(f"/orgs/{slug}/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def _csrf(client, page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(page).text).group(1)


CHANNELS = "/orgs/clinic-a/notifications"


def _add_channel(client, url: str, *, follow_redirects: bool = True):
    """The notifications page's "add a channel" form for clinic-a, posted by its logged-in admin."""
    form = {"csrf": _csrf(client, CHANNELS), "url": url, "events": ["findings"]}
    return client.post(CHANNELS, data=form, follow_redirects=follow_redirects)


# Secrets ---------------------------------------------------------------------------------------


def test_a_halaxy_client_secret_changed_with_org_update_never_reaches_the_audit_trail(
    runtime, tmp_path, client
):
    """Given a Halaxy organisation, whose PMS secret is its OAuth client (id and secret),
    When its client secret is changed with `ptsync org update --pms-client-secret`,
    Then neither the stored audit entry nor the audit page shows the secret (it says that the
    secret changed, as it does for --pms-key)."""
    _halaxy_clinic(runtime, tmp_path)
    update_organisation(
        runtime, "clinic-h", {"pms_client_secret": "NEW-halaxy-client-secret-42"}, "cli", test=False
    )
    stored = json.dumps([row.detail for row in audit.entries(runtime, "clinic-h")])
    _logged_in(client, create_admin_token(runtime, "clinic-h", "admin"), "clinic-h")
    page = client.get("/orgs/clinic-h/audit")
    assert page.status_code == 200
    assert "NEW-halaxy-client-secret-42" not in stored
    assert "NEW-halaxy-client-secret-42" not in page.text


@pytest.mark.parametrize(
    "token_url",
    [
        "http://auth.halaxy-proxy.example/oauth2/token",
        "https://ops:hunter2@au-api.halaxy.com/main/oauth2/token",
    ],
)
def test_a_halaxy_token_url_in_plain_http_or_with_credentials_is_refused(token_url):
    """Given a Halaxy organisation whose --pms-token-url (where ptsync posts the client id and
    secret) is plain http to another machine, or carries `user:password@`,
    When it is validated (`org add` / `org update`) without --allow-insecure-http,
    Then it is refused, as --pms-url, --ptdirect-url and --physitrack-url are."""
    new = NewOrganisation(
        slug="clinic-h",
        pms="halaxy",
        pms_client_id="cid",
        pms_client_secret="secret",
        pms_token_url=token_url,
        ptdirect="manual",
    )
    with pytest.raises(InvalidInput, match="--pms-token-url"):
        validate(new)


def test_the_unsigned_webhook_url_token_is_not_written_to_the_log_when_the_answer_is_a_5xx(
    runtime, clinic, sent, caplog
):
    """Given the Physitrack webhook URL of an organisation (its token is the only credential of
    the unsigned endpoint) and a ptsync that cannot reach its database (the runtime cannot be
    built, as at a start while the database is down),
    When an event is posted to that URL and answered 500,
    Then the log line that says why does not carry the URL token."""
    credentials, _ = clinic

    def database_down():
        raise ConfigurationError("cannot reach the database: OperationalError")

    app = create_app(runtime=database_down, send=sent, background=False)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.WARNING):
        answer = client.post(
            f"/webhooks/physitrack/{credentials.url_token}",
            content=b'{"id": "evt-1", "event": "new_client_created"}',
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 500
    assert caplog.records, "the failure is logged"
    assert not any(credentials.url_token in record.getMessage() for record in caplog.records)


# Words planted by a link -----------------------------------------------------------------------


@pytest.mark.parametrize("page", ["ptdirect", "notifications", "checklist"])
def test_a_link_cannot_plant_a_message_on_the_ptdirect_notifications_or_checklist_page(
    runtime, tmp_path, client, page
):
    """Given a logged-in admin of a synced clinic with an open proposal,
    When they follow a crafted link to the PT Direct, notifications or checklist page with a
    notice in its query string,
    Then the planted words are not shown (as on the report page: only notices the server
    signed are)."""
    synced_clinic_with_names(runtime, tmp_path, "clinic-n", {})
    token = create_admin_token(runtime, "clinic-n", "admin")
    _logged_in(client, token, "clinic-n")
    proposals = client.get(
        "/api/v1/orgs/clinic-n/proposals", headers={"Authorization": f"Bearer {token}"}
    ).json()
    path = {
        "ptdirect": "/orgs/clinic-n/ptdirect",
        "notifications": "/orgs/clinic-n/notifications",
        "checklist": f"/orgs/clinic-n/proposals/{proposals[0]['id']}/checklist",
    }[page]
    shown = client.get(path, params={"notice": PLANTED})
    assert shown.status_code == 200
    assert "evil.example" not in shown.text


# Notification channels -------------------------------------------------------------------------


def test_a_notification_webhook_url_is_listed_without_the_secret_in_its_path(runtime, client, clinic):
    """Given an admin who adds a webhook channel whose URL carries its secret in the path, as
    catch hooks do (https://hooks.zapier.com/hooks/catch/123456/SECRET/),
    When the notifications page and the audit trail list it,
    Then the path's secret is not shown (channel URLs are "listed redacted", as apprise URLs are)."""
    _, token = clinic
    _logged_in(client, token, "clinic-a")
    added = _add_channel(client, "https://hooks.zapier.com/hooks/catch/123456/zk3Vq9PathSecret/")
    assert added.status_code == 200  # the page that shows the signing secret once
    listed = client.get(CHANNELS).text
    trail = client.get("/orgs/clinic-a/audit").text
    assert "hooks.zapier.com" in listed
    assert "zk3Vq9PathSecret" not in listed
    assert "zk3Vq9PathSecret" not in trail


def test_a_plain_http_notification_webhook_to_a_public_address_is_refused(runtime, client, clinic):
    """Given an admin on the notifications page,
    When they add `http://93.184.216.34/ptsync` (plain http to a public address; the README
    allows http only on a private network, and findings name practitioners),
    Then the channel is not added: the answer says to use https."""
    _, token = clinic
    _logged_in(client, token, "clinic-a")
    answer = _add_channel(client, "http://93.184.216.34/ptsync", follow_redirects=False)
    assert answer.status_code == 303
    assert "Not added" in unquote_plus(answer.headers["location"])


def test_a_password_in_a_refused_notification_url_is_not_copied_into_the_redirect(runtime, client, clinic):
    """Given an admin who pastes a webhook URL with credentials but no host
    (`https://hooks:Pa55word-in-url@/ptsync`),
    When the channel is refused,
    Then the password is not in the redirect's URL (where browser history and proxy logs keep
    it)."""
    _, token = clinic
    _logged_in(client, token, "clinic-a")
    answer = _add_channel(client, "https://hooks:Pa55word-in-url@/ptsync", follow_redirects=False)
    assert answer.status_code == 303
    assert "Pa55word-in-url" not in unquote_plus(answer.headers["location"])


# Malformed input answered 500 ------------------------------------------------------------------


def test_a_halaxy_notification_batching_many_events_is_accepted_once_not_a_500(runtime, tmp_path, app_client):
    """Given a Halaxy organisation and a notification batching 30 appointment events (the
    delivery id, subscription id and event numbers, comes to over 200 characters),
    When it is posted to the Halaxy webhook URL, and posted again (a redelivery),
    Then it is accepted (a legitimate notification, never a 500), and the redelivery is
    recognised as the same delivery: its id is the subscription and events, hashed."""
    credentials = _halaxy_clinic(runtime, tmp_path)
    events = [
        {
            "eventNumber": str(1_000_000 + number),
            "focus": {"reference": "https://au-api.halaxy.com/main/Appointment/700000001"},
        }
        for number in range(30)
    ]
    body = {
        "type": "history",
        "entry": [
            {
                "resource": {
                    "subscription": {"reference": "https://au-api.halaxy.com/main/Subscription/d3f8a2c4"},
                    "notificationEvent": events,
                }
            }
        ],
    }
    answer = app_client.post(
        f"/webhooks/halaxy/{credentials.url_token}",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code in (200, 202), answer.text
    again = app_client.post(
        f"/webhooks/halaxy/{credentials.url_token}",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert again.status_code in (200, 202) and again.json()["status"] == "duplicate", again.text


def test_a_notification_url_with_a_port_out_of_range_is_refused_not_a_500(runtime, app_client, clinic):
    """Given an admin on the notifications page,
    When they add `https://hooks.example:99999/ptsync` (a port out of range),
    Then the channel is refused with a notice, never a 500."""
    _, token = clinic
    _logged_in(app_client, token, "clinic-a")
    answer = _add_channel(app_client, "https://hooks.example:99999/ptsync", follow_redirects=False)
    assert answer.status_code == 303
    assert "Not added" in unquote_plus(answer.headers["location"])


def test_a_ptdirect_form_with_a_row_count_that_is_not_a_number_is_refused_not_a_500(
    runtime, app_client, clinic
):
    """Given an admin on the PT Direct page,
    When the form is posted with `rows=abc`,
    Then it is refused with a client error, never a 500."""
    _, token = clinic
    _logged_in(app_client, token, "clinic-a")
    answer = app_client.post(
        "/orgs/clinic-a/ptdirect",
        data={"csrf": _csrf(app_client, "/orgs/clinic-a/ptdirect"), "rows": "abc"},
        follow_redirects=False,
    )
    assert 400 <= answer.status_code < 500


# Terminal output ---------------------------------------------------------------------------------


def _printed_inert(result) -> None:
    """The command succeeded and printed the text literally, with no escape character."""
    assert result.exit_code == 0, repr(result.exception)
    assert "\x1b" not in result.output
    assert "[/bold]" in result.output


def test_a_webhook_event_with_markup_and_escapes_prints_inert_in_ptsync_runs(runtime, tmp_path, client):
    """Given a Halaxy organisation, and someone with its webhook URL who posts a notification
    whose focus type is rich markup with terminal escapes (it becomes the run's trigger,
    `halaxy:<type>-notification`),
    When the operator runs `ptsync runs SLUG`,
    Then it prints the trigger as text: no crash, no escape sequence reaches the terminal."""
    credentials = _halaxy_clinic(runtime, tmp_path)
    body = {
        "type": "history",
        "entry": [
            {
                "resource": {
                    "subscription": {"reference": "Subscription/d3f8a2c4"},
                    "notificationEvent": [{"eventNumber": "1", "focus": {"type": HOSTILE}}],
                }
            }
        ],
    }
    answer = client.post(
        f"/webhooks/halaxy/{credentials.url_token}",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    _printed_inert(CliRunner().invoke(cli_app, ["runs", "clinic-h"], env={"COLUMNS": "250"}))


def test_a_pms_location_named_with_markup_and_escapes_prints_inert_in_ptsync_org_locations(runtime):
    """Given a Cliniko account (the emulator's clinic group) whose first business is named with
    rich markup and terminal escapes,
    When the operator runs `ptsync org locations SLUG` to choose the organisation's locations,
    Then the name is printed as text: no crash, no escape sequence reaches the terminal."""
    key = "group-cliniko-key-au1"
    data = generate_group(today=date.today())
    data["businesses"][0]["business_name"] = HOSTILE
    with ClinikoEmulator(data, key) as emulator:
        add_organisation(
            runtime,
            NewOrganisation(
                slug="north", pms="cliniko", pms_url=emulator.base_url, pms_key=key, ptdirect="manual"
            ),
        )
        result = CliRunner().invoke(cli_app, ["org", "locations", "north"], env={"COLUMNS": "250"})
    _printed_inert(result)


def test_a_ptdirect_user_named_with_markup_and_escapes_prints_inert_in_ptsync_ptdirect_show(
    runtime, tmp_path
):
    """Given a manual-mode organisation whose recorded PT Direct state has a user named with
    rich markup and terminal escapes (typed on the PT Direct page, or imported),
    When the operator runs `ptsync ptdirect show SLUG`,
    Then the name is printed as text: no crash, no escape sequence reaches the terminal."""
    pms, _ = write_clinic(tmp_path / "clinic-m")
    add_organisation(
        runtime, NewOrganisation(slug="clinic-m", pms="csv", pms_path=str(pms), ptdirect="manual")
    )
    document = {
        "schema": "ptsync.ptdirect/1",
        "users": [
            {
                "email": "ana@clinic.example",
                "name": HOSTILE,
                "status": "confirmed",
                "practitioner_access": True,
            }
        ],
        "master_account": None,
        "practitioner_sharing": {"members": []},
    }
    (tmp_path / "pt.json").write_text(json.dumps(document))
    imported = CliRunner().invoke(cli_app, ["ptdirect", "import", "clinic-m", str(tmp_path / "pt.json")])
    assert imported.exit_code == 0, imported.output
    _printed_inert(CliRunner().invoke(cli_app, ["ptdirect", "show", "clinic-m"], env={"COLUMNS": "250"}))


def test_a_refused_channel_reads_as_a_warning_and_an_added_one_as_done(runtime, client, clinic):
    """Given an admin on the notifications page / When a channel is refused (plain http to a
    public address), and a channel that does not exist is removed / Then each answer is shown as
    a warning (role=alert), not in the green box of a success; the kind is signed with the text,
    so a link that flips it to "done" shows nothing."""
    _, token = clinic
    _logged_in(client, token, "clinic-a")
    refused = _add_channel(client, "http://93.184.216.34/ptsync")
    assert '<p class="warn" role="alert">Not added: webhook URL uses plain http://' in refused.text
    forged = refused.url.copy_with(
        params={k: ("done" if k == "k" else v) for k, v in refused.url.params.multi_items()}
    )
    assert "Not added" not in client.get(forged).text
    removed = client.post(f"{CHANNELS}/999/remove", data={"csrf": _csrf(client, CHANNELS)})
    assert '<p class="warn" role="alert">That channel no longer exists.' in removed.text
