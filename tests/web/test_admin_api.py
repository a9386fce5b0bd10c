"""The admin API: tokens, tenancy (another organisation's data is a 404), and its behaviour."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy import select

from tests.web.conftest import add_clinic
from worker.services.sync import request_sync, run_sync
from worker.store.models import Proposal


@pytest.fixture
def two_clinics(runtime, tmp_path):
    """Clinic A and clinic B, each synced once (so each has a run, a report and a proposal)."""
    _, token_a = add_clinic(runtime, tmp_path, "clinic-a")
    _, token_b = add_clinic(runtime, tmp_path, "clinic-b")
    ids = {}
    for slug in ("clinic-a", "clinic-b"):
        run_id, _ = request_sync(runtime, slug, "manual")
        run_sync(runtime, run_id)
        with runtime.db.transaction() as session:
            proposal = session.scalar(select(Proposal).where(Proposal.run_id == run_id))
            ids[slug] = {"run": run_id, "proposal": proposal.id}
    return {"clinic-a": token_a, "clinic-b": token_b}, ids


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ROUTES = [
    ("GET", "/api/v1/orgs/{slug}/runs"),
    ("GET", "/api/v1/orgs/{slug}/runs/{run}/report"),
    ("GET", "/api/v1/orgs/{slug}/report"),
    ("GET", "/api/v1/orgs/{slug}/proposals"),
    ("POST", "/api/v1/orgs/{slug}/proposals/{proposal}/approve"),
    ("POST", "/api/v1/orgs/{slug}/proposals/{proposal}/reject"),
    ("POST", "/api/v1/orgs/{slug}/syncs"),
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_one_organisations_token_never_reaches_another_organisations_data(client, two_clinics, method, route):
    tokens, ids = two_clinics
    # With A's token: B's slug, and A's slug with B's objects, are both "not found"
    for slug, objects in (("clinic-b", ids["clinic-b"]), ("clinic-a", ids["clinic-b"])):
        path = route.format(slug=slug, run=objects["run"], proposal=objects["proposal"])
        if "{run}" not in route and "{proposal}" not in route and slug == "clinic-a":
            continue  # A's own collection routes are A's data
        response = client.request(method, path, headers=_auth(tokens["clinic-a"]))
        assert response.status_code == 404, (path, response.text)
    assert "clinic-b" not in json.dumps(
        client.get("/api/v1/orgs/clinic-a/runs", headers=_auth(tokens["clinic-a"])).json()
    )


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_every_route_needs_a_valid_token(client, two_clinics, method, route):
    _, ids = two_clinics
    path = route.format(slug="clinic-a", run=ids["clinic-a"]["run"], proposal=ids["clinic-a"]["proposal"])
    assert client.request(method, path).status_code == 401
    assert client.request(method, path, headers=_auth("pts_not-a-real-token")).status_code == 401


def test_runs_reports_and_proposals_are_readable_with_the_organisations_token(client, two_clinics):
    tokens, ids = two_clinics
    headers = _auth(tokens["clinic-a"])
    [run] = client.get("/api/v1/orgs/clinic-a/runs", headers=headers).json()
    assert run["id"] == ids["clinic-a"]["run"] and run["status"] == "succeeded"
    report = client.get(f"/api/v1/orgs/clinic-a/runs/{run['id']}/report", headers=headers).json()
    assert report["schema"] == "ptsync.report/1" and report["org"] == "clinic-a"
    csv_text = client.get("/api/v1/orgs/clinic-a/report?format=csv", headers=headers).text
    assert csv_text.startswith("state,kind,severity,fingerprint")
    [proposal] = client.get("/api/v1/orgs/clinic-a/proposals", headers=headers).json()
    assert proposal["operations"][0]["op"] == "add_sharing_member"


def test_approving_through_the_api_records_who_and_queues_the_apply(client, two_clinics, runtime):
    tokens, ids = two_clinics
    proposal_id = ids["clinic-a"]["proposal"]
    response = client.post(
        f"/api/v1/orgs/clinic-a/proposals/{proposal_id}/approve", headers=_auth(tokens["clinic-a"])
    )
    assert response.status_code == 200
    assert response.json()["status"] == "approved" and response.json()["decided_by"].startswith("api:token ")
    again = client.post(
        f"/api/v1/orgs/clinic-a/proposals/{proposal_id}/reject", headers=_auth(tokens["clinic-a"])
    )
    assert again.status_code in (200, 409)


def test_starting_a_sync_goes_through_the_outbox(client, two_clinics, sent):
    tokens, _ = two_clinics
    response = client.post("/api/v1/orgs/clinic-a/syncs", headers=_auth(tokens["clinic-a"]))
    assert response.status_code == 202 and response.json()["run_id"] in sent


def test_the_openapi_document_is_published(client):
    document = client.get("/openapi.json").json()
    assert "/api/v1/orgs/{slug}/proposals/{proposal_id}/approve" in document["paths"]
    assert "/webhooks/generic/{slug}" in document["paths"]


def test_no_generated_input_makes_the_api_fail_with_a_server_error(client, two_clinics):
    tokens, _ = two_clinics
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures = []
    calls = []

    for operation in schema.get_all_operations():
        strategy = operation.ok().as_strategy()

        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def exercise(case):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {tokens['clinic-a']}"}
            response = case.call()
            calls.append(case.formatted_path)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, response.status_code, response.text[:200]))

        exercise()
    assert failures == []
    assert (
        len({path.split("/")[-1] for path in calls}) >= 5 and len(calls) > 100
    )  # it really exercised the API
