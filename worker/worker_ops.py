"""Broker middleware for operations: log context per message, and worker-process metrics.

`install(broker)` runs when the broker is built. Every process gets the log-context middleware;
processes started by `ptsync worker` (PTSYNC_WORKER_PROCESS=1) also configure logging (dramatiq
runs with --skip-logging so PTSYNC_LOG_FORMAT applies), build their runtime and set their imports
aside from the garbage collector once booted, and, with a metrics port, dramatiq's
Prometheus middleware in multiprocess mode, whose exposition fork is replaced by ours (it
serves /healthz and /readyz too).
"""

from __future__ import annotations

import gc
import logging
import os

import dramatiq
from dramatiq.middleware import Middleware

from worker import logs

log = logging.getLogger(__name__)


class LogContext(Middleware):
    """Binds message id, actor and (for syncs) run id to every log line of a message."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        logs.clear()
        run_id = message.args[0] if message.actor_name == "ptsync.sync_org" and message.args else None
        logs.bind(message_id=message.message_id, actor=message.actor_name, run_id=run_id)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        logs.clear()

    after_skip_message = after_process_message


class RuntimeAtBoot(Middleware):
    """Builds the process's runtime (the engine, the schema check's connection, the secrets)
    and configures the ORM's mappers as a worker process boots, not in its first message.

    A `ptsync worker` process that did both in its first message spent 30-40 ms more there
    than in the next (a first sync of a small clinic: about 11 ms), while a burst of webhooks
    waited behind it. Built at boot, it is also set aside with the imports (`install` adds it
    after `ImportsAside`, so its hook runs first). A database that cannot be reached yet is no
    reason not to boot: the first message builds the runtime again and fails, and is retried, as
    it would have without this.
    """

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        from worker.runtime import get_runtime
        from worker.store.db import configure_orm

        configure_orm()
        try:
            get_runtime()
        except Exception as exc:
            log.warning(
                "could not prepare the database connection at start-up (%s); the first message tries again",
                exc.__class__.__name__,
            )


class ImportsAside(Middleware):
    """Once a worker process has booted, moves what it imported (some 140,000 objects:
    SQLAlchemy, numpy, pydantic, the models) to the collector's permanent generation.

    They live as long as the process. Left in the oldest generation, every full collection
    walks them all again: one came every few syncs of a large clinic and took 130-160 ms on a
    2-core machine, against 10 ms once they were set aside (worker/cli.py does the same for a
    `ptsync` command). Only in `ptsync worker` processes: a test's process would never collect
    the garbage it makes before the freeze.
    """

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        gc.collect()  # no garbage of the boot is kept for ever
        gc.freeze()


def install(broker: dramatiq.Broker) -> None:
    broker.add_middleware(LogContext())
    if os.environ.get("PTSYNC_WORKER_PROCESS") != "1":
        return
    # dramatiq runs `after_*` hooks last-added first: RuntimeAtBoot is added after ImportsAside so
    # that it builds before the freeze, and what it builds is set aside too
    broker.add_middleware(ImportsAside())
    broker.add_middleware(RuntimeAtBoot())
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


def prepare_worker_environment(metrics_port: int) -> list[str]:
    """Environment for `ptsync worker`'s dramatiq processes; returns extra dramatiq arguments.

    A fresh multiprocess directory each start (stale files of dead processes would be summed).
    """
    import tempfile

    os.environ["PTSYNC_WORKER_PROCESS"] = "1"
    os.environ["PTSYNC_WORKER_METRICS_PORT"] = str(metrics_port)
    if metrics_port:
        directory = tempfile.mkdtemp(prefix="ptsync-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        os.environ["dramatiq_prom_db"] = directory  # noqa: SIM112 (dramatiq's own name)
    return ["--skip-logging"]
