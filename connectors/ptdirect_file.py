"""The PT Direct file adapter: a `ptsync.ptdirect/1` snapshot on disk.

Reads are validated field by field (errors name the file and the JSON path). Writes are atomic
(temp file, fsync, rename) and serialised by an exclusive lock on a sibling `.lock` file, so two
appliers can never interleave and a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import difflib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.errors import InputFileError
from connectors.limits import read_json_file
from connectors.schema_check import certainly_valid
from sharing import (
    MasterAccount,
    Operation,
    PhysitrackClient,
    PmsLink,
    PtDirectSnapshot,
    PtUser,
    SharingMember,
    UserStatus,
)
from sharing.apply import apply_operation, is_in_effect
from sharing.identity import normalise_email

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

NAME = "ptdirect file"
SCHEMA = "ptsync.ptdirect/1"
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "ptsync.ptdirect-1.schema.json"


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # only for a document the quick check doubts

    return Draft202012Validator(_schema())


def _json_path(parts: Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "$"


def _unknown_keys(error: ValidationError) -> list[tuple[str, str]]:
    """(path of the unknown key, reason) for an additionalProperties error."""
    allowed = sorted(error.schema.get("properties", {}))
    found = []
    for key in sorted(set(error.instance) - set(allowed)):
        hint = difflib.get_close_matches(key, allowed, n=1)
        reason = f"unknown key {key!r} (not part of {SCHEMA}"
        reason += f"; did you mean {hint[0]!r}?)" if hint else f"; expected one of {', '.join(allowed)})"
        found.append((_json_path([*error.absolute_path, key]), reason))
    return found


def _schema_errors(document: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(unknown keys, other violations) of the JSON Schema, each as (path, reason)."""
    unknown, other = [], []
    if certainly_valid(document, _schema()):  # the usual case, without importing jsonschema
        return unknown, other
    for error in sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "additionalProperties":
            unknown += _unknown_keys(error)
        else:
            other.append((_json_path(error.absolute_path), error.message))
    return unknown, other


class PtDirectFileAdapter:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> PtDirectSnapshot:
        return parse_snapshot(self._load(), str(self.path))

    def apply(self, operation: Operation, *, idempotency_key: str) -> None:
        with self._locked():
            snapshot = self.read()
            if is_in_effect(snapshot, operation):
                return
            self.write(apply_operation(snapshot, operation))

    def write(self, snapshot: PtDirectSnapshot) -> None:
        document = snapshot_document(snapshot)
        directory = self.path.parent
        descriptor, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            directory_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(directory_fd)
            finally:
                os.close(directory_fd)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> Any:
        return read_json_file(NAME, self.path)


