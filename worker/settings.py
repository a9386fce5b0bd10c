"""Configuration from the environment (`PTSYNC_*`), read once per process."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_path
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.errors import ConfigurationError
from connectors.limits import DEFAULT_EXPORT_MB, DEFAULT_SNAPSHOT_MB

DEFAULT_DATABASE_FILE = "ptsync.db"


_ONE_LINE = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
"""A character a header or a log line can carry: no control characters, no line separators."""

_FORMATS: dict[str, tuple[str, str, bool]] = {
    # variable (field): the pattern its whole value must match, what to say if not, and whether
    # empty means "not set" (then a default applies). Checked at start, so a bad value is one
    # line then rather than a traceback (or a header with a line break in it) mid-run.
    # In every PMS request's User-Agent (sent as Latin-1), and the default sender of email.
    "contact_email": (
        r"[\x20-\x7e\xa0-\xff]+@[\x20-\x7e\xa0-\xff]+",
        "should be an email address on one line, in Latin-1 letters (it goes into a User-Agent), "
        "such as ops@your-clinic.example",
        False,
    ),
    "smtp_from": (
        f"{_ONE_LINE}+@{_ONE_LINE}+",
        "should be an email address on one line, such as ptsync@your-clinic.example",
        True,
    ),
    # The base of the links in notifications: only a web address, with no credentials in it.
    "public_url": (
        r"(?i)https?://[^\s/@\x00-\x1f\x7f]+(/[^\s\x00-\x1f\x7f]*)?",
        "should be the http:// or https:// address people reach `ptsync web` at",
        False,
    ),
}


def _parse_database_url(url: str) -> None:
    from sqlalchemy.engine import make_url  # not imported by commands that never read it

    if make_url(url).get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError("ptsync runs on SQLite and PostgreSQL only")


def _parse_redis_url(url: str) -> None:
    from redis.connection import parse_url

    parse_url(url)


_URLS = {
    # variable (field): its parser (the one the engine or the broker will use), and what to say
    # when it refuses: in ptsync's words, since the parsers' can quote part of a password.
    "database_url": (
        _parse_database_url,
        "should be a PostgreSQL or SQLite URL, such as postgresql://user:password@host/db "
        "or sqlite:///path/ptsync.db (with @, : and / in a password percent-encoded)",
    ),
    "broker_url": (
        _parse_redis_url,
        "should be a Redis URL: redis://, rediss:// or unix:// (with @, : and / in a password "
        "percent-encoded)",
    ),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PTSYNC_", extra="ignore")

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; unset means a SQLite file ptsync.db in the user data directory",
    )
    broker_url: str = Field(default="", description="redis://... ; unset means in-process")
    secret_key: str = Field(default="", description="Fernet key(s), comma-separated, newest first")
    contact_email: str = Field(default="ops@example.invalid", description="for API User-Agents")
    run_lease_seconds: int = Field(default=30, ge=2, description="a silent sync is presumed dead after this")
    redrive_after_seconds: float = Field(
        default=30, gt=0, description="pending work whose message went unanswered this long is sent again"
    )
    redis_heartbeat_timeout_ms: int = Field(default=15_000, ge=1_000)
    redis_maintenance_chance: int = Field(default=50_000, ge=1, le=1_000_000)
    cliniko_requests_per_minute: float = Field(
        default=190, gt=0, description="per API key, all processes together (Cliniko allows 200)"
    )
    fhir_requests_per_minute: float = Field(default=600, gt=0, description="per FHIR server and token")
    semble_requests_per_minute: float = Field(
        default=230, gt=0, description="per Semble API token, all processes together (Semble allows 240)"
    )
    halaxy_requests_per_minute: float = Field(
        default=475, gt=0, description="per Halaxy API client, all processes together (Halaxy allows 500)"
    )
    nookal_requests_per_minute: float = Field(
        default=120, gt=0, description="per Nookal API key, all processes together (none published)"
    )
    shared_pms_reads: bool = Field(
        default=True, description="clinic groups: organisations on one PMS key share a sync round's read"
    )
    # Operating it (notifications, logs, retention): see README "Notifications" and "Monitoring".
    public_url: str = Field(default="http://127.0.0.1:8000", description="base URL for links in messages")
    smtp_host: str = Field(default="", description="SMTP server for email: channels")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str = Field(default="")
    smtp_password: str = Field(default="")
    smtp_from: str = Field(default="", description="sender address; defaults to PTSYNC_CONTACT_EMAIL")
    smtp_security: str = Field(default="starttls", pattern="^(starttls|ssl|none)$")
    notify_failures_in_a_row: int = Field(default=3, ge=1, description="failed runs before an alert")
    log_format: str = Field(default="text", pattern="^(text|json)$")
    retention_days: int = Field(default=180, ge=1, description="prune runs/deliveries older than this")
    # Read where files are read (connectors/limits.py, with its defaults); declared here so a
    # malformed value is refused at start with the others rather than quietly replaced there.
    max_snapshot_mb: int = Field(default=DEFAULT_SNAPSHOT_MB, gt=0, description="largest snapshot file read")
    max_export_mb: int = Field(
        default=DEFAULT_EXPORT_MB, gt=0, description="largest PMS export CSV file read"
    )

    @field_validator(*_URLS)
    @classmethod
    def _a_url(cls, url: str, info: ValidationInfo) -> str:
        if url:
            parse, problem = _URLS[info.field_name]
            try:
                parse(url)
            except Exception:  # any refusal: its text may hold the password
                raise ValueError(problem) from None
        return url

    @field_validator(*_FORMATS)
    @classmethod
    def _well_formed(cls, value: str, info: ValidationInfo) -> str:
        pattern, problem, may_be_empty = _FORMATS[info.field_name]
        if not (value == "" and may_be_empty) and not re.fullmatch(pattern, value):
            raise ValueError(problem)
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{default_database_path()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def default_database_path() -> Path:
    """One well-known place per user (found from any folder and from cron).

    The platform's user data directory: `$XDG_DATA_HOME/ptsync` (usually ~/.local/share/ptsync)
    on Linux, ~/Library/Application Support/ptsync on macOS, %LOCALAPPDATA%\\ptsync on Windows.
    """
    folder = user_data_path("ptsync", appauthor=False)
    folder.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
    return folder / DEFAULT_DATABASE_FILE


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings. A malformed variable is a `ConfigurationError` that names it and
    says why in one line (the CLI prints it and exits 1), not pydantic's multi-line report."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(settings_problem(exc)) from None


_NOT_ECHOED = ("password", "secret", "key", "token", "url")
"""Variables whose value a message leaves out: a password, a key, a URL with credentials in it."""


def settings_problem(error: ValidationError) -> str:
    """ "configuration: PTSYNC_RUN_LEASE_SECONDS='1': should be greater than or equal to 2; ..."
    for each bad variable."""
    problems = []
    for item in error.errors():
        field = "_".join(str(part) for part in item["loc"])
        name = f"PTSYNC_{field.upper()}"
        value = item.get("input")
        if any(word in field.lower() for word in _NOT_ECHOED) or not isinstance(value, str):
            shown = name
        else:
            shown = f"{name}={value if len(value) <= 40 else value[:40] + '...'!r}"
        if item["type"] == "value_error":  # this module's own validators say it in full
            problems.append(f"{shown}: {item['msg'].removeprefix('Value error, ')}")
            continue
        choices = re.fullmatch(r"\^\(([\w|-]+)\)\$", str((item.get("ctx") or {}).get("pattern", "")))
        if choices:  # '^(text|json)$' reads as the choices it allows
            reason = "should be one of " + ", ".join(choices.group(1).split("|"))
        else:
            reason = item["msg"].removeprefix("Input ").removeprefix("String ")
        problems.append(f"{shown}: {reason}")
    return "configuration: " + "; ".join(problems)
