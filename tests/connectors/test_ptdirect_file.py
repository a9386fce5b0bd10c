"""The PT Direct file adapter: strict reads, atomic locked writes, idempotent operations."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from connectors.errors import InputFileError
from connectors.ptdirect_file import PtDirectFileAdapter, snapshot_document
from sharing import Operation, OpKind, UserStatus

GOOD = {
    "schema": "ptsync.ptdirect/1",
    "users": [
        {
            "email": "a@clinic.example",
            "name": "Ana Silva",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": {"system": "cliniko", "practitioner_id": "101"},
        },
        {
            "email": "b@clinic.example",
            "name": "Ben Ode",
            "status": "unconfirmed",
            "practitioner_access": True,
            "pms_link": None,
        },
    ],
    "master_account": {"email": "content@clinic.example", "recipients": ["a@clinic.example"]},
    "practitioner_sharing": {
        "members": [{"email": "a@clinic.example", "share_content": True, "share_patients": True}]
    },
}


def _write(tmp_path: Path, document) -> PtDirectFileAdapter:
    path = tmp_path / "ptdirect.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return PtDirectFileAdapter(path)


def test_a_contract_snapshot_reads_and_writes_back_unchanged(tmp_path):
    adapter = _write(tmp_path, GOOD)
    snapshot = adapter.read()
    assert snapshot.users[1].status is UserStatus.UNCONFIRMED
    assert snapshot.users[0].pms_link.practitioner_id == "101"
    assert snapshot_document(snapshot) == GOOD


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(schema="other/1"), "field 'schema': expected 'ptsync.ptdirect/1'"),
        (lambda d: d["users"][1].update(status="pending"), "field 'users[1].status'"),
        (lambda d: d["users"][0].update(email="nobody"), "field 'users[0].email': not an email address"),
        (
            lambda d: d["users"][0].update(practitioner_access="yes"),
            "users[0].practitioner_access': expected true",
        ),
        (
            lambda d: d["practitioner_sharing"]["members"][0].pop("share_patients"),
            "practitioner_sharing.members[0].share_patients",
        ),
        (lambda d: d["master_account"].update(recipients="a@clinic.example"), "master_account.recipients"),
        (lambda d: d["users"].append(dict(d["users"][0])), "users[2].email': duplicate user"),
    ],
)
def test_a_malformed_snapshot_names_the_json_path(tmp_path, mutate, expected):
    document = json.loads(json.dumps(GOOD))
    mutate(document)
    with pytest.raises(InputFileError) as raised:
        _write(tmp_path, document).read()
    assert expected in str(raised.value)


def test_invalid_json_names_the_line(tmp_path):
    with pytest.raises(InputFileError, match=r"ptdirect.json, line 2: invalid JSON"):
        _write(tmp_path, '{\n  "schema": ,\n}').read()


def test_applying_an_operation_twice_changes_the_file_once(tmp_path):
    adapter = _write(tmp_path, GOOD)
    add = Operation(OpKind.ADD_MASTER_RECIPIENT, "c@clinic.example")
    adapter.apply(add, idempotency_key="p:1")
    first = adapter.path.read_text()
    adapter.apply(add, idempotency_key="p:1")
    assert adapter.path.read_text() == first
    assert adapter.read().master_account.recipients == ("a@clinic.example", "c@clinic.example")


def test_concurrent_appliers_never_lose_each_others_changes(tmp_path):
    adapter = _write(tmp_path, GOOD)
    emails = [f"user{i}@clinic.example" for i in range(20)]
    threads = [
        threading.Thread(
            target=PtDirectFileAdapter(adapter.path).apply,
            args=(Operation(OpKind.ADD_MASTER_RECIPIENT, email),),
            kwargs={"idempotency_key": email},
        )
        for email in emails
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(emails) <= set(adapter.read().master_account.recipients)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ptdirect.json.")]  # no temp files left
