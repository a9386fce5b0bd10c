"""Builds an organisation's PMS connector and PT Direct adapters from its stored settings.

Each connector module is imported by the builder that needs it: the HTTP connectors bring
`requests`, urllib3 and tenacity, which a CSV or file sync never uses (about 40 ms of every
`ptsync sync` start-up, where this module is imported through the actors).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache

from connectors.base import PmsConnector, PtDirectAdapter
from connectors.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter, limiter_name
from sharing import PhysitrackClient
from worker.crypto import SecretBox
from worker.errors import ConfigurationError
from worker.settings import get_settings
from worker.store.models import Organisation

PTDIRECT_KINDS = ("manual", "file", "api")


class MissingSetting(ConfigurationError):
    """An organisation lacks a setting its connector needs; `setting` names it (as in `org show`)."""

    def __init__(self, slug: str, setting: str, reason: str) -> None:
        super().__init__(f"organisation {slug}: {reason}")
        self.slug = slug
        self.setting = setting


def user_agent() -> str:
    return f"ptsync/0.1 ({get_settings().contact_email})"


def rate_limiter(secret: str, requests_per_minute: float) -> RateLimiter:
    """Shared through Redis when workers run on Redis, else in this process."""
    settings = get_settings()
    name = limiter_name(secret)
    if settings.broker_url:
        return RedisRateLimiter(_redis(settings.broker_url), name, requests_per_minute)
    return InProcessRateLimiter.for_key(name, requests_per_minute)


@lru_cache(maxsize=4)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)


def _required_key(org: Organisation, secrets: SecretBox) -> str:
    """The organisation's PMS key, decrypted; a one-line error naming the option when unset."""
    if not org.pms_key_encrypted:
        raise MissingSetting(org.slug, "pms_key", f"no PMS key is stored for {org.pms_kind}")
    return secrets.decrypt(org.pms_key_encrypted).decode()


def _csv(org: Organisation, secrets: SecretBox) -> PmsConnector:
    from connectors.csv_pms import CsvPmsConnector

    if not org.pms_path:
        raise MissingSetting(org.slug, "pms_path", "the csv connector needs a folder")
    return CsvPmsConnector(org.pms_path)


def _export(org: Organisation, secrets: SecretBox) -> PmsConnector:
    from connectors.export import ExportConnector

    if not org.pms_path or not org.pms_format:
        missing = "pms_path" if not org.pms_path else "pms_format"
        raise MissingSetting(org.slug, missing, "the export connector needs a file or folder and a format")
    return ExportConnector(org.pms_path, org.pms_format, staff_path=org.pms_staff_path)


def _cliniko(org: Organisation, secrets: SecretBox) -> PmsConnector:
    from connectors.cliniko import ClinikoConnector

    key = _required_key(org, secrets)
    limiter = rate_limiter(key, get_settings().cliniko_requests_per_minute)
    return ClinikoConnector(key, base_url=org.pms_url, user_agent=user_agent(), limiter=limiter)


def _nookal(org: Organisation, secrets: SecretBox) -> PmsConnector:
    from connectors.nookal import NookalConnector

    key = _required_key(org, secrets)
    limiter = rate_limiter(key, get_settings().nookal_requests_per_minute)
    return NookalConnector(key, base_url=org.pms_url, user_agent=user_agent(), limiter=limiter)


def _semble(org: Organisation, secrets: SecretBox) -> PmsConnector:
    from connectors.semble import SembleConnector

    token = _required_key(org, secrets)
    limiter = rate_limiter(f"semble|{token}", get_settings().semble_requests_per_minute)
    return SembleConnector(token, url=org.pms_url, user_agent=user_agent(), limiter=limiter)


def _fhir(org: Organisation, secrets: SecretBox) -> PmsConnector:
    from connectors.fhir import FhirConnector

    if not org.pms_url:
        raise MissingSetting(org.slug, "pms_url", "the fhir connector needs a base URL")
    token = secrets.decrypt(org.pms_key_encrypted).decode() if org.pms_key_encrypted else None
    limiter = rate_limiter(f"{org.pms_url}|{token or ''}", get_settings().fhir_requests_per_minute)
    return FhirConnector(org.pms_url, token=token, user_agent=user_agent(), limiter=limiter)


