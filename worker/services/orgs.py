"""Adding organisations: validate every setting before anything is stored."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.cliniko import base_url_for_key
from connectors.errors import ConnectorError
from connectors.export_mapping import load_mapping, preset_names
from connectors.physitrack_v2 import REGIONS
from sharing import MasterRecipients, Mode, SharingScope
from worker.clock import utcnow
from worker.connections import PMS_KINDS, PTDIRECT_KINDS
from worker.errors import InvalidInput
from worker.runtime import Runtime
from worker.services import pms_account
from worker.services.schedule import parse_schedule, validate_full_sync
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
    pms_client_id: str | None = None
    pms_client_secret: str | None = None
    pms_token_url: str | None = None
    ptdirect_path: str | None = None
    ptdirect_url: str | None = None
    ptdirect_key: str | None = None
    policy: str = "propose"
    schedule: str = "*/2 * * * *"  # the incremental poll (README "Polls and the full sync")
    physitrack_region: str | None = None
    physitrack_url: str | None = None
    sharing_scope: str = "co-treating"
    master_recipients: str = "all-active"
    lookback_days: int = 540
    removal_threshold: int = 30
    removal_threshold_people: int = 2
    timezone: str = "UTC"
    pms_format: str | None = None  # --pms export: a preset name or a mapping TOML file
    pms_staff: str | None = None  # --pms export: an optional staff list CSV
    allow_insecure_http: bool = False
    webhook_min_interval: int = 60
    locations: str | None = None  # clinic groups: PMS location ids, comma-separated
    include_people: str | None = None  # PMS practitioner ids or emails, comma-separated
    exclude_people: str | None = None
    full_sync: str = "30 2 * * *"  # cron (UTC) of the full reconciliation sync


def validate_settings(new: NewOrganisation) -> None:
    """The reconciliation settings: each checked with the option name a person typed."""
    try:
        SharingScope(new.sharing_scope)
    except ValueError:
        raise InvalidInput("--sharing-scope must be co-treating or everyone") from None
    try:
        MasterRecipients(new.master_recipients)
    except ValueError:
        raise InvalidInput("--master-recipients must be all-active or manual") from None
    if not 1 <= new.lookback_days <= 3650:
        raise InvalidInput(f"--lookback-days must be between 1 and 3650, got {new.lookback_days}")
    if not 0 <= new.removal_threshold <= 100:
        raise InvalidInput(
            f"--removal-threshold must be a percentage from 0 to 100, got {new.removal_threshold}"
        )
    if new.removal_threshold_people < 0:
        raise InvalidInput("--removal-threshold-people must not be negative")
    try:
        ZoneInfo(new.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"--timezone {new.timezone!r} is not an IANA time zone name "
            "(e.g. Europe/London, Australia/Sydney)"
        ) from None


def _validate_halaxy_and_nookal(new: NewOrganisation) -> None:
    """Options of the OAuth (Halaxy) and query-key (Nookal) connectors."""
    oauth = {"--pms-client-id": new.pms_client_id, "--pms-client-secret": new.pms_client_secret}
    if new.pms != "halaxy":
        given = [name for name, value in (*oauth.items(), ("--pms-token-url", new.pms_token_url)) if value]
        if given:
            raise InvalidInput(f"{given[0]} is only for --pms halaxy")
        if new.pms == "nookal":
            if not new.pms_key:
                raise InvalidInput("--pms nookal needs --pms-key (a Nookal API key, from Setup > API Keys)")
            if new.pms_url and ("?" in new.pms_url or "api_key" in new.pms_url):
                raise InvalidInput("--pms-url must not contain a query string: give the key with --pms-key")
        return
    missing = [name for name, value in oauth.items() if not (value or "").strip()]
    if missing:
        raise InvalidInput(
            f"--pms halaxy needs {' and '.join(missing)} (from the Halaxy developer page's API key)"
        )
    if new.pms_key:
        raise InvalidInput("--pms halaxy takes --pms-client-id and --pms-client-secret, not --pms-key")


def _pms_secret(new: NewOrganisation) -> bytes | None:
    """What `pms_key_encrypted` holds: the key, or (Halaxy) the OAuth client as JSON."""
    if new.pms == "halaxy":
        client = {"client_id": new.pms_client_id.strip(), "client_secret": new.pms_client_secret.strip()}
        if new.pms_token_url:
            client["token_url"] = new.pms_token_url
        return json.dumps(client).encode()
    return new.pms_key.encode() if new.pms_key else None


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


SECRET_SETTINGS = ("pms_key", "pms_client_secret", "ptdirect_key")
"""Settings that are secrets: stored encrypted, shown and audited only as "(secret changed)"."""

_USED_BY = {
    "pms_url": ("pms", ("cliniko", "fhir", "halaxy", "nookal", "semble")),
    "pms_key": ("pms", ("cliniko", "fhir", "nookal", "semble")),
    "pms_path": ("pms", ("csv", "export")),
    "ptdirect_path": ("ptdirect", ("file",)),
    "ptdirect_url": ("ptdirect", ("api",)),
    "ptdirect_key": ("ptdirect", ("api",)),
}
"""Which connectors read each connection option (the others have checks of their own below)."""


def refuse_unused_options(new: NewOrganisation, given: Iterable[str] | None = None) -> None:
    """An option the chosen connector never reads is refused, not stored without a word.

    `--pms-key` on a CSV folder, or `--ptdirect-path` with the bridge, is a mistake about which
    connector was chosen: storing it would let the admin believe it is used. `given`: the options
    the admin gave (an update checks only those: settings stored under another connector stay).
    """
    for field in given if given is not None else _USED_BY:
        if field not in _USED_BY or not getattr(new, field):
            continue
        side, kinds = _USED_BY[field]
        chosen = getattr(new, side)
        if chosen not in kinds:
            option = "--" + field.replace("_", "-")
            raise InvalidInput(
                f"{option} is not used by --{side} {chosen} "
                f"(it is for --{side} {', '.join(kinds)}): leave it out"
            )


def validate(new: NewOrganisation, given: Iterable[str] | None = None) -> None:
    """Every setting of `new`, before anything is stored or tested. `given`: for an update, the
    options the admin changed (see `refuse_unused_options`); for an addition, None (all)."""
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
    check_url("--pms-token-url", new.pms_token_url, new.allow_insecure_http)  # the client secret goes there
    _validate_pms(new)
    _validate_ptdirect(new)
    refuse_unused_options(new, given)
    if new.physitrack_region is not None and new.physitrack_region not in REGIONS:
        raise InvalidInput(f"--physitrack-region must be one of {', '.join(REGIONS)}")
    if not 0 <= new.webhook_min_interval <= 86_400:
        raise InvalidInput("--webhook-min-interval must be between 0 and 86400 seconds")
    try:
        Mode(new.policy)
    except ValueError:
        raise InvalidInput("--policy must be one of observe, propose, apply-safe") from None
    validate_settings(new)
    from worker.services.org_scope import scope_from

    scope_from(new.locations, new.include_people, new.exclude_people)  # clinic groups: well-formed
    if len(new.schedule.split()) != 5:
        raise InvalidInput(f"--schedule {new.schedule!r} is not a 5-field cron expression (e.g. '0 * * * *')")
    parse_schedule(new.schedule)
    validate_full_sync(new.full_sync)


def _validate_semble_or_export(new: NewOrganisation) -> None:
    if new.pms == "semble" and not (new.pms_key or "").strip():
        raise InvalidInput("--pms semble needs --pms-key (an API token from Semble: Settings, API access)")
    if new.pms != "export":
        if new.pms_format or new.pms_staff:
            raise InvalidInput("--pms-format and --pms-staff are only for --pms export")
        return
    if not new.pms_path or not new.pms_format:
        raise InvalidInput(
            "--pms export needs --pms-path FILE_OR_DIR (CSV or XLSX) and --pms-format NAME "
            f"(a preset: {', '.join(preset_names())}; or a mapping .toml file)"
        )
    path = Path(new.pms_path)
    if not path.exists():
        raise InvalidInput(f"--pms-path {new.pms_path}: no such file or folder")
    try:
        load_mapping(new.pms_format)
    except ConnectorError as exc:
        raise InvalidInput(f"--pms-format: {exc.reason}") from None
    if new.pms_staff is not None and not Path(new.pms_staff).is_file():
        raise InvalidInput(f"--pms-staff {new.pms_staff}: file not found (a CSV id,name,email,active)")


def _stored_format(name: str | None) -> str | None:
    """A preset is stored by name, a mapping file by its absolute path."""
    if name is None or name in preset_names():
        return name
    return str(Path(name).resolve())


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
            pms_key_encrypted=secrets.encrypt(secret) if (secret := _pms_secret(new)) else None,
            pms_format=_stored_format(new.pms_format),
            pms_staff_path=str(Path(new.pms_staff).resolve()) if new.pms_staff else None,
            ptdirect_kind=new.ptdirect,
            ptdirect_url=new.ptdirect_url,
            ptdirect_path=str(Path(new.ptdirect_path).resolve()) if new.ptdirect_path else None,
            ptdirect_key_encrypted=secrets.encrypt(new.ptdirect_key.encode()) if new.ptdirect_key else None,
            pseudonym_key_encrypted=secrets.encrypt(os.urandom(32)),
            mode=new.policy,
            sharing_scope=new.sharing_scope,
            master_recipients=new.master_recipients,
            schedule=new.schedule,
            lookback_days=new.lookback_days,
            removal_threshold_percent=new.removal_threshold,
            removal_threshold_people=new.removal_threshold_people,
            timezone=new.timezone,
            physitrack_region=new.physitrack_region,
            physitrack_url=new.physitrack_url,
            webhook_min_interval_seconds=new.webhook_min_interval,
            locations=new.locations or None,
            include_people=new.include_people or None,
            exclude_people=new.exclude_people or None,
            full_sync=new.full_sync,
            created_at=now,
        )
        pms_account.fingerprint(org, secrets)
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


def _validate_pms(new: NewOrganisation) -> None:
    """The PMS connector's own settings: what each kind needs before anything is stored."""
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
    _validate_halaxy_and_nookal(new)
    if new.pms == "csv":
        if not new.pms_path:
            raise InvalidInput(
                "--pms csv needs --pms-path DIR (a folder with practitioners.csv and patient_access.csv)"
            )
        if not Path(new.pms_path).is_dir():
            raise InvalidInput(f"--pms-path {new.pms_path}: not a folder")
    _validate_semble_or_export(new)


def _validate_ptdirect(new: NewOrganisation) -> None:
    """Where PT Direct's state is read from and written to."""
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
