"""LogWriter: the live engine's log handler, which never blocks the engine."""
from __future__ import annotations

import logging
import queue
import threading
import time


class LogWriter(logging.Handler):
    """Log records reach stderr through a bounded queue and a writer thread, so a slow
    or stuck reader (a full pipe nobody drains, a paused terminal) never stalls the
    engine between a tick and its order: it blocked in ``write`` with an order working
    (E1 for ever). Lines that do not fit are dropped (warnings wait up to a second) and
    counted; the writer says how many when it catches up."""

    def __init__(self, stream, size: int = 20000):
        super().__init__()
        self.stream = stream
        # SimpleQueue: put() is reentrant, so a record logged from a signal handler (the
        # stop signal) that interrupts a put cannot deadlock; queue.Queue's lock would
        self.q = queue.SimpleQueue()
        self.size = size
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record):
        try:
            line = self.format(record) + "\n"
            if self.q.qsize() >= self.size and record.levelno >= logging.WARNING:
                end = time.monotonic() + 1.0     # warnings wait a little (no lock held)
                while self.q.qsize() >= self.size and time.monotonic() < end:
                    time.sleep(0.01)
            if self.q.qsize() >= self.size:
                self.dropped += 1
                return
            self.q.put(line)
        except Exception:                         # noqa: BLE001 - never raise into the engine
            self.dropped += 1

    def _run(self):
        told = 0
        while True:
            line = self.q.get()
            if line is None:
                return
            if self.dropped != told:
                line = (f"--- {self.dropped - told} log line(s) dropped: stderr was not read "
                        f"fast enough ---\n") + line
                told = self.dropped
            try:
                self.stream.write(line)
                self.stream.flush()
            except Exception:                     # noqa: BLE001 - stream gone: keep draining
                pass

    def close(self):
        self.q.put(None)
        self._thread.join(5)
        super().close()
