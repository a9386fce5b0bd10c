"""Broker middleware for operations: log context per message, and worker-process metrics.

`install(broker)` runs when the broker is built. Every process gets the log-context middleware;
processes started by `ptsync worker` (PTSYNC_WORKER_PROCESS=1) also configure logging (dramatiq
runs with --skip-logging so PTSYNC_LOG_FORMAT applies) and, with a metrics port, dramatiq's
Prometheus middleware in multiprocess mode, whose exposition fork is replaced by ours (it
serves /healthz and /readyz too).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.middleware import Middleware

from worker import logs


class LogContext(Middleware):
    """Binds message id, actor and (for syncs) run id to every log line of a message."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        logs.clear()
        run_id = message.args[0] if message.actor_name == "ptsync.sync_org" and message.args else None
        logs.bind(message_id=message.message_id, actor=message.actor_name, run_id=run_id)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        logs.clear()

    after_skip_message = after_process_message


def install(broker: dramatiq.Broker) -> None:
    broker.add_middleware(LogContext())
    if os.environ.get("PTSYNC_WORKER_PROCESS") != "1":
        return
    logs.configure(level=os.environ.get("PTSYNC_LOG_LEVEL") or "INFO")
    if os.environ.get("PTSYNC_WORKER_METRICS_PORT", "0") != "0":
        broker.add_middleware(_worker_prometheus())


def _worker_prometheus() -> Middleware:
    from dramatiq.middleware.prometheus import Prometheus

    from worker.ops_server import serve_worker_port

    class WorkerPrometheus(Prometheus):
        @property
        def forks(self):
            return [serve_worker_port]

    return WorkerPrometheus()
