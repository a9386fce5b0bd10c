"""Physitrack API v2: each practitioner's client list, for the existing-duplicates check.

`GET https://{region}.physitrack.com/api/v2/clients?page=N` with the practitioner's own
`X-Api-Key`. Pages end with an empty list; a page that repeats the previous one fails loudly
rather than looping. A refused key is reported with the practitioner's email, never the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.errors import ConnectorError, TransientConnectorError
from connectors.http import HttpClient, HttpError
from sharing import PhysitrackClient

NAME = "physitrack"
REGIONS = ("us", "uk", "ca", "au")
MAX_PAGES = 10_000


def base_url_for(region: str) -> str:
    if region not in REGIONS:
        raise ConnectorError(NAME, f"unknown region {region!r} (expected one of: {', '.join(REGIONS)})")
    return f"https://{region}.physitrack.com/api/v2"


def pull_clients(
    keys: Mapping[str, str],
    *,
    region: str = "uk",
    base_url: str | None = None,
    user_agent: str = "ptsync",
    **http: Any,
) -> tuple[PhysitrackClient, ...]:
    """Every configured practitioner's clients. `keys` maps practitioner email to API key."""
    url = base_url or base_url_for(region)
    clients: list[PhysitrackClient] = []
    for email, key in sorted(keys.items()):
        client = HttpClient(NAME, url, headers={"X-Api-Key": key, "User-Agent": user_agent}, **http)
        clients.extend(_clients_of(client, email))
    return tuple(clients)


def _clients_of(http: HttpClient, practitioner_email: str) -> list[PhysitrackClient]:
    found: list[PhysitrackClient] = []
    previous_ids: list[str] | None = None
    for page in range(1, MAX_PAGES + 1):
        try:
            document = http.get_json("clients", params={"page": page})
        except HttpError as exc:
            if exc.status in (401, 403):
                raise ConnectorError(
                    NAME,
                    f"the API key of {practitioner_email} was refused ({exc.status}); "
                    "update it with `ptsync org physitrack-key`",
                ) from None
            # A 503 or a timeout is transient: the sync tries again later instead of failing.
            error = TransientConnectorError if exc.retryable else ConnectorError
            raise error(NAME, f"clients of {practitioner_email}: {exc.reason}") from None
        if not isinstance(document, dict) or not isinstance(document.get("clients"), list):
            raise ConnectorError(NAME, f"clients of {practitioner_email}, page {page}: no 'clients' list")
        rows = document["clients"]
        if not rows:
            return found
        ids = [str(row.get("id")) if isinstance(row, dict) else "" for row in rows]
        if ids == previous_ids:
            raise ConnectorError(
                NAME, f"clients of {practitioner_email}: page {page} repeats page {page - 1}"
            )
        previous_ids = ids
        for index, row in enumerate(rows):
            found.append(_client(row, practitioner_email, page, index))
    raise ConnectorError(NAME, f"clients of {practitioner_email}: more than {MAX_PAGES} pages")


def _client(row: Any, practitioner_email: str, page: int, index: int) -> PhysitrackClient:
    where = f"clients of {practitioner_email}, page {page}, item {index}"
    if not isinstance(row, dict) or row.get("id") is None:
        raise ConnectorError(NAME, f"{where}: a client needs an id")
    year = row.get("year_of_birth")
    if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
        raise ConnectorError(NAME, f"{where}: year_of_birth must be a whole number")
    names = [str(row[part]).strip() for part in ("first_name", "last_name") if row.get(part)]
    external = row.get("external_id")
    return PhysitrackClient(
        practitioner_email=practitioner_email,
        client_id=str(row["id"]),
        external_id=str(external) if external not in (None, "") else None,
        name=" ".join(names) or None,
        year_of_birth=year,
        email=row.get("email") or None,
    )
