"""The Halaxy connector (`--pms halaxy`): Halaxy's FHIR R4B API, on the FHIR connector.

Built on these vendor documents (read 2026-11-25; the pages show no publication date unless
noted):
- developers.halaxy.com/docs/authentication: a token from `POST {base}/oauth/token` with a JSON
  body `{grant_type: client_credentials, client_id, client_secret}`, answered with
  `{token_type, expires_in, access_token}`; "access tokens are valid for 15 minutes" (while the
  example answer says `expires_in: 3600`: we keep a token for the shorter of the two, less a
  minute); a `User-Agent: NAME (EMAIL)`; 500 requests per minute per OAuth client in a sliding
  window, `x-ratelimit-limit` / `x-ratelimit-remaining` headers, 429 with `retry-after` past it.
- developers.halaxy.com/reference/appointment: `participant.actor` is a `PractitionerRole` (the
  practitioner at one clinic location) or the `Patient`; the patient participant carries the
  Halaxy extension `appointment-participant-status` ("attended", "booked", "confirmed",
  "cancelled", ...).
- developers.halaxy.com/reference/practitioner and /reference/practitionerrole: ids are strings
  prefixed `PR-` (members of the practice group) or `EP-` (external professional contacts, i.e.
  referrers: not clinic staff, so left out); `PractitionerRole.practitioner` names the person.
- developers.halaxy.com/docs/webhooks (payload example dated 2025-12-03): Appointment create,
  update and delete notifications (see `worker/web/halaxy_webhooks.py`).
- support.halaxy.com "Appointment statuses" and "FAQ: Appointments": Booked, Arrived, Attended,
  Cancelled, Did not attend, Check response, ...; "Non-Attendance" cancels the appointment but
  keeps its invoice.
- support-nz.halaxy.com article 13959096843919 / 13959049040911: the API (webhooks included) is
  a paid add-on ("Halaxy API subscription").

Not found in those documents, so assumed from FHIR R4B: the extension's full URL (we match on its
name at the end), and the search parameters `_count`, `date=ge`, `_lastUpdated=gt` with paging by
`link[relation=next]`.

States (what counts as access), decided per patient (a group session can hold a patient who
cancelled beside one who came): a cancelled booking (FHIR `status` cancelled, or the patient's
attendance "cancelled" / "rejected") never counts; entered-in-error is deleted. A patient who
did not attend (attendance "did not attend" / "non-attendance" / DNA, or FHIR
`noshow`) still counts: the booking shows the practitioner treats that patient, and counting it
can only add a finding or hold back a removal, never take access away. Cliniko's and the
generic FHIR connector's did-not-arrive rows count the same way.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from connectors.errors import ConnectorError
from connectors.fhir import FhirConnector, Involvement, reference_id
from connectors.http import HttpClient, HttpError
from connectors.ratelimit import RateLimiter
from sharing import AccessStatus

NAME = "halaxy"
DEFAULT_BASE_URL = "https://au-api.halaxy.com/main"
TOKEN_LIFETIME_CAP = 15 * 60.0
"""The docs say a token lasts 15 minutes, whatever `expires_in` claims."""
TOKEN_MARGIN = 60.0
"""A token is replaced this long before it expires, so none expires mid-request."""
EXTERNAL_PREFIX = "EP-"
ATTENDANCE_EXTENSION = "appointment-participant-status"
_CANCELLED = {"cancelled", "canceled", "rejected"}
_DID_NOT_ATTEND = {"did not attend", "did-not-attend", "did not arrive", "non-attendance", "dna", "noshow"}


def default_token_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/oauth/token"


@dataclass(frozen=True)
class _Token:
    value: str
    good_until: float


class TokenSource:
    """The access token of one client: fetched on first use, kept (in this process) until shortly
    before it expires, and replaced at once when the server refuses it."""

    _cache: ClassVar[dict[str, _Token]] = {}
    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _registry: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        http: HttpClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.token_url = token_url
        self._credentials = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        self._key = hashlib.sha256(f"{token_url}\n{client_id}\n{client_secret}".encode()).hexdigest()
        self._clock = clock
        with self._registry:  # one lock per client: a slow token fetch holds up no other client
            self._lock = self._locks.setdefault(self._key, threading.Lock())

    def get(self) -> str:
        with self._lock:
            cached = self._cache.get(self._key)
            if cached is not None and cached.good_until > self._clock():
                return cached.value
            token = self._fetch()
            self._cache[self._key] = token
            return token.value

    def refresh(self, refused: str) -> str:
        """A new token, unless another thread already replaced the refused one."""
        with self._lock:
            cached = self._cache.get(self._key)
            if cached is not None and cached.value == refused:
                del self._cache[self._key]
        return self.get()

    def _fetch(self) -> _Token:
        try:
            response = self.http.request("POST", self.token_url, json=self._credentials)
        except ConnectorError as exc:  # a server may echo what it was sent in its error body
            secret = self._credentials["client_secret"]
            if len(secret) >= 4:  # a shorter one would redact ordinary text ("-" in "->")
                exc.reason = exc.reason.replace(secret, "[redacted]")
                exc.args = (str(exc).replace(secret, "[redacted]"),)
            raise
        body = self.http.decode(response)
        where = f"POST {urlsplit(self.token_url).path}"
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectorError(NAME, f"{where}: the answer has no access_token")
        expires_in = body.get("expires_in", TOKEN_LIFETIME_CAP)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
            raise ConnectorError(NAME, f"{where}: expires_in is not a number")
        try:
            lifetime = min(float(expires_in), TOKEN_LIFETIME_CAP)
        except ValueError:
            raise ConnectorError(NAME, f"{where}: expires_in is not a number") from None
        return _Token(token, self._clock() + max(lifetime - TOKEN_MARGIN, lifetime / 2))


class BearerClient(HttpClient):
    """Sends each request with the current token; on a 401, fetches one new token and tries once
    more (a token can be revoked or expire early). A second 401 is fatal."""

    def __init__(self, *args: Any, tokens: TokenSource, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokens = tokens

    def _send_once(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if _origin(url) != _origin(self.base_url):
            # A next link to another host (a server bug or worse) must never receive the token.
            raise ConnectorError(
                self.connector, f"{method} {urlsplit(url).path}: refusing to send the token to another origin"
            )
        token = self.tokens.get()
        try:
            return super()._send_once(method, url, **_with_bearer(kwargs, token))
        except HttpError as exc:
            if exc.status != 401:
                raise
        return super()._send_once(method, url, **_with_bearer(kwargs, self.tokens.refresh(token)))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _with_bearer(kwargs: dict[str, Any], token: str) -> dict[str, Any]:
    return {**kwargs, "headers": {**(kwargs.get("headers") or {}), "Authorization": f"Bearer {token}"}}


def attendance(participant: Any) -> str | None:
    """A participant's attendance from Halaxy's extension, lower-cased (else None)."""
    if not isinstance(participant, dict):
        return None
    for extension in participant.get("extension") or []:
        if not isinstance(extension, dict) or not str(extension.get("url", "")).endswith(
            ATTENDANCE_EXTENSION
        ):
            continue
        value = extension.get("valueString") or extension.get("valueCode")
        coding = extension.get("valueCoding")
        if value is None and isinstance(coding, dict):
            value = coding.get("code") or coding.get("display")
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return None


def _attendance_status(state: str | None) -> AccessStatus | None:
    """What one patient's attendance says, when it says more than the appointment's status."""
    if state in _DID_NOT_ATTEND:
        return AccessStatus.ACTIVE  # see the module docstring: a no-show still counts
    if state in _CANCELLED:
        return AccessStatus.CANCELLED
    return None


class HalaxyConnector(FhirConnector):
    system = "halaxy"
    name = NAME
    resources = ("Practitioner", "PractitionerRole", "Appointment")
    optional = ()  # Halaxy documents every resource read here: a 404 is an error
    page_size = 500
    """The docs give no maximum `_count`; a server that caps lower still pages by `next` links."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        client_id: str,
        client_secret: str,
        token_url: str | None = None,
        user_agent: str,
        limiter: RateLimiter | None = None,
        **http: Any,
    ) -> None:
        base = base_url or DEFAULT_BASE_URL
        self._client_id = client_id
        self._client_secret = client_secret
        self._token_url = token_url or default_token_url(base)
        super().__init__(base, user_agent=user_agent, limiter=limiter, **http)

    def _client(
        self, base_url: str, headers: dict[str, str], limiter: RateLimiter | None, http: dict[str, Any]
    ) -> HttpClient:
        # The token endpoint may live on another origin (`--pms-token-url`): its own client, so the
        # client secret goes only there and the HTTP layer's origin check holds for both.
        token_client = HttpClient(self.name, self._token_url, headers=headers, limiter=limiter, **http)
        self.tokens = TokenSource(token_client, self._token_url, self._client_id, self._client_secret)
        return BearerClient(self.name, base_url, headers=headers, limiter=limiter, tokens=self.tokens, **http)

    site_type = "Organization"
    """Halaxy's sites are its clinics: a PractitionerRole is a practitioner at one clinic (its
    `organization`); `GET /Organization` lists the practice group, its clinics, funders and
    external practices (those have no practitioners, so they show 0 in `org locations`)."""

    def _role_sites(self, entry: dict[str, Any]) -> list[str]:
        clinic = reference_id(entry.get("organization"), "Organization")
        return [clinic] if clinic else []

    def _skip(self, resource: str, identifier: str) -> bool:
        return resource in ("Practitioner", "PractitionerRole") and identifier.startswith(EXTERNAL_PREFIX)

    def _appointment_status(self, entry: dict[str, Any]) -> AccessStatus:
        if entry.get("status") == "noshow":
            return AccessStatus.ACTIVE
        return super()._appointment_status(entry)

    def _appointment_row(self, entry: dict[str, Any], updated: str | None) -> Involvement:
        """Appointments also get each patient's own state (a group session can have a patient who
        cancelled beside one who came): `{patient id: status}` where attendance decides it."""
        record = super()._appointment_row(entry, updated)
        if record.status == AccessStatus.DELETED:
            return record
        own: dict[str, int] = {}
        for participant in entry.get("participant") or []:
            patient = (
                reference_id(participant.get("actor"), "Patient") if isinstance(participant, dict) else None
            )
            state = _attendance_status(attendance(participant))
            if patient and state is not None:
                own[patient] = int(state)
        return record._replace(per_patient=own)
