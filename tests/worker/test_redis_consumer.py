"""The worker's Redis consumer takes the next message as soon as a thread is free
(worker/redis_consumer.py), on a real Redis."""

from __future__ import annotations

import time

import dramatiq
import redis

from worker.redis_consumer import PromptRedisBroker


def _broker(redis_url: str) -> PromptRedisBroker:
    broker = PromptRedisBroker(client=redis.Redis.from_url(redis_url), namespace="ptsync-consumer-test")
    broker.declare_queue("default")
    return broker


def _message(number: int) -> dramatiq.Message:
    return dramatiq.Message(queue_name="default", actor_name="noop", args=(number,), kwargs={}, options={})


def test_given_every_prefetched_message_in_work_when_the_consumer_is_asked_then_it_counts_no_miss_and_hands_out_the_next_once_one_is_done(
    redis_url: str,
) -> None:
    # Given: a consumer with room for one message, holding one still being worked on, and a
    # second message waiting in Redis
    broker = _broker(redis_url)
    broker.enqueue(_message(1))
    broker.enqueue(_message(2))
    consumer = broker.consume("default", prefetch=1, timeout=1000)
    first = next(consumer)
    assert first.args == (1,)
    # When: the consumer thread asks again and again while that message is worked on
    started = time.monotonic()
    answers = [next(consumer) for _ in range(30)]
    asking = time.monotonic() - started
    # Then: it waited a few milliseconds each time, never backing off as after an empty read
    assert answers == [None] * 30
    assert consumer.misses == 0
    assert asking < 1.0
    # ... and once the first message is done, the next ask hands out the second
    consumer.ack(first)
    second = next(consumer)
    assert second is not None and second.args == (2,)
    consumer.ack(second)
    consumer.close()
    broker.close()


def test_given_an_empty_queue_when_the_consumer_is_asked_then_it_backs_off_as_dramatiq_does(
    redis_url: str,
) -> None:
    # Given
    broker = _broker(redis_url)
    consumer = broker.consume("default", prefetch=2, timeout=50)
    # When
    answers = [next(consumer) for _ in range(3)]
    # Then: each empty read counts as a miss (dramatiq's own backoff, capped by the timeout)
    assert answers == [None, None, None]
    assert consumer.misses == 3
    consumer.close()
    broker.close()
