"""Attacks on what ptsync leaves on disk: another local user reading the SQLite file, a copy
of the database revealing the PMS's patient ids, and credentials pasted into a URL."""

from __future__ import annotations

import os
import stat
import zlib
from datetime import date

import pytest

from connectors.emulators.cliniko import ClinikoEmulator, generate_account
from tests.cli.test_cli_pms_connectors import _ptdirect_for
from worker.errors import InvalidInput
from worker.services.orgs import NewOrganisation, add_organisation, validate
from worker.services.sync import request_sync, run_sync
from worker.store import repositories as repo
from worker.store.db import Database
from worker.store.models import PmsState

KEY = "emulated-cliniko-key-au1"


def test_the_sqlite_database_is_created_readable_by_its_owner_only(tmp_path):
    # Given a permissive umask, as on many servers
    previous = os.umask(0o022)
    try:
        # When ptsync creates its database and writes to it
        database = Database(f"sqlite:///{tmp_path / 'ptsync.db'}")
        database.migrate()
    finally:
        os.umask(previous)
    database.dispose()
    # Then the file (and its write-ahead log) are readable by their owner only
    for name in ("ptsync.db", "ptsync.db-wal"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_pms_patient_ids_never_rest_in_clear_in_the_incremental_state(runtime, tmp_path, monkeypatch):
    # Given an organisation on the (emulated) Cliniko account, synced twice (full, then incremental)
    from worker import settings as settings_module

    monkeypatch.setenv("PTSYNC_CLINIKO_REQUESTS_PER_MINUTE", "60000")
    settings_module.get_settings.cache_clear()
    data = generate_account(patients=40, practitioners=4, appointments=120, today=date.today())
    with ClinikoEmulator(data, KEY, requests_per_window=10_000) as emulator:
        _ptdirect_for(tmp_path / "ptdirect.json", [p["id"] for p in data["practitioners"]], "cliniko", 2)
        add_organisation(
            runtime,
            NewOrganisation(
                slug="clinic-c",
                pms="cliniko",
                pms_url=emulator.base_url,
                pms_key=KEY,
                ptdirect="file",
                ptdirect_path=str(tmp_path / "ptdirect.json"),
            ),
        )
        for _ in range(2):
            run_id, _ = request_sync(runtime, "clinic-c", "test")
            assert run_sync(runtime, run_id) is not None
    # When someone reads the stored state straight from the database
    with runtime.db.transaction() as session:
        org = repo.get_org(session, "clinic-c")
        raw = bytes(session.get(PmsState, org.id).data)
        readable = repo.pms_state_of(session, org.id, runtime.secrets)
    # Then no patient id is in it, compressed or not; only the runtime's key opens it
    patient_ids = {row["patient"] for row in data["individual_appointments"]}
    with pytest.raises(zlib.error):
        zlib.decompress(raw)
    assert patient_ids and not any(pid.encode() in raw for pid in patient_ids)
    # And the runtime itself still reads it back for the next incremental run
    assert any(pid in str(readable) for pid in patient_ids)


@pytest.mark.parametrize("field", ["pms_url", "ptdirect_url", "physitrack_url"])
def test_credentials_pasted_into_a_url_are_refused_not_stored_in_clear(field):
    # Given an organisation whose URL carries user:password@
    values = dict(
        slug="c",
        pms="fhir",
        pms_url="https://fhir.example/r4",
        ptdirect="api",
        ptdirect_url="https://bridge.example",
        ptdirect_key="k",
    )
    values[field] = "https://admin:hunter2@host.example/x"
    # When it is validated, Then it is refused with a pointer to the encrypted key option,
    # and the password is not echoed back
    with pytest.raises(InvalidInput) as raised:
        validate(NewOrganisation(**values))
    assert "must not carry credentials" in str(raised.value) and "hunter2" not in str(raised.value)


def test_after_a_key_rotation_the_old_key_can_be_dropped_without_losing_a_secret(runtime, tmp_path):
    # Given an organisation whose secrets are encrypted with the current key
    from cryptography.fernet import Fernet

    from worker.crypto import SecretBox
    from worker.runtime import Runtime
    from worker.services.credentials import rotate_webhook_credentials
    from worker.services.keys import reencrypt_secrets
    from worker.services.orgs import set_physitrack_key

    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic-k",
            pms="fhir",
            pms_url="https://fhir.example/r4",
            pms_key="fhir-secret",
            ptdirect="api",
            ptdirect_url="https://bridge.example",
            ptdirect_key="bridge-secret",
        ),
    )
    signing = rotate_webhook_credentials(runtime, "clinic-k").signing_secret
    set_physitrack_key(runtime, "clinic-k", "ana@clinic.example", "pt-secret")
    old_key = runtime.settings.secret_key
    new_key = Fernet.generate_key().decode()
    # When the new key is put first and the secrets are re-encrypted
    rotating = Runtime(runtime.settings, runtime.db, SecretBox([new_key, old_key]))
    assert reencrypt_secrets(rotating) == 5
    # Then the new key alone opens every one of them
    only_new = SecretBox([new_key])
    with runtime.db.transaction() as session:
        org = repo.get_org(session, "clinic-k")
        assert only_new.decrypt(org.pms_key_encrypted) == b"fhir-secret"
        assert only_new.decrypt(org.ptdirect_key_encrypted) == b"bridge-secret"
        assert only_new.decrypt(org.webhook_secret_encrypted).decode() == signing
        assert len(only_new.decrypt(org.pseudonym_key_encrypted)) == 32
        keys = repo.physitrack_keys_of(session, org.id)
        assert only_new.decrypt(keys["ana@clinic.example"]) == b"pt-secret"
