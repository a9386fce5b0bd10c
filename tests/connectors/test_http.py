"""The shared HTTP layer, with `responses`: classification, short retries, clear errors."""

from __future__ import annotations

import pytest
import requests
import responses

from connectors.http import HttpClient, HttpError, RateLimited, Verdict, classify, retry_after_seconds

BASE = "https://api.example.test/v1"


def _client(**kwargs) -> HttpClient:
    return HttpClient("test", BASE, headers={"X-Api-Key": "sk-secret-key"}, sleep=lambda s: None, **kwargs)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.OK),
        (204, Verdict.OK),
        (400, Verdict.FATAL),
        (401, Verdict.FATAL),
        (403, Verdict.FATAL),
        (404, Verdict.FATAL),
        (422, Verdict.FATAL),
        (429, Verdict.RATE_LIMITED),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (504, Verdict.RETRY),
    ],
)
def test_every_status_has_one_meaning(status, verdict):
    response = requests.Response()
    response.status_code = status
    assert classify(response).verdict is verdict


def test_timeouts_and_refused_connections_are_retried_other_exceptions_are_fatal():
    assert classify(requests.ConnectTimeout()).verdict is Verdict.RETRY
    assert classify(requests.ConnectionError()).verdict is Verdict.RETRY
    assert classify(requests.TooManyRedirects()).verdict is Verdict.FATAL


def test_retry_after_prefers_the_header_then_the_reset_epoch():
    assert retry_after_seconds({"Retry-After": "7"}, now=0) == 7
    assert retry_after_seconds({"X-RateLimit-Reset": "1000"}, now=990) == 10
    assert retry_after_seconds({"Retry-After": "Wed, 25 Nov 2026 10:00:10 GMT"}, now=1795600800) == 10


@responses.activate
def test_a_server_error_then_success_is_retried_quietly():
    responses.get(f"{BASE}/things", status=503)
    responses.get(f"{BASE}/things", json={"ok": True})
    client = _client()
    assert client.get_json("things") == {"ok": True}
    assert client.requests_sent == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
@responses.activate
def test_client_errors_are_never_retried_and_never_echo_the_key(status):
    responses.get(f"{BASE}/things", status=status, json={"error": {"message": "nope"}})
    client = _client()
    with pytest.raises(HttpError) as raised:
        client.get_json("things", params={"api_key": "sk-secret-key"})
    assert client.requests_sent == 1
    assert str(raised.value) == f"test: GET /v1/things -> {status} {responses.calls[0].response.reason}: nope"
    assert "sk-secret-key" not in str(raised.value)
    assert not raised.value.retryable


@responses.activate
def test_a_short_rate_limit_is_waited_out_and_a_long_one_goes_back_to_the_job():
    waits: list[float] = []
    responses.get(f"{BASE}/short", status=429, headers={"Retry-After": "2"})
    responses.get(f"{BASE}/short", json={"ok": True})
    client = HttpClient("test", BASE, sleep=waits.append)
    assert client.get_json("short") == {"ok": True}
    assert waits == [2.0]
    responses.get(f"{BASE}/long", status=429, headers={"Retry-After": "600"})
    with pytest.raises(RateLimited) as raised:
        client.get_json("long")
    assert raised.value.retry_after == 600 and raised.value.retryable


@responses.activate
def test_invalid_json_is_a_clear_fatal_error():
    responses.get(f"{BASE}/things", body="<html>oops</html>", status=200)
    with pytest.raises(HttpError, match=r"GET /v1/things -> 200 the response is not valid JSON"):
        _client().get_json("things")


@responses.activate
def test_retries_stop_when_the_time_budget_is_spent():
    responses.get(f"{BASE}/things", status=502)
    client = HttpClient("test", BASE, retry_budget_seconds=0, sleep=lambda s: None)
    with pytest.raises(HttpError) as raised:
        client.get_json("things")
    assert raised.value.retryable and client.requests_sent == 1


def test_a_session_applies_the_proxy_environment_per_host_and_remembers_it(monkeypatch):
    """Given HTTP_PROXY and NO_PROXY in the environment,
    When a connector session asks for a proxied host, an excluded host, and the first again,
    Then the proxied host goes through the proxy, the excluded one does not, and the remembered
    settings are handed out as copies (a caller changing them cannot change the next request)."""
    from connectors.http import _Session

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    session = _Session()

    first = session.merge_environment_settings("http://api.example/v1/x", {}, None, None, None)
    internal = session.merge_environment_settings("http://internal.example/v1/x", {}, None, None, None)
    first["proxies"].clear()
    again = session.merge_environment_settings("http://api.example/v1/other", {}, None, None, None)

    assert again["proxies"].get("http") == "http://proxy.example:3128"
    assert "http" not in internal["proxies"]