class _Reader:
    """Typed access to a JSON document that reports the path of whatever is wrong."""

    def __init__(self, path: str, connector: str = NAME) -> None:
        self.path = path
        self.connector = connector

    def fail(self, where: str, reason: str) -> InputFileError:
        return InputFileError(self.connector, self.path, reason, field=where)

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected an object")
        return value

    def array(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "expected an array")
        return value

    def text(self, parent: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
        value = parent.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", "expected a non-empty string")
        return value.strip()

    def email(self, parent: dict[str, Any], key: str, where: str) -> str:
        value = self.text(parent, key, where) or ""
        if "@" not in value:
            raise self.fail(f"{where}.{key}", f"not an email address: {value!r}")
        return value

    def unique(self, seen: dict[str, tuple[str, str]], email: str, where: str, what: str) -> None:
        """Refuse a second entry for the same person: the result would depend on the order."""
        key = normalise_email(email) or ""
        if key in seen:
            first_where, first_email = seen[key]
            raise self.fail(
                where,
                f"duplicate {what} {email!r}: the same person as {first_where} {first_email!r} "
                "(emails are compared ignoring case, surrounding spaces and Unicode form)",
            )
        seen[key] = (where, email)

    def flag(self, parent: dict[str, Any], key: str, where: str) -> bool:
        value = parent.get(key)
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", "expected true or false")
        return value


def parse_snapshot(document: Any, path: str, connector: str = NAME) -> PtDirectSnapshot:
    """Validate a PT Direct state document; errors name `connector` (the file, or the API) and the path."""
    r = _Reader(path, connector)
    root = r.obj(document, "$")
    if root.get("schema") != SCHEMA:
        raise r.fail("schema", f"expected {SCHEMA!r}, got {root.get('schema')!r}")
    unknown, violations = _schema_errors(root)
    if unknown:  # a misspelt key must never be silently ignored
        raise r.fail(*unknown[0])
    snapshot = _parse_checked(r, root)
    if violations:  # anything the field checks above did not already name
        raise r.fail(*violations[0])
    return snapshot


def _parse_checked(r: _Reader, root: dict[str, Any]) -> PtDirectSnapshot:
    users = []
    seen: dict[str, tuple[str, str]] = {}
    for index, raw in enumerate(r.array(root.get("users"), "users")):
        where = f"users[{index}]"
        item = r.obj(raw, where)
        email = r.email(item, "email", where)
        r.unique(seen, email, f"{where}.email", "user")
        status = item.get("status")
        if status not in ("confirmed", "unconfirmed"):
            raise r.fail(f"{where}.status", f"expected 'confirmed' or 'unconfirmed', got {status!r}")
        link = None
        if item.get("pms_link") is not None:
            raw_link = r.obj(item["pms_link"], f"{where}.pms_link")
            practitioner_id = raw_link.get("practitioner_id")
            if isinstance(practitioner_id, int) and not isinstance(practitioner_id, bool):
                practitioner_id = str(practitioner_id)
            raw_link = {**raw_link, "practitioner_id": practitioner_id}
            link = PmsLink(
                r.text(raw_link, "system", f"{where}.pms_link") or "",
                r.text(raw_link, "practitioner_id", f"{where}.pms_link") or "",
            )
        users.append(
            PtUser(
                email=email,
                name=r.text(item, "name", where) or "",
                status=UserStatus(status),
                practitioner_access=r.flag(item, "practitioner_access", where),
                pms_link=link,
            )
        )
    master = None
    if root.get("master_account") is not None:
        raw_master = r.obj(root["master_account"], "master_account")
        recipients = r.array(raw_master.get("recipients", []), "master_account.recipients")
        seen_recipients: dict[str, tuple[str, str]] = {}
        for index, recipient in enumerate(recipients):
            if not isinstance(recipient, str) or "@" not in recipient:
                raise r.fail(f"master_account.recipients[{index}]", "expected an email address")
            r.unique(seen_recipients, recipient, f"master_account.recipients[{index}]", "recipient")
        master = MasterAccount(r.email(raw_master, "email", "master_account"), tuple(recipients))
    sharing = r.obj(root.get("practitioner_sharing", {"members": []}), "practitioner_sharing")
    members = []
    seen_members: dict[str, tuple[str, str]] = {}
    for index, raw in enumerate(r.array(sharing.get("members"), "practitioner_sharing.members")):
        where = f"practitioner_sharing.members[{index}]"
        item = r.obj(raw, where)
        member_email = r.email(item, "email", where)
        r.unique(seen_members, member_email, f"{where}.email", "sharing member")
        members.append(
            SharingMember(
                member_email,
                r.flag(item, "share_content", where),
                r.flag(item, "share_patients", where),
            )
        )
    clients = None
    if root.get("clients") is not None:
        clients = tuple(
            _parse_client(r, raw, f"clients[{index}]")
            for index, raw in enumerate(r.array(root["clients"], "clients"))
        )
    return PtDirectSnapshot(tuple(users), master, tuple(members), clients)


def _parse_client(r: _Reader, raw: Any, where: str) -> PhysitrackClient:
    item = r.obj(raw, where)
    year = item.get("year_of_birth")
    if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
        raise r.fail(f"{where}.year_of_birth", "expected a whole number")
    client_id = item.get("client_id")
    external_id = item.get("external_id")
    return PhysitrackClient(
        practitioner_email=r.email(item, "practitioner_email", where),
        client_id=str(client_id) if isinstance(client_id, int) else (r.text(item, "client_id", where) or ""),
        external_id=str(external_id) if external_id is not None else None,
        name=r.text(item, "name", where, optional=True),
        year_of_birth=year,
        email=r.text(item, "email", where, optional=True),
    )


def snapshot_document(snapshot: PtDirectSnapshot) -> dict[str, Any]:
    master = snapshot.master_account
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "users": [
            {
                "email": user.email,
                "name": user.name,
                "status": user.status.value,
                "practitioner_access": user.practitioner_access,
                "pms_link": None
                if user.pms_link is None
                else {"system": user.pms_link.system, "practitioner_id": user.pms_link.practitioner_id},
            }
            for user in snapshot.users
        ],
        "master_account": None
        if master is None
        else {"email": master.email, "recipients": list(master.recipients)},
        "practitioner_sharing": {
            "members": [
                {"email": m.email, "share_content": m.share_content, "share_patients": m.share_patients}
                for m in snapshot.sharing_members
            ]
        },
    }
    if snapshot.clients is not None:
        document["clients"] = [
            {
                "practitioner_email": c.practitioner_email,
                "client_id": c.client_id,
                "external_id": c.external_id,
                "name": c.name,
                "year_of_birth": c.year_of_birth,
                "email": c.email,
            }
            for c in snapshot.clients
        ]
    return document
