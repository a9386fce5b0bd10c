"""Attack: a PMS page (or a redirect) points elsewhere, hoping the connector's credentials follow.

Every connector pages through `connectors/paging.py` and sends through `connectors/http.py`,
so refusing there covers them all; the CLI refuses plain-http and credential-carrying URLs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import responses

from connectors.cliniko import ClinikoConnector
from connectors.errors import ConnectorError
from connectors.fhir import FhirConnector
from connectors.http import HttpClient
from worker.errors import InvalidInput
from worker.services.orgs import NewOrganisation, validate

KEY = "MS0xLWl4SzYYYYsecret-au2"
BASE = "https://api.au2.cliniko.com/v1"


def _pull(connector) -> None:
    connector.pull(window_start=date(2025, 6, 1), cursors={}, started_at=datetime(2026, 11, 25, tzinfo=UTC))


@responses.activate
@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.example/v1/users?page=2",
        "http://api.au2.cliniko.com/v1/users?page=2",
        "https://api.au2.cliniko.com:8443/v1/users?page=2",
        "//evil.example/v1/users?page=2",
    ],
)
def test_a_cliniko_next_link_to_another_origin_never_receives_the_api_key(foreign):
    # Given a Cliniko page whose next link names another host, scheme or port
    responses.get(f"{BASE}/users", json={"users": [], "links": {"next": foreign}})
    responses.get("https://evil.example/v1/users", json={"users": [], "links": {}})
    # When the connector pulls
    with pytest.raises(ConnectorError) as raised:
        _pull(ClinikoConnector(KEY, user_agent="ptsync-test", sleep=lambda s: None))
    # Then the pull fails naming the connector and the foreign origin, and nothing was sent there
    assert str(raised.value).startswith("cliniko: refusing a next link to another origin")
    assert "api.au2.cliniko.com" in str(raised.value) and "secret" not in str(raised.value)
    assert [call.request.url.split("?")[0] for call in responses.calls] == [f"{BASE}/users"]


@responses.activate
def test_a_fhir_bundle_next_link_to_another_host_never_receives_the_bearer_token():
    # Given a FHIR server whose Bundle's next link points at another host
    base = "https://fhir.clinic.example/r4"
    responses.get(
        f"{base}/Practitioner",
        json={
            "resourceType": "Bundle",
            "link": [{"relation": "next", "url": "https://collector.example/r4?p=2"}],
        },
    )
    # When the connector pulls
    with pytest.raises(ConnectorError) as raised:
        _pull(FhirConnector(base, token="bearer-secret", user_agent="ptsync-test", sleep=lambda s: None))
    # Then it stops with the foreign origin named, and no request went to the other host
    assert "fhir" in str(raised.value) and "https://collector.example" in str(raised.value)
    assert all("collector.example" not in call.request.url for call in responses.calls)


@responses.activate
def test_a_redirect_to_another_origin_never_receives_the_credentials():
    # Given a server that redirects to another host
    responses.get(
        "https://api.example.test/v1/users", status=302, headers={"Location": "https://evil.example/x"}
    )
    responses.get("https://evil.example/x", json={"stolen": True})
    client = HttpClient(
        "bridge",
        "https://api.example.test/v1",
        headers={"X-Api-Key": "sk-secret"},
        auth=("basic-user", ""),
        sleep=lambda s: None,
    )
    # When the client follows it
    with pytest.raises(ConnectorError) as raised:
        client.get_json("users")
    # Then the redirect is refused before anything (key or Basic auth) is sent to the other host
    assert "refusing a redirect from /v1/users to another origin https://evil.example" in str(raised.value)
    assert len(responses.calls) == 1


@responses.activate
def test_a_redirect_on_the_same_origin_is_still_followed():
    # Given a server that moves a path on its own origin
    responses.get("https://api.example.test/v1/users", status=301, headers={"Location": "/v2/users"})
    responses.get("https://api.example.test/v2/users", json={"ok": True})
    client = HttpClient(
        "bridge", "https://api.example.test/v1", headers={"X-Api-Key": "sk"}, sleep=lambda s: None
    )
    # When / Then the redirect is followed, with the key, on the same origin
    assert client.get_json("users") == {"ok": True}
    assert responses.calls[1].request.headers["X-Api-Key"] == "sk"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://fhir.clinic.example/r4", False),
        ("http://127.0.0.1:8080/r4", True),
        ("http://localhost:8080/r4", True),
        ("http://[::1]:8080/r4", True),
        ("https://fhir.clinic.example/r4", True),
    ],
)
def test_a_plain_http_pms_url_off_this_machine_is_refused_without_the_explicit_option(url, allowed):
    # Given an organisation whose PMS URL is plain http
    new = NewOrganisation(
        slug="c",
        pms="fhir",
        pms_url=url,
        ptdirect="api",
        ptdirect_url="https://bridge.example",
        ptdirect_key="k",
    )
    # When it is validated, Then only loopback (or https) passes without --allow-insecure-http
    if allowed:
        validate(new)
    else:
        with pytest.raises(InvalidInput, match=r"plain http:// to fhir\.clinic\.example"):
            validate(new)
        validate(NewOrganisation(**{**new.__dict__, "allow_insecure_http": True}))


@responses.activate
def test_a_run_whose_pms_links_elsewhere_fails_and_stores_nothing(runtime, tmp_path):
    # Given a Cliniko organisation whose practitioners page links to another host
    from tests.clinic_files import write_clinic
    from worker.services.orgs import add_organisation
    from worker.services.sync import request_sync, run_sync
    from worker.store import repositories as repo
    from worker.store.models import PmsState, SyncCursor

    _, ptdirect = write_clinic(tmp_path / "clinic")
    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic-x", pms="cliniko", pms_key=KEY, ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )
    responses.get(f"{BASE}/users", json={"users": [], "links": {}})
    responses.get(
        f"{BASE}/practitioners", json={"practitioners": [], "links": {"next": "https://evil.example/p2"}}
    )
    # When it syncs
    run_id, _ = request_sync(runtime, "clinic-x", "test")
    outcome = run_sync(runtime, run_id)
    # Then the run failed naming the connector and the foreign origin, and nothing was stored
    assert outcome.status == "failed"
    with runtime.db.transaction() as session:
        run = repo.get_run(session, run_id)
        assert run.error.startswith("cliniko: refusing a next link to another origin https://evil.example")
        assert run.report is None
        assert session.query(SyncCursor).count() == 0 and session.query(PmsState).count() == 0
    assert all("evil.example" not in call.request.url for call in responses.calls)
