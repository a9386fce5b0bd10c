"""Review: today every token action is audited as `api:token N "LABEL"`; the API's accept-drop
sync (which lets a run treat a mass disappearance as real leavers) still names `api:token-N`."""

from __future__ import annotations

from sqlalchemy import select

from worker.store.models import AuditEntry


def test_accepting_a_pms_drop_through_the_api_names_the_token_and_its_label(client, clinic, runtime):
    """Given clinic-a's admin token labelled 'test' / When it starts a sync with accept_drop
    (confirming that people missing from the PMS really left: the run may then remove them) /
    Then the `pms_drop_accepted` audit entry names the token as every other token action does
    (`api:token N "test"`, `audit.token_actor`). Before the fix, worker/web/api.py builds
    `api:token-N` by hand: the entry that authorises mass removals is the one without the label,
    and a search of the audit for `api:token N` misses it."""
    _, token = clinic
    response = client.post(
        "/api/v1/orgs/clinic-a/syncs",
        headers={"Authorization": f"Bearer {token}"},
        json={"accept_drop": True},
    )
    assert response.status_code < 300, response.text
    with runtime.db.transaction() as session:
        actors = [
            row.actor for row in session.scalars(select(AuditEntry)) if row.action == "pms_drop_accepted"
        ]
    assert actors and all(actor.startswith("api:token ") and '"test"' in actor for actor in actors), actors
