"""Credentials at rest: MultiFernet so keys can be rotated without re-entering secrets."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from worker.errors import ConfigurationError
from worker.settings import Settings

log = logging.getLogger(__name__)


class SecretBox:
    """Encrypts and decrypts short secrets (API keys, pseudonym keys)."""

    def __init__(self, keys: list[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
            self._primary = keys[0].strip().encode()
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "PTSYNC_SECRET_KEY is not a valid Fernet key (or comma-separated list of keys)"
            ) from exc

    def encrypt(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except InvalidToken as exc:
            raise ConfigurationError(
                "a stored secret cannot be decrypted with PTSYNC_SECRET_KEY (was the key changed "
                "without keeping the old one in the list?)"
            ) from exc

    def derive_key(self, purpose: str) -> bytes:
        """A stable key for one purpose (e.g. signing session cookies), derived from the newest key."""
        return hmac.new(self._primary, purpose.encode(), hashlib.sha256).digest()

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")


def load_secret_box(settings: Settings) -> SecretBox:
    if settings.secret_key:
        return SecretBox([key for key in settings.secret_key.split(",") if key.strip()])
    if not settings.is_sqlite:
        raise ConfigurationError("PTSYNC_SECRET_KEY is required when the database is not SQLite")
    database = make_url(settings.resolved_database_url).database or ""
    if not database or database == ":memory:":
        raise ConfigurationError("PTSYNC_SECRET_KEY is required for an in-memory database")
    key_file = Path(database).with_suffix(".key")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
        log.warning(
            "PTSYNC_SECRET_KEY is not set: created %s (owner-only) to encrypt credentials. "
            "Back it up; without it stored credentials cannot be read.",
            key_file,
        )
    return SecretBox([key_file.read_text().strip()])
