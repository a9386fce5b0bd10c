"""Attack: a crafted link that makes a trusted ptsync page show the attacker's words (content
spoofing: "your token expired, mail it to ..."). Notices on the report page must be signed by
the server; the login page shows errors only from a failed login, never from the query."""

from __future__ import annotations


def test_a_link_cannot_plant_a_message_on_the_report_page(client, clinic):
    # Given a logged-in admin who follows a crafted link with a notice in it
    _, token = clinic
    client.post("/orgs/clinic-a/login", data={"token": token})
    # When the page renders
    page = client.get("/orgs/clinic-a/?notice=Your+token+expired:+mail+it+to+help@evil.example")
    # Then the planted text is not shown: only notices the server signed are
    assert page.status_code == 200 and "evil.example" not in page.text


def test_a_link_cannot_plant_a_message_on_the_login_page(client, clinic):
    # Given a crafted link to the login page with an "error" in its query string
    # When it is opened
    page = client.get("/orgs/clinic-a/login?error=Session+expired:+send+your+token+to+help@evil.example")
    # Then the planted text is not shown
    assert page.status_code == 200 and "evil.example" not in page.text
