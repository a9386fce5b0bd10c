"""An emulator of Physitrack API v2 client lists (`GET /api/v2/clients?page=N`, `X-Api-Key`)."""

from __future__ import annotations

from typing import Any

from connectors.emulators.base import JsonServer, Request, Response

PAGE_SIZE = 25


class PhysitrackV2Emulator(JsonServer):
    def __init__(
        self, clients_by_key: dict[str, list[dict[str, Any]]], host: str = "127.0.0.1", port: int = 0
    ):
        super().__init__(host, port)
        self.clients_by_key = clients_by_key
        self.route("GET", "/api/v2/clients", self._clients)

    def authorise(self, request: Request) -> Response | None:
        if request.headers.get("x-api-key") not in self.clients_by_key:
            return Response(401, {"errors": ["Practitioner was not found"]})
        return None

    def _clients(self, request: Request) -> Response:
        clients = self.clients_by_key[request.headers["x-api-key"]]
        try:
            page = int(request.query.get("page", ["1"])[0])
        except ValueError:
            return Response(400, {"errors": ["page must be a number"]})
        start = (page - 1) * PAGE_SIZE
        return Response(200, {"clients": clients[start : start + PAGE_SIZE]})

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v2"
