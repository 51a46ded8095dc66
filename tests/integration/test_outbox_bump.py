"""Outbox reconciliation on real anvil with mining paused: a stuck transaction is replaced by a fee bump
(same nonce, one of the two is mined, the row records which); a nonce used from outside marks it failed,
once the nonce has been used without a receipt for PASSED_BLOCKS blocks."""

from __future__ import annotations

from eth_account import Account
from sqlalchemy import text
from web3 import Web3

from backend import migrations
from backend.outbox import Outbox
from cairn.cli.devchain import Anvil
from cairn.core.db import make_engine
from cairn.core.settings import ANVIL_DEV_KEYS

KEY = ANVIL_DEV_KEYS[8]
TO = "0x000000000000000000000000000000000000bEEF"


def _setup(anvil: Anvil, url: str) -> tuple[Web3, Outbox]:
    engine = make_engine(url)
    migrations.upgrade(engine)
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    anvil.rpc("evm_setAutomine", [False])
    return w3, Outbox(engine, w3, KEY, stuck_after=0)


def test_stuck_transaction_is_replaced_by_a_fee_bump(anvil: Anvil, sqlite_url: str) -> None:
    w3, box = _setup(anvil, sqlite_url)
    sender = Account.from_key(KEY).address
    nonce0 = w3.eth.get_transaction_count(sender)
    box.enqueue("bump:1", to=TO, value=123, gas=21_000)
    assert box.process() == 1  # not mined, older than stuck_after: replaced
    with box.engine.connect() as conn:
        fees = conn.execute(
            text("SELECT max_fee, priority_fee, tx_hash FROM outbox_attempt ORDER BY id")
        ).all()
    assert len(fees) == 2
    assert int(fees[1].max_fee) > int(fees[0].max_fee) * 110 // 100
    assert int(fees[1].priority_fee) > int(fees[0].priority_fee) * 110 // 100
    anvil.rpc("evm_mine", [])
    row = box.wait("bump:1", timeout=30)
    assert row.status == "confirmed" and row.mined_hash == fees[1].tx_hash
    assert w3.eth.get_balance(TO) == 123
    assert w3.eth.get_transaction_count(sender) == nonce0 + 1
    assert box.enqueue("bump:1", to=TO, value=123, gas=21_000).status == "confirmed"  # idempotent
    assert w3.eth.get_balance(TO) == 123


def test_nonce_consumed_elsewhere_marks_the_row_failed(anvil: Anvil, sqlite_url: str) -> None:
    w3, box = _setup(anvil, sqlite_url)
    box.stuck_after = 3600
    row = box.enqueue("ext:1", to=TO, value=5, gas=21_000)
    acct = Account.from_key(KEY)
    other = acct.sign_transaction(
        {"type": 2, "chainId": box.chain_id, "nonce": row.nonce, "to": Web3.to_checksum_address(TO),
         "value": 7, "gas": 21_000, "maxFeePerGas": 10**12, "maxPriorityFeePerGas": 10**11}
    )  # fmt: skip
    w3.eth.send_raw_transaction(other.raw_transaction)  # replaces ours in the pool
    anvil.rpc("evm_mine", [])
    assert box.process() == 1  # the nonce is used, no receipt: decided only blocks later (see PASSED_BLOCKS)
    got = box.get("ext:1")
    assert got is not None and got.status == "pending"
    anvil.rpc("evm_mine", [])
    anvil.rpc("evm_mine", [])
    assert box.process() == 0
    got = box.get("ext:1")
    assert got is not None and got.status == "failed"
    assert w3.eth.get_balance(TO) == 7
