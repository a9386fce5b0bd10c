"""The PT Direct `api` adapter: HTTP to a PT Direct admin bridge (docs/ptdirect-bridge.md).

Physitrack publishes no endpoints for users, share groups or the master account, so this
adapter speaks a small documented contract that a bridge (an integration partner, an RPA
service, or our emulator) implements. Reads are validated like the file snapshot; every write
carries an Idempotency-Key, so a retried or redelivered change is made once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from connectors.errors import ConnectorError
from connectors.http import HttpClient
from connectors.ptdirect_file import SCHEMA, parse_snapshot
from sharing import Operation, OpKind, PtDirectSnapshot, SharingMember
from sharing.apply import member_after

NAME = "ptdirect api"


class PtDirectApiAdapter:
    def __init__(self, base_url: str, key: str, *, user_agent: str = "ptsync", **http: Any) -> None:
        self.http = HttpClient(
            NAME,
            base_url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": user_agent},
            **http,
        )

    def read(self) -> PtDirectSnapshot:
        users = self._field(self.http.get_json("users"), "users", "GET /users")
        master = self._field(self.http.get_json("master-account"), "master_account", "GET /master-account")
        members = self._field(
            self.http.get_json("practitioner-sharing"), "members", "GET /practitioner-sharing"
        )
        document = {
            "schema": SCHEMA,
            "users": users,
            "master_account": master,
            "practitioner_sharing": {"members": members},
        }
        return parse_snapshot(document, self.http.base_url, NAME)

    def apply(self, operation: Operation, *, idempotency_key: str) -> None:
        headers = {"Idempotency-Key": idempotency_key}
        email = quote(operation.email, safe="@")
        kind = operation.op
        if kind in (OpKind.ADD_SHARING_MEMBER, OpKind.ENABLE_PATIENT_SHARING):
            current = self._current_member(operation.email)
            member = member_after(
                None
                if current is None
                else SharingMember(
                    operation.email, bool(current.get("share_content")), bool(current.get("share_patients"))
                ),
                operation,
            )
            self.http.request(
                "PUT",
                f"practitioner-sharing/members/{email}",
                headers=headers,
                json={"share_content": member.share_content, "share_patients": member.share_patients},
            )
        elif kind is OpKind.REMOVE_SHARING_MEMBER:
            self.http.request("DELETE", f"practitioner-sharing/members/{email}", headers=headers)
        elif kind is OpKind.ADD_MASTER_RECIPIENT:
            self.http.request("PUT", f"master-account/recipients/{email}", headers=headers)
        elif kind is OpKind.REMOVE_MASTER_RECIPIENT:
            self.http.request("DELETE", f"master-account/recipients/{email}", headers=headers)
        elif kind is OpKind.SET_MASTER_ACCOUNT:
            self.http.request("PUT", "master-account", headers=headers, json={"email": operation.email})
        else:
            raise ConnectorError(NAME, f"{kind.value} must be done by a person in PT Direct")

    def _current_member(self, email: str) -> dict[str, Any] | None:
        members = self._field(
            self.http.get_json("practitioner-sharing"), "members", "GET /practitioner-sharing"
        )
        return next(
            (m for m in members if isinstance(m, dict) and str(m.get("email", "")).lower() == email.lower()),
            None,
        )

    @staticmethod
    def _field(document: Any, key: str, where: str) -> Any:
        if not isinstance(document, dict) or key not in document:
            raise ConnectorError(NAME, f"{where}: the response has no '{key}' field")
        return document[key]
