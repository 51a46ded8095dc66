"""The batch-settlement scheme against the real router on anvil and the real indexer's SQLite mirror:
channel id and voucher digest equal the contract's, vouchers verified with no RPC, every rejection reason,
claims of many channels in one transaction, and a requested withdrawal claimed before it can take the
latest voucher's value."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import text
from support.channels import MODEL, PRICE, ChannelWorld, agent_key, build_world

from backend.api.x402.scheme import PaymentRejectedError
from cairn.agent.channel_client import CairnChannelScheme, finalize_withdraw, initiate_withdraw
from cairn.cli.devchain import Anvil

DEPOSIT = 1000 * PRICE


@pytest.fixture
def world(anvil: Anvil, tmp_path: Path) -> Iterator[ChannelWorld]:
    w = build_world(anvil, tmp_path)
    try:
        yield w
    finally:
        w.engine.dispose()


def _rejected(world: ChannelWorld, payload: dict, reason: str) -> None:
    requirement = world.requirement()
    with pytest.raises(PaymentRejectedError) as info:
        world.scheme.accept(payload, requirement, world.charge())
    assert info.value.reason == f"invalid_batch_settlement_evm_{reason}", info.value
    assert info.value.http_status == 402


def test_channel_id_and_voucher_digest_match_the_router(world: ChannelWorld) -> None:
    agent = world.open_channel(agent_key(0), DEPOSIT)
    router = world.router
    on_chain = "0x" + bytes(router.functions.channelId(agent.config.as_tuple()).call()).hex()
    assert on_chain == agent.channel_id
    digest = bytes(router.functions.voucherDigest(bytes.fromhex(agent.channel_id[2:]), 12345).call())
    assert digest == world.scheme.domain.voucher_digest(agent.channel_id, 12345)


def test_vouchers_are_cumulative_and_each_increment_pays_once(world: ChannelWorld) -> None:
    agent = world.open_channel(agent_key(0), 3 * PRICE)
    requirement = world.requirement()
    before_index = {
        "x402Version": 2,
        "accepted": requirement,
        "payload": agent.plugin.create_payment_payload(requirement),
    }
    _rejected(world, before_index, "channel_not_found")  # the deposit is not in the mirror yet
    world.index()
    first = world.pay(agent)
    assert first.extra["chargedCumulativeAmount"] == str(PRICE) and first.amount == PRICE
    # the same voucher again (a replay, or a second request racing with it) does not cover a second price
    _rejected(world, before_index, "voucher_amount")
    world.pay(agent)
    world.pay(agent)
    # the fourth request would exceed the deposit of three prices, even with a larger voucher
    _rejected(world, {"payload": agent.plugin.create_payment_payload(requirement), "x402Version": 2},
              "insufficient_balance")  # fmt: skip
    with world.engine.connect() as conn:
        row = conn.execute(text("SELECT charged, requests, max_claimable FROM channel_state")).one()
    assert (int(row[0]), int(row[1]), int(row[2])) == (3 * PRICE, 3, 3 * PRICE)


def test_malformed_or_foreign_vouchers_are_refused(world: ChannelWorld) -> None:
    agent = world.open_channel(agent_key(0), DEPOSIT)
    world.index()
    requirement = world.requirement()
    good = agent.plugin.create_payment_payload(requirement)
    # signed by another key than the channel's payerAuthorizer
    thief = CairnChannelScheme(Account.from_key(agent_key(9).key))
    forged = dict(good, voucher=dict(good["voucher"], signature=thief.create_payment_payload(requirement)
                                     ["voucher"]["signature"]))  # fmt: skip
    _rejected(world, forged, "voucher_signature")
    _rejected(world, dict(good, voucher=dict(good["voucher"], maxClaimableAmount=str(10 * PRICE))),
              "voucher_signature")  # fmt: skip
    other = dict(good["channelConfig"], receiverAuthorizer=agent.account.address)
    _rejected(world, dict(good, channelConfig=other), "receiver_authorizer")
    _rejected(
        world,
        dict(good, channelConfig=dict(good["channelConfig"], receiver=agent.account.address)),
        "receiver",
    )
    _rejected(
        world, dict(good, channelConfig=dict(good["channelConfig"], withdrawDelay=60)), "withdraw_delay"
    )
    _rejected(
        world, dict(good, channelConfig=dict(good["channelConfig"], salt="0x" + "11" * 32)), "channel_id"
    )
    _rejected(world, dict(good, type="deposit"), "deposit_unsupported")
    eip1271 = dict(good["channelConfig"], payerAuthorizer="0x" + "00" * 20)  # vouchers checked by the payer
    _rejected(world, dict(good, channelConfig=eip1271), "payer_authorizer")  # contract: needs an RPC call
    _rejected(
        world, dict(good, channelConfig=dict(good["channelConfig"], token=agent.account.address)), "token"
    )
    sig = good["voucher"]["signature"]
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = sig[:66] + format(n - int(sig[66:130], 16), "064x") + sig[130:]
    _rejected(world, dict(good, voucher=dict(good["voucher"], signature=high_s)), "payload")
    _rejected(world, dict(good, voucher=dict(good["voucher"], maxClaimableAmount="-1")), "payload")
    world.scheme.accept(good, requirement, world.charge())  # the untouched voucher still pays


def test_one_claim_transaction_covers_many_channels_and_is_not_repeated(world: ChannelWorld) -> None:
    agents = [world.open_channel(agent_key(i), DEPOSIT) for i in range(5)]
    world.index()
    for n, agent in enumerate(agents):
        for _ in range(n + 2):
            world.pay(agent)
    world.pay(agents[0], model="0x" + "cd" * 32)  # a second model on one channel: a second row
    claimer = world.claimer(min_requests=10**9)
    nothing = claimer.run_once()  # below min_requests, no withdrawal, not yet max_wait_s: waits
    assert nothing.outbox_id is None
    rounds = claimer.claim_all()
    sent = [r for r in rounds if r.outbox_id is not None]
    assert len(sent) == 1 and len(sent[0].lines) == 6 and sent[0].requests == sum(n + 2 for n in range(5)) + 1
    receipt = world.w3.eth.get_transaction_receipt(claimer.outbox.get_by_id(sent[0].outbox_id).mined_hash)
    assert receipt["status"] == 1
    router = world.router
    for agent in agents:
        balance, claimed = router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
        assert (balance, claimed) == (DEPOSIT, agent.plugin.charged[agent.channel_id])
    # idempotent: nothing new to claim, and a restarted claimer finds the same
    assert world.claimer().run_once(force=True).outbox_id is None
    world.pay(agents[1])
    again = world.claimer().claim_all()
    assert [len(r.lines) for r in again if r.outbox_id is not None] == [1]
    _, claimed = router.functions.channels(bytes.fromhex(agents[1].channel_id[2:])).call()
    assert claimed == 4 * PRICE
    world.index()
    with world.engine.connect() as conn:
        settled = conn.execute(text("SELECT SUM(CAST(amount AS INTEGER)), SUM(request_count), COUNT(*) "
                                    "FROM ev_payment_settled")).one()  # fmt: skip
    total = sum(a.plugin.charged[a.channel_id] for a in agents)
    assert settled[0] == total and settled[1] == sum(n + 2 for n in range(5)) + 2 and settled[2] == 7


def test_a_requested_withdrawal_is_claimed_before_it_can_take_the_vouchers(world: ChannelWorld) -> None:
    agent = world.open_channel(agent_key(0), DEPOSIT)
    world.index()
    for _ in range(7):
        world.pay(agent)
    # the agent tries to leave with everything: the whole unclaimed balance
    initiate_withdraw(world.w3, agent.account, agent.config, DEPOSIT)
    world.index()
    _rejected(world, {"payload": agent.plugin.create_payment_payload(world.requirement()), "x402Version": 2},
              "withdrawal_pending")  # fmt: skip
    claimer = world.claimer(min_requests=10**9, max_wait_s=10**9)
    first = claimer.run_once()  # not forced: the pending withdrawal alone makes the channel due
    assert first.outbox_id is not None and [ln.channel_id for ln in first.lines] == [agent.channel_id]
    claimer.outbox.wait(str(first.key))
    world.anvil.rpc("evm_increaseTime", [agent.config.withdraw_delay + 1])
    world.anvil.rpc("evm_mine")
    before = int(world.token.functions.balanceOf(agent.account.address).call())
    finalize_withdraw(world.w3, agent.account, agent.config)
    after = int(world.token.functions.balanceOf(agent.account.address).call())
    assert after - before == DEPOSIT - 7 * PRICE  # the gateway kept exactly the seven requests it served
    balance, claimed = world.router.functions.channels(bytes.fromhex(agent.channel_id[2:])).call()
    assert (balance, claimed) == (7 * PRICE, 7 * PRICE)
    world.index()
    # withdrawn: no longer pending, but the channel has nothing left for another request
    _rejected(world, {"payload": agent.plugin.create_payment_payload(world.requirement()), "x402Version": 2},
              "insufficient_balance")  # fmt: skip
    assert MODEL


def test_a_channel_drained_by_a_late_withdrawal_is_skipped_and_the_others_claimed(
    world: ChannelWorld,
) -> None:
    late, other = (world.open_channel(agent_key(i), DEPOSIT) for i in range(2))
    world.index()
    for _ in range(5):
        world.pay(late)
        world.pay(other)
    # the gateway's claimer is down for longer than the withdrawal delay: the payer takes everything unclaimed
    initiate_withdraw(world.w3, late.account, late.config, DEPOSIT)
    world.anvil.rpc("evm_increaseTime", [late.config.withdraw_delay + 1])
    world.anvil.rpc("evm_mine")
    finalize_withdraw(world.w3, late.account, late.config)
    world.index()
    result = world.claimer().run_once(force=True)
    assert result.skipped == [late.channel_id] and [ln.channel_id for ln in result.lines] == [
        other.channel_id
    ]
    world.claimer().outbox.wait(str(result.key))
    _, claimed = world.router.functions.channels(bytes.fromhex(other.channel_id[2:])).call()
    assert claimed == 5 * PRICE
    assert world.router.functions.channels(bytes.fromhex(late.channel_id[2:])).call() == (0, 0)
