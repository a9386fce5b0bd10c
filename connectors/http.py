"""The one HTTP layer every connector uses.

- One `requests.Session` per connector, with connect and read timeouts on every call.
- One table, `classify`, decides what a response or exception means: ok, retry (a blip),
  rate-limited (come back at a known time) or fatal. 400/401/403/404 are never retried.
- tenacity owns the short retries (bounded total time); anything longer is handed to the job
  layer as `RateLimited` with the time to come back.
- Errors name the connector, the method, the URL path and the status; never a credential
  (keys live in headers, and query strings are left out of messages).
- Credentials never leave the configured origin (scheme, host and port): an absolute URL on
  another origin (a `next` link, a redirect's `Location`) is refused before anything is sent,
  and redirects are followed here, same origin only, never by `requests` itself.
"""

from __future__ import annotations

import email.utils
import enum
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay

from connectors.errors import ConfigurationError, ConnectorError, Retryable, TransientConnectorError
from connectors.ratelimit import RateLimiter
from connectors.request_events import RequestEvent
from connectors.request_events import report as _report

DEFAULT_TIMEOUT = (5.0, 30.0)
MAX_REDIRECTS = 5
SHORT_WAIT_LIMIT = 30.0
"""A rate limit that lifts within this many seconds is waited out here; longer goes to the job."""


