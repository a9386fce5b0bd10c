"""An emulator of the PT Direct admin bridge (docs/ptdirect-bridge.md).

It keeps a `ptsync.ptdirect/1` state in memory, enforces the bearer key and the Idempotency-Key
rules, refuses what PT Direct refuses (unconfirmed users, patient sharing for the master
account), and counts every *effective* change so tests can prove "exactly once".

Run it by hand for a demo:
    python -m connectors.emulators.ptdirect_bridge --snapshot ptdirect.json --key secret --port 8090
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from connectors.emulators.base import JsonServer, Request, Response

EMAIL = r"(?P<email>[^/]+)"


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


class PtDirectBridgeEmulator(JsonServer):
    def __init__(self, state: dict[str, Any], api_key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.state = copy.deepcopy(state)
        self.api_key = api_key
        self.changes: Counter[tuple[str, str]] = Counter()
        self._idempotent: dict[str, tuple[str, Response]] = {}
        prefix = "/v1"
        self.route("GET", f"{prefix}/users", self._users)
        self.route("GET", f"{prefix}/master-account", self._master)
        self.route("PUT", f"{prefix}/master-account", self._write(self._set_master))
        self.route("PUT", f"{prefix}/master-account/recipients/{EMAIL}", self._write(self._add_recipient))
        self.route(
            "DELETE", f"{prefix}/master-account/recipients/{EMAIL}", self._write(self._remove_recipient)
        )
        self.route("GET", f"{prefix}/practitioner-sharing", self._sharing)
        self.route("PUT", f"{prefix}/practitioner-sharing/members/{EMAIL}", self._write(self._put_member))
        self.route(
            "DELETE", f"{prefix}/practitioner-sharing/members/{EMAIL}", self._write(self._remove_member)
        )

    def authorise(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthorised", "missing or wrong bearer key")
        return None

    # reads -------------------------------------------------------------------------------
    def _users(self, request: Request) -> Response:
        return Response(200, {"users": self.state["users"]})

    def _master(self, request: Request) -> Response:
        return Response(200, {"master_account": self.state.get("master_account")})

    def _sharing(self, request: Request) -> Response:
        return Response(200, {"members": self.state["practitioner_sharing"]["members"]})

    # writes ------------------------------------------------------------------------------
    def _write(self, handler):
        def idempotent(request: Request) -> Response:
            key = request.headers.get("idempotency-key")
            if not key:
                return _error(400, "idempotency_key_required", "writes need an Idempotency-Key header")
            fingerprint = hashlib.sha256(
                f"{request.method} {request.path} {json.dumps(request.body, sort_keys=True)}".encode()
            ).hexdigest()
            if key in self._idempotent:
                seen_fingerprint, response = self._idempotent[key]
                if seen_fingerprint != fingerprint:
                    return _error(422, "idempotency_key_reused", "this key was used for another request")
                return response
            response = handler(request)
            if response.status < 500:
                self._idempotent[key] = (fingerprint, response)
            return response

        return idempotent

    def _user(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.state["users"] if u["email"].lower() == email.lower()), None)

    def _member(self, email: str) -> dict[str, Any] | None:
        members = self.state["practitioner_sharing"]["members"]
        return next((m for m in members if m["email"].lower() == email.lower()), None)

    def _confirmed_user(self, email: str) -> Response | None:
        user = self._user(email)
        if user is None:
            return _error(404, "unknown_user", f"no PT Direct user {email}")
        if user["status"] != "confirmed":
            return _error(409, "unconfirmed_user", f"{email} has not accepted the invitation")
        return None

    def _put_member(self, request: Request) -> Response:
        email = request.params["email"]
        body = request.body
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), bool) for k in ("share_content", "share_patients")
        ):
            return _error(400, "invalid_body", "share_content and share_patients must be true or false")
        refused = self._confirmed_user(email)
        if refused:
            return refused
        master = self.state.get("master_account") or {}
        if body["share_patients"] and master.get("email", "").lower() == email.lower():
            return _error(409, "master_account", "the master account cannot share patients")
        member = self._member(email)
        wanted = {
            "email": email,
            "share_content": body["share_content"],
            "share_patients": body["share_patients"],
        }
        if member is None:
            self.state["practitioner_sharing"]["members"].append(wanted)
            self.changes[("add_sharing_member", email.lower())] += 1
        elif (member["share_content"], member["share_patients"]) != (
            body["share_content"],
            body["share_patients"],
        ):
            if body["share_patients"] and not member["share_patients"]:
                self.changes[("enable_patient_sharing", email.lower())] += 1
            else:
                self.changes[("update_sharing_member", email.lower())] += 1
            member.update(share_content=body["share_content"], share_patients=body["share_patients"])
        return Response(200, {"member": self._member(email)})

    def _remove_member(self, request: Request) -> Response:
        email = request.params["email"]
        member = self._member(email)
        if member is not None:
            self.state["practitioner_sharing"]["members"].remove(member)
            self.changes[("remove_sharing_member", email.lower())] += 1
        return Response(204)

    def _add_recipient(self, request: Request) -> Response:
        email = request.params["email"]
        master = self.state.get("master_account")
        if master is None:
            return _error(409, "no_master_account", "set a master account first")
        refused = self._confirmed_user(email)
        if refused:
            return refused
        if email.lower() not in (r.lower() for r in master["recipients"]):
            master["recipients"].append(email)
            self.changes[("add_master_recipient", email.lower())] += 1
        return Response(204)

    def _remove_recipient(self, request: Request) -> Response:
        email = request.params["email"]
        master = self.state.get("master_account")
        if master is not None:
            kept = [r for r in master["recipients"] if r.lower() != email.lower()]
            if len(kept) != len(master["recipients"]):
                master["recipients"] = kept
                self.changes[("remove_master_recipient", email.lower())] += 1
        return Response(204)

    def _set_master(self, request: Request) -> Response:
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            return _error(400, "invalid_body", "email is required")
        user = self._user(body["email"])
        if user is None or not user["practitioner_access"]:
            return _error(
                409, "not_a_practitioner", "the master account must be a practitioner of the licence"
            )
        master = self.state.get("master_account")
        if master is None or master["email"].lower() != body["email"].lower():
            recipients = master["recipients"] if master else []
            self.state["master_account"] = {"email": body["email"], "recipients": recipients}
            self.changes[("set_master_account", body["email"].lower())] += 1
        return Response(200, {"master_account": self.state["master_account"]})

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.state)


def main() -> None:
    parser = argparse.ArgumentParser(description="Emulate the PT Direct admin bridge")
    parser.add_argument("--snapshot", required=True, help="a ptsync.ptdirect/1 file to start from")
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    state = json.loads(Path(args.snapshot).read_text())
    emulator = PtDirectBridgeEmulator(state, args.key, port=args.port).start()
    print(f"PT Direct bridge emulator on {emulator.url}/v1 (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.stop()


if __name__ == "__main__":
    main()
