"""Builds an organisation's PMS connector and PT Direct adapters from its stored settings."""

from __future__ import annotations

import json
from functools import lru_cache

from connectors.base import PmsConnector, PtDirectAdapter
from connectors.cliniko import ClinikoConnector
from connectors.csv_pms import CsvPmsConnector
from connectors.export import ExportConnector
from connectors.fhir import FhirConnector
from connectors.halaxy import HalaxyConnector
from connectors.nookal import NookalConnector
from connectors.physitrack_v2 import pull_clients
from connectors.ptdirect_api import PtDirectApiAdapter
from connectors.ptdirect_file import PtDirectFileAdapter
from connectors.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter, limiter_name
from connectors.semble import SembleConnector
from sharing import PhysitrackClient
from worker.crypto import SecretBox
from worker.errors import ConfigurationError
from worker.settings import get_settings
from worker.store.models import Organisation

PMS_KINDS = ("cliniko", "fhir", "halaxy", "nookal", "csv", "semble", "export")
PTDIRECT_KINDS = ("manual", "file", "api")


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
        raise ConfigurationError(f"organisation {org.slug}: the {org.pms_kind} connector needs --pms-key")
    return secrets.decrypt(org.pms_key_encrypted).decode()


def pms_connector(org: Organisation, secrets: SecretBox) -> PmsConnector:
    settings = get_settings()
    if org.pms_kind == "csv":
        if not org.pms_path:
            raise ConfigurationError(f"organisation {org.slug}: the csv connector needs --pms-path")
        return CsvPmsConnector(org.pms_path)
    if org.pms_kind == "cliniko":
        key = _required_key(org, secrets)
        return ClinikoConnector(
            key,
            base_url=org.pms_url,
            user_agent=user_agent(),
            limiter=rate_limiter(key, settings.cliniko_requests_per_minute),
            read_locations=bool(org.locations),
        )
    if org.pms_kind == "fhir":
        if not org.pms_url:
            raise ConfigurationError(f"organisation {org.slug}: the fhir connector needs --pms-url")
        token = secrets.decrypt(org.pms_key_encrypted).decode() if org.pms_key_encrypted else None
        return FhirConnector(
            org.pms_url,
            token=token,
            user_agent=user_agent(),
            limiter=rate_limiter(f"{org.pms_url}|{token or ''}", settings.fhir_requests_per_minute),
            read_locations=bool(org.locations),
        )
    if org.pms_kind == "semble":
        token = _required_key(org, secrets)
        return SembleConnector(
            token,
            url=org.pms_url,
            user_agent=user_agent(),
            limiter=rate_limiter(f"semble|{token}", settings.semble_requests_per_minute),
            read_locations=bool(org.locations),
        )
    if org.pms_kind == "export":
        if not org.pms_path or not org.pms_format:
            raise ConfigurationError(
                f"organisation {org.slug}: the export connector needs --pms-path and --pms-format"
            )
        return ExportConnector(org.pms_path, org.pms_format, staff_path=org.pms_staff_path)
    if org.pms_kind == "halaxy":
        if not org.pms_key_encrypted:
            raise ConfigurationError(
                f"organisation {org.slug}: the halaxy connector needs --pms-client-id and --pms-client-secret"
            )
        client = json.loads(secrets.decrypt(org.pms_key_encrypted))
        return HalaxyConnector(
            org.pms_url,
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            token_url=client.get("token_url"),
            user_agent=user_agent(),
            limiter=rate_limiter(
                f"halaxy|{org.pms_url or ''}|{client['client_id']}", settings.halaxy_requests_per_minute
            ),
            read_locations=bool(org.locations),
        )
    if org.pms_kind == "nookal":
        key = _required_key(org, secrets)
        return NookalConnector(
            key,
            base_url=org.pms_url,
            user_agent=user_agent(),
            limiter=rate_limiter(key, settings.nookal_requests_per_minute),
            read_locations=bool(org.locations),
        )
    raise ConfigurationError(f"organisation {org.slug}: unknown PMS connector {org.pms_kind!r}")


def ptdirect_adapter(org: Organisation, secrets: SecretBox) -> PtDirectAdapter:
    if org.ptdirect_kind == "manual":
        from worker.runtime import get_runtime
        from worker.services.ptdirect_state import ManualPtDirectAdapter

        return ManualPtDirectAdapter(get_runtime(), org.id, org.slug)
    if org.ptdirect_kind == "file":
        if not org.ptdirect_path:
            raise ConfigurationError(f"organisation {org.slug}: the file adapter needs --ptdirect-path")
        return PtDirectFileAdapter(org.ptdirect_path)
    if org.ptdirect_kind == "api":
        if not org.ptdirect_url or not org.ptdirect_key_encrypted:
            raise ConfigurationError(
                f"organisation {org.slug}: the api adapter needs --ptdirect-url and --ptdirect-key"
            )
        key = secrets.decrypt(org.ptdirect_key_encrypted).decode()
        return PtDirectApiAdapter(org.ptdirect_url, key, user_agent=user_agent())
    raise ConfigurationError(f"organisation {org.slug}: unknown PT Direct adapter {org.ptdirect_kind!r}")


def physitrack_clients(
    org: Organisation, secrets: SecretBox, encrypted_keys: dict[str, str]
) -> tuple[PhysitrackClient, ...] | None:
    """Client lists of the practitioners whose v2 keys are configured; None when there are none."""
    if not encrypted_keys:
        return None
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
