"""`OutboxWorker`: `Outbox.process()` in a daemon thread, so pending rows are re-broadcast and fee-bumped
while the process runs (the API runs one for its relayer). `then()`, if given, runs after each round (the API
settles its relayer's gas budget from the rows the round settled)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from backend.outbox.sender import Outbox

log = logging.getLogger("cairn.outbox")


class OutboxWorker:
    def __init__(
        self, outbox: Outbox, *, interval: float = 1.0, then: Callable[[], object] | None = None
    ) -> None:
        self.outbox = outbox
        self.then = then
        self.interval = interval
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="cairn-outbox", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self.outbox.process()
                if self.then is not None:
                    self.then()
            except Exception:  # the node or the database is away for a moment: try again next round
                log.warning("outbox processing of %s failed; retrying", self.outbox.sender, exc_info=True)

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
