"""The Semble connector, adversarially: a page that is not the page asked for must never end a
complete read (a clinician missing from the read looks gone from the PMS)."""

from __future__ import annotations

from connectors.errors import ConnectorError
from tests.connectors.test_semble import (
    STARTED,
    WINDOW,
    _booking,
    _connector,
    _page,
    _serve,
    _user,
    responses,
)


@responses.activate
def test_a_users_page_answered_with_an_earlier_page_never_ends_a_complete_read():
    """Given the clinician listing's page 1 has Ana and says hasMore, and the request for page 2
    is answered with page 1 again ('pageInfo.page: 1', Ana again, hasMore false: a cursor moved
    backwards) so Ben is never read / When the clinic is pulled / Then the pull fails or says it is
    incomplete: a complete read without Ben makes his linked PT Direct user 'gone_from_pms' (a
    transfer and a removal)."""
    _serve(
        {
            "users": [_page("users", [_user()], 1, True), _page("users", [_user()], 1, False)],
            "bookings": [_page("bookings", [_booking("b1", "p1")], 1, False)],
        }
    )
    try:
        pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    except ConnectorError:
        return
    assert not pulled.snapshot.complete, [p.id for p in pulled.snapshot.practitioners]
