"""Signed notices belong to one page of one organisation, and an IPv4 address written as one
number is an address (found by a review of the session's security fixes)."""

from __future__ import annotations

import re
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.web.conftest import add_clinic
from worker.errors import InvalidInput
from worker.services.notifications import classify_target

PLANTED_HOST = "your-token-expired-mail-it-to-help.evil.example"


def _logged_in(client, token: str, slug: str) -> None:
    answer = client.post(f"/orgs/{slug}/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def _csrf(client, page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(page).text).group(1)


@pytest.mark.parametrize("url", ["http://134744072/ptsync", "http://0x08080808/ptsync"])
def test_a_plain_http_webhook_to_a_public_address_written_as_one_number_is_refused(url):
    """Given a webhook channel URL with plain http:// whose host is a public IPv4 address
    written as a single decimal or hex number (134744072 and 0x08080808 are 8.8.8.8: the
    system resolver connects there),
    When the channel is classified (as `notify add` and the notifications page do),
    Then it is refused like http://8.8.8.8/ is: the README allows http:// only to a host on a
    private network, and this host is not one (it is not a single-label intranet name)."""
    host = urlsplit(url).hostname
    assert socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)[0][4][0] == "8.8.8.8"
    with pytest.raises(InvalidInput):
        classify_target("http://8.8.8.8/ptsync")
    with pytest.raises(InvalidInput):
        classify_target(url)


def test_a_notice_signed_for_one_organisation_is_not_shown_on_another_organisations_page(
    runtime, tmp_path, client, clinic
):
    """Given two organisations on one ptsync, and an admin of clinic-b who makes the server sign
    a notice with words of their own (a refused webhook URL's host is echoed in the notice),
    When an admin of clinic-a is sent a link to clinic-a's notifications page carrying that
    notice, its kind and its signature,
    Then clinic-a's page does not show the words (a notice is signed for the page and the
    organisation it was written for, else one tenant plants text on another's page)."""
    _, token_a = clinic
    _, token_b = add_clinic(runtime, tmp_path, "clinic-b")
    _logged_in(client, token_b, "clinic-b")
    refused = client.post(
        "/orgs/clinic-b/notifications",
        data={
            "csrf": _csrf(client, "/orgs/clinic-b/notifications"),
            "url": f"http://{PLANTED_HOST}/ptsync",
            "events": ["findings"],
        },
        follow_redirects=False,
    )
    assert refused.status_code == 303
    query = parse_qs(urlsplit(refused.headers["location"]).query)
    assert PLANTED_HOST in query["notice"][0]
    own_page = client.get(refused.headers["location"]).text
    assert PLANTED_HOST in own_page  # clinic-b's own page shows its own notice

    _logged_in(client, token_a, "clinic-a")
    shown = client.get(
        "/orgs/clinic-a/notifications",
        params={"notice": query["notice"][0], "k": query["k"][0], "n": query["n"][0]},
    )
    assert shown.status_code == 200
    assert PLANTED_HOST not in shown.text
