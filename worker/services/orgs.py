"""Adding organisations: validate every setting before anything is stored."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from connectors.cliniko import base_url_for_key
from connectors.errors import ConnectorError
from connectors.physitrack_v2 import REGIONS
from sharing import Mode
from worker.clock import utcnow
from worker.connections import PMS_KINDS, PTDIRECT_KINDS
from worker.errors import InvalidInput
from worker.runtime import Runtime
from worker.services.schedule import parse_schedule
from worker.store import repositories as repo
from worker.store.models import Organisation, PhysitrackKey

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class NewOrganisation:
    slug: str
    pms: str
    ptdirect: str
    pms_url: str | None = None
    pms_key: str | None = None
    pms_path: str | None = None
    ptdirect_path: str | None = None
    ptdirect_url: str | None = None
    ptdirect_key: str | None = None
    policy: str = "propose"
    schedule: str = "0 * * * *"
    physitrack_region: str | None = None
    physitrack_url: str | None = None
    allow_insecure_http: bool = False
    webhook_min_interval: int = 60


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(option: str, url: str | None, allow_insecure_http: bool = False) -> None:
    """A remote URL the credentials go to: https (plain http only on loopback or when allowed
    explicitly), and no `user:password@` in it (keys go in their own, encrypted, option)."""
    if url is None:
        return
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"{option} must start with https:// (or http:// on this machine)")
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            f"{option} must not carry credentials (user:password@...): give the key in its own "
            "option, which is stored encrypted"
        )
    if not parts.hostname:
        raise InvalidInput(f"{option} has no host")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise InvalidInput(
            f"{option} uses plain http:// to {parts.hostname}: credentials and patient data would "
            "cross the network unencrypted; use https:// (or --allow-insecure-http on a trusted network)"
        )


def validate(new: NewOrganisation) -> None:
    if not _SLUG.match(new.slug):
        raise InvalidInput(
            f"invalid organisation slug {new.slug!r}: use lower-case letters, digits and '-' (max 63)"
        )
    if new.pms not in PMS_KINDS:
        raise InvalidInput(f"--pms must be one of {', '.join(PMS_KINDS)}")
    if new.ptdirect not in PTDIRECT_KINDS:
        raise InvalidInput(f"--ptdirect must be one of {', '.join(PTDIRECT_KINDS)}")
    check_url("--pms-url", new.pms_url, new.allow_insecure_http)
    check_url("--ptdirect-url", new.ptdirect_url, new.allow_insecure_http)
    check_url("--physitrack-url", new.physitrack_url, new.allow_insecure_http)
    if new.pms == "cliniko":
        if not new.pms_key:
            raise InvalidInput(
                "--pms cliniko needs --pms-key (a Cliniko API key, ending in its shard, e.g. -au1)"
            )
        if new.pms_url is None:
            try:
                base_url_for_key(new.pms_key)
            except ConnectorError as exc:
                raise InvalidInput(exc.reason) from None
    if new.pms == "fhir" and not new.pms_url:
        raise InvalidInput(
            "--pms fhir needs --pms-url (the FHIR base URL); --pms-key is an optional bearer token"
        )
    if new.pms == "csv":
        if not new.pms_path:
            raise InvalidInput(
                "--pms csv needs --pms-path DIR (a folder with practitioners.csv and patient_access.csv)"
            )
        if not Path(new.pms_path).is_dir():
            raise InvalidInput(f"--pms-path {new.pms_path}: not a folder")
    if new.ptdirect == "file":
        if not new.ptdirect_path:
            raise InvalidInput("--ptdirect file needs --ptdirect-path FILE (a ptsync.ptdirect/1 snapshot)")
        path = Path(new.ptdirect_path)
        if not path.is_file():
            raise InvalidInput(f"--ptdirect-path {new.ptdirect_path}: file not found")
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            raise InvalidInput(f"--ptdirect-path {new.ptdirect_path}: not writable (applying rewrites it)")
    if new.ptdirect == "api":
        if not new.ptdirect_url or not new.ptdirect_url.startswith(("http://", "https://")):
            raise InvalidInput(
                "--ptdirect api needs --ptdirect-url http(s)://... (the admin bridge's base URL)"
            )
        if not new.ptdirect_key:
            raise InvalidInput("--ptdirect api needs --ptdirect-key (the admin bridge's key)")
    if new.physitrack_region is not None and new.physitrack_region not in REGIONS:
        raise InvalidInput(f"--physitrack-region must be one of {', '.join(REGIONS)}")
    if not 0 <= new.webhook_min_interval <= 86_400:
        raise InvalidInput("--webhook-min-interval must be between 0 and 86400 seconds")
    try:
        Mode(new.policy)
    except ValueError:
        raise InvalidInput("--policy must be one of observe, propose, apply-safe") from None
    if len(new.schedule.split()) != 5:
        raise InvalidInput(f"--schedule {new.schedule!r} is not a 5-field cron expression (e.g. '0 * * * *')")
    parse_schedule(new.schedule)


def add_organisation(runtime: Runtime, new: NewOrganisation, actor: str = "cli") -> Organisation:
    validate(new)
    now = utcnow()
    secrets = runtime.secrets
    with runtime.db.transaction() as session:
        if repo.find_org(session, new.slug) is not None:
            raise InvalidInput(f"organisation {new.slug!r} already exists")
        org = Organisation(
            slug=new.slug,
            pms_kind=new.pms,
            pms_url=new.pms_url,
            pms_path=str(Path(new.pms_path).resolve()) if new.pms_path else None,
            pms_key_encrypted=secrets.encrypt(new.pms_key.encode()) if new.pms_key else None,
            ptdirect_kind=new.ptdirect,
            ptdirect_url=new.ptdirect_url,
            ptdirect_path=str(Path(new.ptdirect_path).resolve()) if new.ptdirect_path else None,
            ptdirect_key_encrypted=secrets.encrypt(new.ptdirect_key.encode()) if new.ptdirect_key else None,
            pseudonym_key_encrypted=secrets.encrypt(os.urandom(32)),
            mode=new.policy,
            sharing_scope="co-treating",
            master_recipients="all-active",
            schedule=new.schedule,
            lookback_days=540,
            physitrack_region=new.physitrack_region,
            physitrack_url=new.physitrack_url,
            webhook_min_interval_seconds=new.webhook_min_interval,
            created_at=now,
        )
        session.add(org)
        session.flush()
        repo.audit(
            session,
            org.id,
            actor,
            "organisation_added",
            now,
            slug=new.slug,
            pms=new.pms,
            ptdirect=new.ptdirect,
            policy=new.policy,
        )
        return org


def set_physitrack_key(runtime: Runtime, slug: str, email: str, key: str, actor: str = "cli") -> None:
    """Store (or replace) a practitioner's Physitrack v2 key, encrypted."""
    email = email.strip()
    if "@" not in email:
        raise InvalidInput(f"not an email address: {email!r}")
    if not key.strip():
        raise InvalidInput("the key is empty")
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        row = session.get(PhysitrackKey, (org.id, email.lower()))
        token = runtime.secrets.encrypt(key.strip().encode())
        if row is None:
            session.add(
                PhysitrackKey(
                    org_id=org.id, practitioner_email=email.lower(), key_encrypted=token, updated_at=now
                )
            )
        else:
            row.key_encrypted = token
            row.updated_at = now
        repo.audit(session, org.id, actor, "physitrack_key_set", now, practitioner=email.lower())