class Verdict(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    FATAL = "fatal"


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    retry_after: float | None = None


_OUTCOMES = {
    Verdict.OK: "ok",
    Verdict.RETRY: "retry",
    Verdict.RATE_LIMITED: "rate_limited",
    Verdict.FATAL: "error",
}
_RETRY_STATUSES = {408, 425, 500, 502, 503, 504}


def classify(outcome: requests.Response | BaseException, now: float | None = None) -> Classification:
    """What a response or exception means for the caller. Pure apart from reading `now`."""
    if isinstance(outcome, BaseException):
        if isinstance(outcome, requests.Timeout | requests.ConnectionError):
            return Classification(Verdict.RETRY)
        return Classification(Verdict.FATAL)
    status = outcome.status_code
    if 200 <= status < 300:
        return Classification(Verdict.OK)
    if status == 429:
        return Classification(Verdict.RATE_LIMITED, retry_after_seconds(outcome.headers, now))
    if status == 503 and "Retry-After" in outcome.headers:
        return Classification(Verdict.RATE_LIMITED, retry_after_seconds(outcome.headers, now))
    if status in _RETRY_STATUSES:
        return Classification(Verdict.RETRY)
    return Classification(Verdict.FATAL)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float:
    """Seconds until the server allows another request (Retry-After, else X-RateLimit-Reset)."""
    now = time.time() if now is None else now
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(retry_after)
            if parsed is not None:
                return max(parsed.timestamp() - now, 0.0)
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(float(reset) - now, 0.0)
        except ValueError:
            pass
    return 60.0


class RateLimited(TransientConnectorError):
    """The server asked us to wait longer than is sensible inside one job attempt."""

    def __init__(self, connector: str, reason: str, retry_after: float) -> None:
        super().__init__(connector, reason)
        self.retry_after = retry_after


class HttpError(ConnectorError):
    def __init__(self, connector: str, method: str, path: str, status: int | None, detail: str) -> None:
        where = f"{method} {path}"
        super().__init__(
            connector, f"{where} failed: {detail}" if status is None else f"{where} -> {status} {detail}"
        )
        self.status = status
        self.path = path


class TransientHttpError(HttpError, Retryable):
    """A 5xx, 408/425, a timeout or a refused connection: worth another attempt later."""


class Unreachable(TransientHttpError):
    """No connection at all (refused, unknown host, TLS): the job retries later, not this call."""


def unreachable_reason(url: str, exc: requests.RequestException) -> str:
    """`cannot reach HOST: WHY` in a person's words (never the query string or a credential)."""
    host = urlsplit(url).netloc.rsplit("@", 1)[-1] or url
    text = repr(exc).lower()
    if isinstance(exc, requests.Timeout):
        why = "no answer in time (timed out)"
    elif isinstance(exc, requests.exceptions.SSLError):
        why = "the TLS certificate or handshake failed"
    elif "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        why = "the host name does not resolve (check the URL)"
    elif "refused" in text:
        why = "the connection was refused (is the server running, is the port right?)"
    else:
        why = exc.__class__.__name__
    return f"cannot reach {host}: {why}"


def _path_of(url: str) -> str:
    return urlsplit(url).path or "/"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """`scheme://host[:port]`, lower-cased, default port left out: what the credentials belong to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class ForeignOriginError(ConnectorError, ConfigurationError):
    """A link or redirect pointing away from the configured origin: the credentials stay home."""

    def __init__(self, connector: str, what: str, foreign: str, expected: str) -> None:
        super().__init__(
            connector,
            f"refusing {what} to another origin {foreign} (configured origin {expected}); "
            "credentials are only ever sent to the configured origin",
        )
        self.foreign_origin = foreign


def _describe(response: requests.Response) -> str:
    reason = response.reason or ""
    try:
        body = response.json()
    except ValueError:
        return reason
    if isinstance(body, dict):
        for key in ("error", "errors", "message", "detail"):
            if key in body:
                value = body[key]
                if isinstance(value, dict):
                    value = value.get("message", value)
                if isinstance(value, list):
                    value = "; ".join(str(item) for item in value)
                return f"{reason}: {str(value)[:200]}"
    return reason


class _Session(requests.Session):
    """A requests session that reads the proxy and CA-bundle environment once per host.

    requests re-reads the environment (every variable, for *_proxy and no_proxy) on every
    request; a poll makes several. The environment of a running process does not change, so
    the settings it gives for a host are remembered for the session's life.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple, dict] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[override]
        parsed = urlsplit(url)
        key = (parsed.scheme, parsed.netloc, repr(proxies), stream, verify, cert)
        merged = self._environment.get(key)
        if merged is None:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = merged
        return {name: (dict(value) if isinstance(value, dict) else value) for name, value in merged.items()}


class HttpClient:
    """A connector's HTTP session: base URL, auth headers, timeouts, retries, classification."""

    def __init__(
        self,
        connector: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry_budget_seconds: float = 30.0,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connector = connector
        self.base_url = base_url.rstrip("/")
        self.origin = origin_of(self.base_url)
        self.session = _Session()
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        if auth is not None:
            self.session.auth = auth
        self.timeout = timeout
        self.retry_budget_seconds = retry_budget_seconds
        self.limiter = limiter
        self.sleep = sleep
        self.requests_sent = 0

    def url(self, path: str, *, what: str = "a request") -> str:
        """The absolute URL for `path`; an absolute URL must be on the configured origin."""
        if "://" in path or path.startswith("//"):
            self.check_origin(path, what)
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def check_origin(self, url: str, what: str = "a request") -> None:
        """Raise ForeignOriginError unless `url` is on this client's origin."""
        foreign = origin_of(url if "://" in url else urljoin(self.base_url + "/", url))
        if foreign != self.origin:
            raise ForeignOriginError(self.connector, what, foreign, self.origin)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send with short retries for blips; raise HttpError / RateLimited otherwise."""
        url = self.url(path)
        retrying = Retrying(
            stop=stop_after_delay(self.retry_budget_seconds),
            wait=self._wait,
            retry=retry_if_exception(
                lambda error: isinstance(error, TransientHttpError) and not isinstance(error, Unreachable)
            ),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(self._send_once, method, url, **kwargs)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _ShortRateLimit):
            return error.retry_after
        return min(0.5 * 2 ** (state.attempt_number - 1), 8.0)

    def _send_once(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        waited = 0.0
        if self.limiter is not None:
            started = time.monotonic()
            self.limiter.acquire()
            waited = time.monotonic() - started
        kwargs.setdefault("timeout", self.timeout)
        kwargs["allow_redirects"] = False  # followed below, on the configured origin only
        path = _path_of(url)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                self.requests_sent += 1
                response = self.session.request(method, url, **kwargs)
            except requests.RequestException as exc:
                _report(RequestEvent(self.connector, "network", waited))
                verdict = classify(exc)
                if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout):
                    reason = unreachable_reason(url, exc)
                    raise Unreachable(self.connector, method, path, None, reason) from None
                error_class = TransientHttpError if verdict.verdict is Verdict.RETRY else HttpError
                raise error_class(self.connector, method, path, None, unreachable_reason(url, exc)) from None
            if not response.is_redirect:
                break
            target = urljoin(url, response.headers.get("Location", ""))
            self.check_origin(target, f"a redirect from {path}")
            if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                method = "GET"  # as browsers and requests do; the body is not sent again
                kwargs.pop("json", None)
                kwargs.pop("data", None)
            url, path = target, _path_of(target)
        else:
            raise HttpError(self.connector, method, path, response.status_code, "too many redirects")
        verdict = classify(response)
        _report(RequestEvent(self.connector, _OUTCOMES[verdict.verdict], waited))
        if verdict.verdict is Verdict.RATE_LIMITED and self.limiter is not None:
            # Every process sharing this key waits too: nothing is sent before the server's time.
            self.limiter.block_until(time.time() + (verdict.retry_after or 0.0))
        if verdict.verdict is Verdict.OK:
            return response
        if verdict.verdict is Verdict.RATE_LIMITED:
            wait = verdict.retry_after or 0.0
            if wait <= SHORT_WAIT_LIMIT:
                raise _ShortRateLimit(
                    self.connector, method, path, response.status_code, "rate limited", wait
                )
            raise RateLimited(self.connector, f"{method} {path} -> {response.status_code} rate limited", wait)
        error_class = TransientHttpError if verdict.verdict is Verdict.RETRY else HttpError
        raise error_class(self.connector, method, path, response.status_code, _describe(response))

    def get_json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        return self.decode(response)

    def decode(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except (ValueError, json.JSONDecodeError):
            raise HttpError(
                self.connector,
                response.request.method or "GET",
                _path_of(response.url),
                response.status_code,
                "the response is not valid JSON",
            ) from None


class _ShortRateLimit(TransientHttpError):
    def __init__(
        self, connector: str, method: str, path: str, status: int, detail: str, retry_after: float
    ) -> None:
        super().__init__(connector, method, path, status, detail)
        self.retry_after = retry_after
