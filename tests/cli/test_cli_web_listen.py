"""Review: `ptsync web` now binds its own socket (`worker/cli.py` `_listen`) instead of letting
uvicorn do it; a host that resolves to several addresses must still be reachable where it was."""

from __future__ import annotations

import socket

from worker import cli


def test_localhost_resolving_to_ipv6_first_still_serves_ipv4_clients(monkeypatch):
    """Given a machine whose /etc/hosts has both `::1 localhost` and `127.0.0.1 localhost` (the
    Debian/Ubuntu default; glibc then answers ::1 first) / When `ptsync web --host localhost`
    binds / Then a client of http://127.0.0.1:PORT/ (a health probe, a reverse proxy configured
    with the IPv4 address) still reaches it, as it did when uvicorn bound AF_INET for any host
    without ':'. Before the fix, `_listen` binds only the first getaddrinfo answer: ::1, and 127.0.0.1 is
    refused."""
    real = socket.getaddrinfo

    def both(host, port, *args, **kwargs):
        if host == "localhost":
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    listening = cli._listen("localhost", port)
    try:
        listening.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        listening.close()
