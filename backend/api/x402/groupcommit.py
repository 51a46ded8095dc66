"""Group commit: many threads' small writes of one kind in one database transaction.

`GroupCommit.submit(item)` returns once a transaction holding `item` has committed (or raises what that
transaction raised), so the caller's durability is that of a write of its own. The first caller with nothing
being written becomes the leader: it writes every item submitted so far in one `write(items)` call, then the
items submitted meanwhile, until none is left; the others wait for the batch that holds theirs. Under load
one transaction serves many requests (and one SQLite write lock is taken once, not once per request); alone,
a caller writes at once, with no timer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Slot:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[list[T]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._pending: list[tuple[T, _Slot]] = []
        self._leading = False

    def submit(self, item: T) -> None:
        slot = _Slot()
        with self._lock:
            self._pending.append((item, slot))
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        slot.done.wait()
        if slot.error is not None:
            raise slot.error

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._leading = False
                    return
            error: BaseException | None = None
            try:
                self._write([item for item, _ in batch])
            except BaseException as exc:  # every waiter of this batch sees it
                error = exc
            for _, slot in batch:
                slot.error = error
                slot.done.set()
