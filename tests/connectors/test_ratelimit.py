"""Rate limits per API key: spacing, server-imposed blocks, and one budget across processes."""

from __future__ import annotations

import threading
import time

from connectors.ratelimit import InProcessRateLimiter, RedisRateLimiter, limiter_name


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_requests_are_spaced_one_interval_apart():
    clock = FakeClock()
    limiter = InProcessRateLimiter(120, clock=clock.time, sleep=clock.sleep)  # one per 0.5 s
    for _ in range(5):
        limiter.acquire()
    assert clock.now == 1002.0 and clock.slept == [0.5, 0.5, 0.5, 0.5]


def test_nothing_is_sent_before_a_server_imposed_reset():
    clock = FakeClock()
    limiter = InProcessRateLimiter(6000, clock=clock.time, sleep=clock.sleep)
    limiter.block_until(1030.0)
    limiter.acquire()
    assert clock.now >= 1030.0


def test_the_limiter_name_does_not_reveal_the_key():
    name = limiter_name("sk-very-secret-au1")
    assert "secret" not in name and len(name) == 24
    assert name == limiter_name("sk-very-secret-au1")


def test_two_limiters_on_redis_share_one_budget(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    name = limiter_name("shared-key")
    limiters = [RedisRateLimiter(client, name, 60 * 100) for _ in range(2)]  # 100 per second together
    stamps: list[float] = []
    lock = threading.Lock()

    def hammer(limiter: RedisRateLimiter) -> None:
        for _ in range(50):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=hammer, args=(limiter,)) for limiter in limiters]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert len(stamps) == 100
    assert elapsed >= 0.95  # 100 requests at 100 per second, whichever process sends them
    stamps.sort()
    busiest = max(sum(1 for s in stamps if start <= s < start + 0.5) for start in stamps)
    assert busiest <= 56  # two unshared limiters would put ~100 in half a second


def test_a_block_set_by_one_process_holds_for_the_other(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    name = limiter_name("blocked-key")
    first, second = RedisRateLimiter(client, name, 6000), RedisRateLimiter(client, name, 6000)
    first.block_until(time.time() + 0.6)
    started = time.monotonic()
    second.acquire()
    assert time.monotonic() - started >= 0.5
