"""A daemon thread that does one piece of work every few seconds, for the whole process.

Started lazily by whoever first needs it (so importing a module starts nothing), and again in
a forked child (a pre-forking server's workers), where threads do not survive the fork.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import connections

log = logging.getLogger(__name__)


class BackgroundLoop:
    def __init__(self, name: str, work: Callable[[], None], every_s: Callable[[], float]) -> None:
        self.name, self.work, self.every_s = name, work, every_s
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._thread = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.every_s())
            try:
                self.work()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self.name, self.every_s())
            finally:
                connections.close_all()  # this thread's database connection goes back to the pool
