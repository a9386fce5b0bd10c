"""The one merge rule for a sharing member that an add or enable operation touches."""

from __future__ import annotations

import pytest

from sharing import Operation, OpKind, SharingMember
from sharing.apply import member_after


def test_adding_a_member_who_already_shares_patients_never_turns_patient_sharing_off() -> None:
    """Given a member sharing patients only, when added for content, then they share both."""
    current = SharingMember("ana@clinic.example", False, True)
    added = member_after(
        current, Operation(OpKind.ADD_SHARING_MEMBER, "ana@clinic.example", share_content=True)
    )
    assert (added.share_content, added.share_patients) == (True, True)


def test_enabling_patient_sharing_leaves_content_sharing_as_it_was() -> None:
    """Given a member sharing nothing, when patient sharing is enabled, then only patients turn on."""
    current = SharingMember("ben@clinic.example", False, False)
    enabled = member_after(current, Operation(OpKind.ENABLE_PATIENT_SHARING, "ben@clinic.example"))
    assert (enabled.share_content, enabled.share_patients) == (False, True)


def test_enabling_patient_sharing_for_someone_new_adds_them_sharing_both() -> None:
    """Given nobody, when patient sharing is enabled for an email, then a full member is added."""
    added = member_after(None, Operation(OpKind.ENABLE_PATIENT_SHARING, "cara@clinic.example"))
    assert (added.email, added.share_content, added.share_patients) == ("cara@clinic.example", True, True)


def test_an_operation_that_is_not_about_member_flags_is_refused() -> None:
    """Given a removal, when asked for the member after it, then that is a programming error."""
    with pytest.raises(ValueError, match="remove_sharing_member"):
        member_after(None, Operation(OpKind.REMOVE_SHARING_MEMBER, "dan@clinic.example"))
