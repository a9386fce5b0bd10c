"""Request-rate limits shared by every process that uses the same API key.

GCRA (the generic cell rate algorithm): one timestamp per key, the "theoretical arrival time",
moves forward by one interval per request; a request may go when that time is not in the
future. With Redis the timestamp lives in Redis and the script reads Redis's own clock, so
worker processes on different hosts share one budget without trusting each other's clocks.
A 429 sets a "blocked until" time for the key that every process honours.

Keys in Redis are derived from a hash of the API key; the key itself never leaves the process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import ClassVar, Protocol


class RateLimiter(Protocol):
    def acquire(self) -> None:
        """Block until one more request may be sent."""
        ...

    def block_until(self, epoch_seconds: float) -> None:
        """No request for this key before `epoch_seconds` (the server said so)."""
        ...


def limiter_name(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:24]


class InProcessRateLimiter:
    """GCRA in memory: for the embedded default (one process)."""

    _shared: ClassVar[dict[str, InProcessRateLimiter]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        requests_per_minute: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 60.0 / requests_per_minute
        self._tat = 0.0
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def for_key(cls, name: str, requests_per_minute: float) -> InProcessRateLimiter:
        with cls._registry_lock:
            limiter = cls._shared.get(name)
            if limiter is None or abs(limiter.interval - 60.0 / requests_per_minute) > 1e-12:
                limiter = cls(requests_per_minute)
                cls._shared[name] = limiter
            return limiter

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                wait = max(self._blocked_until - now, self._tat - now, 0.0)
                if wait <= 0:
                    self._tat = max(self._tat, now) + self.interval
                    return
            self._sleep(wait)

    def block_until(self, epoch_seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, epoch_seconds)


_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local interval = tonumber(ARGV[1])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then
  return tostring(blocked - now)
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat > now then
  return tostring(tat - now)
end
local ttl = math.ceil((interval + 1) * 1000)
redis.call('SET', KEYS[1], tostring(now + interval), 'PX', ttl)
return '0'
"""

_BLOCK = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  local now_parts = redis.call('TIME')
  local now = tonumber(now_parts[1])
  local ttl = math.max(math.ceil((wanted - now + 1) * 1000), 1000)
  redis.call('SET', KEYS[1], tostring(wanted), 'PX', ttl)
end
return 1
"""


class RedisRateLimiter:
    """GCRA in Redis: one budget per API key across every worker process and host."""

    def __init__(
        self, client, name: str, requests_per_minute: float, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.interval = 60.0 / requests_per_minute
        self._keys = [f"ptsync:ratelimit:{name}:tat", f"ptsync:ratelimit:{name}:blocked"]
        self._gcra = client.register_script(_GCRA)
        self._block = client.register_script(_BLOCK)
        self._sleep = sleep

    def acquire(self) -> None:
        while True:
            wait = float(self._gcra(keys=self._keys, args=[repr(self.interval)]))
            if wait <= 0:
                return
            self._sleep(wait)

    def block_until(self, epoch_seconds: float) -> None:
        self._block(keys=[self._keys[1]], args=[repr(epoch_seconds)])