def _halaxy(org: Organisation, secrets: SecretBox) -> PmsConnector:
    from connectors.halaxy import HalaxyConnector

    if not org.pms_key_encrypted:
        reason = "the halaxy connector needs an OAuth client id and secret"
        raise MissingSetting(org.slug, "pms_client_id", reason)
    client = json.loads(secrets.decrypt(org.pms_key_encrypted))
    limiter = rate_limiter(
        f"halaxy|{org.pms_url or ''}|{client['client_id']}", get_settings().halaxy_requests_per_minute
    )
    return HalaxyConnector(
        org.pms_url,
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        token_url=client.get("token_url"),
        user_agent=user_agent(),
        limiter=limiter,
    )


PMS_CONNECTORS: dict[str, Callable[[Organisation, SecretBox], PmsConnector]] = {
    "cliniko": _cliniko,
    "fhir": _fhir,
    "halaxy": _halaxy,
    "nookal": _nookal,
    "csv": _csv,
    "semble": _semble,
    "export": _export,
}
"""How each PMS kind's connector is built from an organisation's stored settings (one entry per kind)."""
PMS_KINDS = tuple(PMS_CONNECTORS)


def pms_connector(org: Organisation, secrets: SecretBox) -> PmsConnector:
    build = PMS_CONNECTORS.get(org.pms_kind)
    if build is None:
        raise ConfigurationError(f"organisation {org.slug}: unknown PMS connector {org.pms_kind!r}")
    connector = build(org, secrets)
    if org.locations and hasattr(connector, "read_locations"):
        connector.read_locations = True  # clinic groups: read sites only when scoped by them
    return connector


def ptdirect_adapter(org: Organisation, secrets: SecretBox) -> PtDirectAdapter:
    if org.ptdirect_kind == "manual":
        from worker.runtime import get_runtime
        from worker.services.ptdirect_state import ManualPtDirectAdapter

        return ManualPtDirectAdapter(get_runtime(), org.id, org.slug)
    if org.ptdirect_kind == "file":
        from connectors.ptdirect_file import PtDirectFileAdapter

        if not org.ptdirect_path:
            raise MissingSetting(org.slug, "ptdirect_path", "the file adapter has no snapshot file set")
        return PtDirectFileAdapter(org.ptdirect_path)
    if org.ptdirect_kind == "api":
        if not org.ptdirect_url or not org.ptdirect_key_encrypted:
            missing = "ptdirect_url" if not org.ptdirect_url else "ptdirect_key"
            raise MissingSetting(org.slug, missing, "the api adapter needs the bridge's URL and key")
        from connectors.ptdirect_api import PtDirectApiAdapter

        key = secrets.decrypt(org.ptdirect_key_encrypted).decode()
        return PtDirectApiAdapter(org.ptdirect_url, key, user_agent=user_agent())
    raise ConfigurationError(f"organisation {org.slug}: unknown PT Direct adapter {org.ptdirect_kind!r}")


def physitrack_clients(
    org: Organisation, secrets: SecretBox, encrypted_keys: dict[str, str]
) -> tuple[PhysitrackClient, ...] | None:
    """Client lists of the practitioners whose v2 keys are configured; None when there are none."""
    if not encrypted_keys:
        return None
    from connectors.physitrack_v2 import pull_clients

    keys = {email: secrets.decrypt(token).decode() for email, token in encrypted_keys.items()}
    return pull_clients(
        keys, region=org.physitrack_region or "uk", base_url=org.physitrack_url, user_agent=user_agent()
    )


def missing_api_path_hint(org: Organisation, exc: Exception) -> str:
    """A hint when a 404 came from a base URL without its API path (e.g. Cliniko without /v1)."""
    from urllib.parse import urlsplit

    from connectors.http import HttpError

    if not isinstance(exc, HttpError) or exc.status != 404:
        return ""
    url = {"ptdirect api": org.ptdirect_url, "physitrack": org.physitrack_url}.get(exc.connector, org.pms_url)
    if not url or urlsplit(url).path.strip("/"):
        return ""
    return (
        f" (the URL {url} has no API path: Cliniko's ends in /v1, a FHIR server's base is usually "
        "something like https://host/fhir)"
    )
