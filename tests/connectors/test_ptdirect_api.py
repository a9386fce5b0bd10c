"""The PT Direct api adapter against the bridge emulator (a real local HTTP server)."""

from __future__ import annotations

import pytest

from connectors.emulators.ptdirect_bridge import PtDirectBridgeEmulator
from connectors.errors import ConnectorError
from connectors.http import HttpError
from connectors.ptdirect_api import PtDirectApiAdapter
from sharing import Operation, OpKind, UserStatus

STATE = {
    "schema": "ptsync.ptdirect/1",
    "users": [
        {
            "email": "ana@clinic.example",
            "name": "Ana Silva",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": {"system": "csv", "practitioner_id": "101"},
        },
        {
            "email": "cara+physio@clinic.example",
            "name": "Cara Lim",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": None,
        },
        {
            "email": "fay@clinic.example",
            "name": "Fay Wu",
            "status": "unconfirmed",
            "practitioner_access": True,
            "pms_link": None,
        },
        {
            "email": "content@clinic.example",
            "name": "Content",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": None,
        },
    ],
    "master_account": {"email": "content@clinic.example", "recipients": ["ana@clinic.example"]},
    "practitioner_sharing": {
        "members": [
            {"email": "ana@clinic.example", "share_content": True, "share_patients": False},
        ]
    },
}


@pytest.fixture
def bridge():
    with PtDirectBridgeEmulator(STATE, "bridge-key") as emulator:
        yield emulator


def _adapter(bridge, key="bridge-key") -> PtDirectApiAdapter:
    return PtDirectApiAdapter(f"{bridge.url}/v1", key, sleep=lambda s: None)


def test_reading_the_bridge_gives_the_same_snapshot_as_the_file_format(bridge):
    snapshot = _adapter(bridge).read()
    assert [u.email for u in snapshot.users][:2] == ["ana@clinic.example", "cara+physio@clinic.example"]
    assert snapshot.users[2].status is UserStatus.UNCONFIRMED
    assert snapshot.master_account.recipients == ("ana@clinic.example",)
    assert snapshot.sharing_members[0].share_patients is False


def test_every_write_operation_changes_the_bridge_once_even_when_repeated(bridge):
    adapter = _adapter(bridge)
    operations = [
        Operation(
            OpKind.ADD_SHARING_MEMBER, "cara+physio@clinic.example", share_content=True, share_patients=True
        ),
        Operation(OpKind.ENABLE_PATIENT_SHARING, "ana@clinic.example"),
        Operation(OpKind.ADD_MASTER_RECIPIENT, "cara+physio@clinic.example"),
        Operation(OpKind.REMOVE_MASTER_RECIPIENT, "ana@clinic.example"),
        Operation(OpKind.REMOVE_SHARING_MEMBER, "cara+physio@clinic.example"),
    ]
    for position, operation in enumerate(operations):
        for _ in range(2):
            adapter.apply(operation, idempotency_key=f"p:{position}")
    assert set(bridge.changes.values()) == {1}
    assert len(bridge.changes) == 5
    members = bridge.snapshot()["practitioner_sharing"]["members"]
    assert members == [{"email": "ana@clinic.example", "share_content": True, "share_patients": True}]
    assert all("idempotency-key" in r.headers for r in bridge.log if r.method != "GET")


def test_the_bridge_refuses_an_unconfirmed_user_and_the_error_is_not_retried(bridge):
    with pytest.raises(HttpError) as raised:
        _adapter(bridge).apply(
            Operation(OpKind.ADD_MASTER_RECIPIENT, "fay@clinic.example"), idempotency_key="k"
        )
    assert raised.value.status == 409 and not raised.value.retryable
    assert "fay@clinic.example has not accepted the invitation" in str(raised.value)


def test_a_wrong_key_is_refused_with_401_and_the_key_is_not_in_the_error(bridge):
    with pytest.raises(HttpError) as raised:
        _adapter(bridge, key="wrong-key").read()
    assert raised.value.status == 401 and "wrong-key" not in str(raised.value)


def test_a_bridge_outage_is_retried_briefly(bridge):
    bridge.fail_next("/v1/users", 503, times=2)
    assert len(_adapter(bridge).read().users) == 4


def test_advisory_operations_cannot_be_sent_to_the_bridge(bridge):
    with pytest.raises(ConnectorError, match="must be done by a person"):
        _adapter(bridge).apply(Operation(OpKind.TRANSFER_PATIENTS, "ana@clinic.example"), idempotency_key="k")


def test_reusing_an_idempotency_key_for_another_change_is_refused(bridge):
    adapter = _adapter(bridge)
    adapter.apply(
        Operation(OpKind.ADD_MASTER_RECIPIENT, "cara+physio@clinic.example"), idempotency_key="same"
    )
    with pytest.raises(HttpError) as raised:
        adapter.apply(Operation(OpKind.REMOVE_MASTER_RECIPIENT, "ana@clinic.example"), idempotency_key="same")
    assert raised.value.status == 422
