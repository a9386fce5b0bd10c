"""`org update` on the connectors whose settings are not one column each (Halaxy, exports)."""

from __future__ import annotations

import json

from sqlalchemy import select

from worker.services.org_admin import settings_of, update_organisation
from worker.services.orgs import NewOrganisation, add_organisation
from worker.store.models import Organisation


def test_updating_a_halaxy_client_secret_keeps_the_client_and_changes_only_the_secret(runtime):
    # Given a Halaxy organisation (its OAuth client is stored as one encrypted value)
    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic-h",
            pms="halaxy",
            pms_client_id="client-1",
            pms_client_secret="old-secret",
            ptdirect="manual",
        ),
    )
    # When only the client secret is updated
    changed, _ = update_organisation(runtime, "clinic-h", {"pms_client_secret": "new-secret"}, test=False)
    # Then the stored client has the new secret, the same id, and reads back as the same settings
    assert changed == ["pms_client_secret"]
    with runtime.db.transaction() as session:
        org = session.scalar(select(Organisation).where(Organisation.slug == "clinic-h"))
        stored = json.loads(runtime.secrets.decrypt(org.pms_key_encrypted))
        assert stored == {"client_id": "client-1", "client_secret": "new-secret"}
        settings = settings_of(org, runtime)
    assert (settings.pms_client_id, settings.pms_client_secret, settings.pms_key) == (
        "client-1",
        "new-secret",
        None,
    )


def test_an_update_refuses_an_option_the_connector_never_reads_and_keeps_the_rest(runtime, tmp_path):
    """Given a CSV-folder organisation; When an update gives it a PMS key (a CSV folder has none);
    Then the update is refused in one line and nothing changes; an option it reads still updates."""
    import pytest

    from worker.errors import InvalidInput

    add_organisation(
        runtime, NewOrganisation(slug="clinic-c", pms="csv", pms_path=str(tmp_path), ptdirect="manual")
    )
    with pytest.raises(InvalidInput, match="--pms-key is not used by --pms csv"):
        update_organisation(runtime, "clinic-c", {"pms_key": "k", "policy": "observe"}, test=False)
    with runtime.db.transaction() as session:
        org = session.scalar(select(Organisation).where(Organisation.slug == "clinic-c"))
        assert (org.pms_key_encrypted, settings_of(org, runtime).policy) == (None, "propose")
    other = tmp_path / "other"
    other.mkdir()
    changed, _ = update_organisation(runtime, "clinic-c", {"pms_path": str(other)}, test=False)
    assert changed == ["pms_path"]
