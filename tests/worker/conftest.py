"""Fixtures shared by the store's tests: a migrated runtime on each database, and one clinic."""

from __future__ import annotations

import pytest

from worker.crypto import SecretBox
from worker.services.orgs import NewOrganisation, add_organisation
from worker.settings import Settings
from worker.store.db import Database


@pytest.fixture
def store(database_url: str, secret_key: str, tmp_path):
    from worker.runtime import Runtime

    db = Database(database_url)
    db.migrate()
    yield Runtime(Settings(database_url=database_url, secret_key=secret_key), db, SecretBox([secret_key]))
    db.dispose()


@pytest.fixture
def org(store, tmp_path):
    from tests.clinic_files import write_clinic

    pms, ptdirect = write_clinic(tmp_path)
    return add_organisation(
        store,
        NewOrganisation(
            slug="clinic-a",
            pms="csv",
            pms_path=str(pms),
            ptdirect="file",
            ptdirect_path=str(ptdirect),
        ),
    )
