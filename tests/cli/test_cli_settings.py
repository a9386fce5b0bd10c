"""Start-time checks of PTSYNC_ settings: URLs parsed as their users parse them, refused without
repeating a password; header values that a request can carry; the release step refusing a bad key."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from tests.cli.test_cli import data_dir, ptsync


def test_given_a_database_url_whose_password_holds_an_at_sign_when_a_command_starts_then_no_part_of_the_password_is_echoed(
    tmp_path,
):
    # Given an operator's PTSYNC_DATABASE_URL whose password has an unescaped '@' and ':' in it
    # (a common slip: the password is pasted as is, not percent-encoded)
    url = "postgresql://ptsync:Hunter2@x:Zebra9secret@db.clinic.example/ptsync"
    # When a command starts
    started = ptsync(tmp_path, "org", "list", env={"PTSYNC_DATABASE_URL": url})
    # Then it is refused in one line naming the variable
    assert started.returncode == 1
    assert started.stderr.startswith("error: configuration: PTSYNC_DATABASE_URL")
    # And no part of the password is in it (today: "invalid literal for int() with base 10:
    # 'Zebra9secret@db.clinic.example'", SQLAlchemy's port parse, echoed as the reason)
    assert "Zebra9secret" not in started.stderr
    assert "should be a PostgreSQL or SQLite URL" in started.stderr


def test_given_a_contact_email_whose_name_is_not_latin_1_when_settings_are_checked_at_start_then_it_is_refused_or_a_pms_request_can_carry_it(
    monkeypatch,
):
    # Given an operator's contact address with a Polish display name (a name is now allowed)
    monkeypatch.setenv("PTSYNC_CONTACT_EMAIL", "Fizjo Łódź <ops@clinic.example>")
    from worker import settings as settings_module

    settings_module.get_settings.cache_clear()
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # When ptsync checks its settings at start
        try:
            settings_module.get_settings()
        except Exception as exc:  # refused at start, in one line naming it: fine
            assert "PTSYNC_CONTACT_EMAIL" in str(exc) and "\n" not in str(exc)
            return
        # Then a PMS request carrying it in its User-Agent (as every connector does) goes out
        # (today: http.client's latin-1 encoding raises UnicodeEncodeError in every request of
        # every run, an "internal error" that is retried until the run gives up)
        from worker.connections import user_agent

        answer = requests.get(
            f"http://127.0.0.1:{server.server_port}/", headers={"User-Agent": user_agent()}, timeout=5
        )
        assert answer.status_code == 200
    finally:
        server.shutdown()
        settings_module.get_settings.cache_clear()


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("command", [["sync", "clinic-a"], ["worker", "--processes", "1", "--threads", "1"]])
@pytest.mark.parametrize(
    "url",
    [
        "redis://:Zebra9secret/xyz@127.0.0.1:6379/0",  # a generated password with '/' pasted as is
        "redis://:Zebra9secret@127.0.0.1:63x9/0",  # a mistyped port
    ],
)
def test_given_a_broker_url_the_start_check_lets_through_but_redis_cannot_parse_when_a_command_starts_then_one_line_and_no_password(
    tmp_path, url, command
):
    # Given an operator's PTSYNC_BROKER_URL that matches redis://\S* but that redis-py refuses
    # When a command that uses the broker starts
    started = ptsync(tmp_path, *command, env={"PTSYNC_BROKER_URL": url})
    # Then it exits 1 with one configuration line naming the variable, never a traceback
    # (today: redis-py's "ValueError: Port could not be cast to integer value as
    # 'Zebra9secret'" in a traceback: the password, echoed)
    assert started.returncode == 1
    assert "Zebra9secret" not in started.stderr + started.stdout
    assert "Traceback" not in started.stderr
    assert started.stderr.startswith("error: configuration: PTSYNC_BROKER_URL")
    # And nothing was created before the error: no database, no key file
    assert not data_dir(tmp_path).exists() or not any(data_dir(tmp_path).iterdir())


def test_given_a_malformed_secret_key_when_the_release_step_migrates_then_it_is_refused_in_one_line_before_the_database_is_made(
    tmp_path,
):
    # Given an operator's PTSYNC_SECRET_KEY that is not a Fernet key, and no database yet
    # When the release step runs (`ptsync migrate`, the Procfile's release)
    started = ptsync(tmp_path, "migrate", env={"PTSYNC_SECRET_KEY": "not-a-fernet-key"})
    # Then it is refused like every other command, in one line (today: "database schema is up
    # to date", exit 0, and the embedded database is made; web and worker then refuse to start)
    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [
        "error: PTSYNC_SECRET_KEY is not a valid Fernet key (or comma-separated list of keys)"
    ]
    assert not (data_dir(tmp_path) / "ptsync.db").exists()
