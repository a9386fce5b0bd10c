"""A Redis queue consumer that hands out the next message as soon as a worker thread is free.

dramatiq's Redis consumer treats "every prefetched message is still being worked on" like an
empty queue: it counts a miss and sleeps twice as long as after the last one, up to the worker
timeout. Under a steady stream of short syncs (webhooks, polls) those sleeps outgrew the syncs:
threads sat idle while messages waited in Redis. In the webhook benchmark (2 processes x 2
threads, runs of 20-40 ms) the workers managed about 50 runs a second with queue waits of 1-3 s
and half the CPU idle.

This consumer, while its prefetch is full, checks again after a few milliseconds without
counting a miss (no network: the check only counts messages it holds). An empty queue still
backs off as dramatiq's does, up to the worker timeout (`ptsync worker` sets 100 ms).
"""

from __future__ import annotations

import time

from dramatiq.brokers.redis import RedisBroker, _RedisConsumer

FULL_PREFETCH_CHECK_SECONDS = 0.005
"""How often a consumer whose prefetched messages are all being worked on looks again."""


class PromptRedisConsumer(_RedisConsumer):
    def __next__(self):
        if not self.message_cache and self.outstanding_message_count >= self.prefetch:
            time.sleep(FULL_PREFETCH_CHECK_SECONDS)
            return None  # the consumer thread handles delayed messages and asks again
        return super().__next__()


class PromptRedisBroker(RedisBroker):
    """dramatiq's Redis broker with `PromptRedisConsumer` (its `consumer_class` hook)."""

    @property
    def consumer_class(self):
        return PromptRedisConsumer
