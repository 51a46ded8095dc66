"""The x402 payments store on SQLite and PostgreSQL: the exposure limit holds under concurrent requests of one
payer (the payer's row lock), outcomes are applied once, a released batch's payments return to `served`; only
served payments are batched, served and void exclude each other, stale accepted payments are voided."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import insert

from backend import migrations
from backend.api.x402 import store
from backend.api.x402.scheme import PaymentRejectedError
from backend.models import metadata
from cairn.core.db import make_engine

CHAIN = 31337
PAYER = "0x" + "ab" * 20
PRICE = 10**16


def _record(engine: Any, nonce: int, *, limit: int = 10 * PRICE, balance: int = 10**20) -> int:
    return store.record(
        engine, chain_id=CHAIN, scheme="exact", payer=PAYER, nonce="0x" + f"{nonce:064x}", amount=PRICE,
        model_id="0x" + "01" * 32, resource="http://x/echo",
        authorization={"validAfter": "0", "validBefore": "9999999999", "signature": "0x" + "00" * 65},
        balance=balance, limit=limit,
    )  # fmt: skip


def _served(engine: Any, nonce: int, **kw: Any) -> int:
    """A payment recorded, then served (the gateway's middleware marks it once the route answered)."""
    pid = _record(engine, nonce, **kw)
    assert store.served(engine, pid)
    return pid


def _outbox(engine: Any, key: str, status: str) -> int:
    """An outbox row for a batch to reference (the settler's rows come from Outbox.enqueue)."""
    tx = metadata.tables["outbox_tx"]
    values = {
        "key": key,
        "chain_id": CHAIN,
        "sender": key,  # one row per sender: no nonce clash
        "nonce": 0,
        "to_address": None,
        "data": "0x",
        "value": "0",
        "gas": 21000,
        "status": status,
        "created_at": 0,
        "updated_at": 0,
    }
    with engine.begin() as conn:
        return int(conn.execute(insert(tx).values(**values).returning(tx.c.id)).scalar_one())


@pytest.fixture
def engine(database_url: str) -> Any:
    eng = make_engine(database_url)
    migrations.upgrade(eng)
    yield eng
    eng.dispose()


def test_exposure_limit_holds_under_concurrent_requests(engine: Any) -> None:
    accepted: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        try:
            pid = _record(engine, n, limit=5 * PRICE)
            with lock:
                accepted.append(pid)
        except PaymentRejectedError as exc:
            with lock:
                refused.append(exc.reason)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 5 and refused == ["exposure_limit"] * 11
    assert store.exposure(engine, CHAIN, PAYER).unsettled == 5 * PRICE


def test_replay_balance_and_outcomes(engine: Any) -> None:
    a = _served(engine, 1)
    with pytest.raises(PaymentRejectedError) as exc:
        _record(engine, 1)
    assert exc.value.reason == "invalid_exact_evm_nonce_already_used"
    with pytest.raises(PaymentRejectedError) as exc:
        _record(engine, 2, balance=PRICE)  # owes PRICE already: 2 x PRICE > balance
    assert exc.value.reason == "invalid_exact_evm_insufficient_balance"
    b = _served(engine, 3)
    rows = store.unbatched(engine, CHAIN, "exact", 10)
    assert [r.id for r in rows] == [a, b]
    ids = [_outbox(engine, "k1", "confirmed"), _outbox(engine, "k2", "pending")]
    with engine.begin() as conn:
        bid = store.claim_batch(conn, CHAIN, [a, b], ids[0])
    with pytest.raises(store.BatchRaceError), engine.begin() as conn:  # already batched: not twice
        store.claim_batch(conn, CHAIN, [a], ids[1])
    nonce_a, nonce_b = "0x" + f"{1:064x}", "0x" + f"{3:064x}"
    store.apply_outcomes(engine, bid, "0xtx", {(PAYER, nonce_a)}, {(PAYER, nonce_b): "insufficient_balance"})
    store.apply_outcomes(engine, bid, "0xtx", {(PAYER, nonce_a), (PAYER, nonce_b)}, {})  # a repeat: no change
    by_id = {p["id"]: p for p in store.payments(engine, CHAIN, payer=PAYER, status=None, limit=10)}
    assert by_id[a]["status"] == "settled" and by_id[a]["tx_hash"] == "0xtx"
    assert by_id[b]["status"] == "failed" and by_id[b]["reason"] == "insufficient_balance"
    e = store.exposure(engine, CHAIN, PAYER)
    assert (e.unsettled, e.failed, e.failed_amount) == (0, 1, PRICE)
    with pytest.raises(PaymentRejectedError) as exc:
        _record(engine, 4)
    assert exc.value.reason == "payer_has_failed_settlements"


def test_released_batch_returns_its_payments(engine: Any) -> None:
    a = _served(engine, 1)
    oid = _outbox(engine, "k-released", "failed")
    with engine.begin() as conn:
        bid = store.claim_batch(conn, CHAIN, [a], oid)
    store.release_batch(engine, bid)
    [row] = store.payments(engine, CHAIN, payer=PAYER, status=None, limit=10)
    assert row["status"] == "served"
    assert store.exposure(engine, CHAIN, PAYER).unsettled == PRICE  # still owed
    assert [r.id for r in store.unbatched(engine, CHAIN, "exact", 10)] == [a]


def test_only_served_payments_are_batched_and_served_or_void_wins_once(engine: Any) -> None:
    running = _record(engine, 1)  # its route still runs
    done = _served(engine, 2)
    assert [r.id for r in store.unbatched(engine, CHAIN, "exact", 10)] == [done]
    oid = _outbox(engine, "k-only-served", "pending")
    with pytest.raises(store.BatchRaceError), engine.begin() as conn:  # an accepted one cannot be claimed
        store.claim_batch(conn, CHAIN, [running, done], oid)
    assert store.void(engine, running, "stream_failed")
    assert not store.served(engine, running)  # void first: never served, never charged
    assert not store.void(engine, done, "route_failed")  # served first: it settles
    by_id = {p["id"]: p for p in store.payments(engine, CHAIN, payer=PAYER, status=None, limit=10)}
    assert (by_id[running]["status"], by_id[running]["reason"]) == ("void", "stream_failed")
    assert by_id[done]["status"] == "served"
    assert store.exposure(engine, CHAIN, PAYER).unsettled == PRICE


def test_served_and_void_race_has_one_winner(engine: Any) -> None:
    for n in range(8):
        pid = _record(engine, 100 + n)
        results: dict[str, bool] = {}

        def serve(pid: int = pid, out: dict[str, bool] = results) -> None:
            out["served"] = store.served(engine, pid)

        def fail(pid: int = pid, out: dict[str, bool] = results) -> None:
            out["void"] = store.void(engine, pid, "x")

        threads = [threading.Thread(target=serve), threading.Thread(target=fail)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == [False, True], results
    rows = store.payments(engine, CHAIN, payer=PAYER, status=None, limit=20)
    served = sum(r["status"] == "served" for r in rows)
    assert store.exposure(engine, CHAIN, PAYER).unsettled == served * PRICE


def test_stale_accepted_payment_is_voided_not_charged(engine: Any) -> None:
    stale = _record(engine, 1)
    fresh = _record(engine, 2)
    done = _served(engine, 3)
    with engine.begin() as conn:  # recorded 10 minutes ago: its API process died while serving it
        conn.execute(store.PAYMENT.update().where(store.PAYMENT.c.id.in_([stale, done])).values(created_at=1))
    assert store.void_stale(engine, CHAIN, 300) == 1
    by_id = {p["id"]: p for p in store.payments(engine, CHAIN, payer=PAYER, status=None, limit=10)}
    assert (by_id[stale]["status"], by_id[stale]["reason"]) == ("void", "not_served_in_time")
    assert by_id[fresh]["status"] == "accepted" and by_id[done]["status"] == "served"
    assert store.exposure(engine, CHAIN, PAYER).unsettled == 2 * PRICE
    assert not store.served(engine, stale)  # the request finishing late is not charged
