"""GroupCommit (backend.api.x402.groupcommit): every item written exactly once, in fewer transactions than
callers under contention, each caller returning only after its batch, a failed batch raised to its callers."""

from __future__ import annotations

import threading
import time

import pytest

from backend.api.x402.groupcommit import GroupCommit


def test_concurrent_items_share_transactions_and_return_after_their_write() -> None:
    batches: list[list[int]] = []
    written: set[int] = set()

    def write(items: list[int]) -> None:
        time.sleep(0.005)  # a transaction's cost: others queue meanwhile
        batches.append(items)
        written.update(items)

    commit: GroupCommit[int] = GroupCommit(write)
    start = threading.Barrier(32)
    seen_after: dict[int, bool] = {}

    def caller(i: int) -> None:
        start.wait()
        commit.submit(i)
        seen_after[i] = i in written  # durable when submit returns

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(x for b in batches for x in b) == list(range(32))  # each once
    assert len(batches) < 32 and max(len(b) for b in batches) > 1
    assert all(seen_after[i] for i in range(32))


def test_a_failed_batch_raises_in_each_of_its_callers_and_the_next_one_writes() -> None:
    fail = [True]
    written: list[int] = []

    def write(items: list[int]) -> None:
        if fail[0]:
            raise RuntimeError("disk full")
        written.extend(items)

    commit: GroupCommit[int] = GroupCommit(write)
    with pytest.raises(RuntimeError, match="disk full"):
        commit.submit(1)
    fail[0] = False
    commit.submit(2)
    assert written == [2]
