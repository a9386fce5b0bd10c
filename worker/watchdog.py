"""A worker process whose queue consumer thread died must stop, so its supervisor restarts it.

dramatiq's consumer thread can die after a Redis outage (docs/dramatiq-delayed-messages.md): the
process then keeps running, answers nothing and never takes a message again. This middleware
checks the worker's consumer threads every few seconds; when one has died while the worker is
still running it logs the reason and exits the process with a non-zero code. dramatiq's main
process then shuts its other workers down and exits too, and the platform (Procfile, systemd,
Kubernetes) starts a fresh worker. Nothing is lost: pending work lives in the database and the
re-driver sends it again.
"""

from __future__ import annotations

import logging
import os
import threading

import dramatiq
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

EXIT_CODE = 70  # EX_SOFTWARE
CHECK_SECONDS = 5.0

_state = {"alive": True}


def consumers_alive() -> bool:
    """For health checks: False once a consumer thread of this process has died."""
    return _state["alive"]


class ConsumerWatchdog(Middleware):
    def __init__(self, interval: float = CHECK_SECONDS, exit_process=os._exit) -> None:
        self.interval = interval
        self.exit_process = exit_process
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.clear()
        threading.Thread(target=self._watch, args=(worker,), name="consumer-watchdog", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _watch(self, worker: dramatiq.Worker) -> None:
        while not self._stop.wait(self.interval):
            dead = [name for name, thread in worker.consumers.items() if not thread.is_alive()]
            if dead and not self._stop.is_set():
                _state["alive"] = False
                log.critical("queue consumer thread(s) %s died; exiting so the worker is restarted", dead)
                self.exit_process(EXIT_CODE)
                return
