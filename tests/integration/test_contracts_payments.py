"""PaymentRouter and RewardDistributor end to end on anvil: eth-account signatures, real transactions.

* an x402 `exact` payment: EIP-3009 ReceiveWithAuthorization signed with eth-account, settled by the gateway;
* an x402 `batch-settlement` channel: deposit, cumulative voucher (EIP-712 typed data), gateway claim, and the
  payer's timed withdrawal of the rest;
* a root proposal, the challenge delay, and a claim with a proof from cairn.core.merkle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi.abi import decode
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

import bench.gas as G
from cairn.cli.devchain import mint_test_tokens, start_anvil
from cairn.core import eip712
from cairn.core.merkle import build_tree, verify
from cairn.core.settings import ANVIL_DEV_KEYS

ADMIN, GATEWAY = ANVIL_DEV_KEYS[0], ANVIL_DEV_KEYS[1]
PAYER = ANVIL_DEV_KEYS[7]
MODEL = keccak(b"llama-cairn-8b")
PAYMENT_SETTLED = keccak(b"PaymentSettled(address,bytes32,uint64,uint256,uint256,bytes32,uint32)")


@pytest.fixture(scope="module")
def drv() -> Iterator[Any]:
    with start_anvil() as chain:
        d = G.start(chain)
        mint_test_tokens(d.w3, d.deployment, Account.from_key(PAYER).address, 1_000 * 10**18)
        yield d


def _reverts_with(error_signature: str) -> Any:
    """pytest.raises for a custom error, matched on its selector in the node's revert data."""
    return pytest.raises(Exception, match="0x" + keccak(error_signature.encode())[:4].hex())


def _settled_events(receipt: Any, router: str) -> list[dict[str, Any]]:
    out = []
    for log in receipt["logs"]:
        if log["address"].lower() != router.lower() or bytes(log["topics"][0]) != PAYMENT_SETTLED:
            continue
        amount, fee, request_hash, count = decode(
            ["uint256", "uint256", "bytes32", "uint32"], bytes(log["data"])
        )
        out.append(
            {
                "payer": Web3.to_checksum_address(bytes(log["topics"][1])[12:]),
                "model": bytes(log["topics"][2]),
                "epoch": int.from_bytes(bytes(log["topics"][3]), "big"),
                "amount": amount,
                "fee": fee,
                "request_hash": request_hash,
                "count": count,
            }
        )
    return out


def test_exact_payment_signed_with_eth_account(drv: Any) -> None:
    token, router, dist = (
        drv.contract("RewardToken"),
        drv.contract("PaymentRouter"),
        drv.contract("RewardDistributor"),
    )
    payer = Account.from_key(PAYER).address
    fee_bps = router.functions.feeBps().call()
    fee_recipient = router.functions.feeRecipient().call()
    before = (token.functions.balanceOf(payer).call(), token.functions.balanceOf(fee_recipient).call())
    funded = dist.functions.totalFunded().call()
    value = 3 * 10**18
    payment = G.exact_payment(
        key=PAYER,
        token_name=token.functions.name().call(),
        chain_id=drv.w3.eth.chain_id,
        token=token.address,
        router=router.address,
        value=value,
        nonce=keccak(b"exact-1"),
        now=drv.now(),
        model_id=MODEL,
    )
    receipt = drv.send(GATEWAY, router.functions.settleExact(payment, MODEL))
    fee = value * fee_bps // 10_000
    [event] = _settled_events(receipt, router.address)
    assert event == {
        "payer": payer,
        "model": MODEL,
        "epoch": router.functions.currentEpoch().call(),
        "amount": value,
        "fee": fee,
        "request_hash": payment[4],  # an exact payment's request hash is its EIP-3009 nonce
        "count": 1,
    }
    assert token.functions.balanceOf(payer).call() == before[0] - value
    assert token.functions.balanceOf(fee_recipient).call() == before[1] + fee
    assert dist.functions.totalFunded().call() == funded + value - fee
    assert token.functions.authorizationState(payer, keccak(b"exact-1")).call() is True
    # the same authorization cannot be settled twice: the row is skipped and recorded, nothing paid
    again = drv.send(GATEWAY, router.functions.settleExact(payment, MODEL))
    assert _settled_events(again, router.address) == []
    [skipped] = router.events.PaymentSkipped().process_receipt(again)
    assert skipped["args"]["from"] == payer and skipped["args"]["nonce"] == keccak(b"exact-1")
    assert skipped["args"]["reason"] == keccak(b"ERC3009UsedAuthorization(address,bytes32)")[:4]
    assert dist.functions.totalFunded().call() == funded + value - fee


def test_channel_voucher_claim_and_withdrawal(drv: Any) -> None:
    token, router = drv.contract("RewardToken"), drv.contract("PaymentRouter")
    chain_id = drv.w3.eth.chain_id
    payer = Account.from_key(PAYER).address
    gateway = Account.from_key(GATEWAY).address
    cfg = G.channel_config(payer, payer, router.address, gateway, token.address)
    cid = G.channel_id(chain_id, router.address, cfg)
    assert cid == router.functions.channelId(G.config_tuple(cfg)).call()

    drv.send(PAYER, token.functions.approve(router.address, 10 * 10**18))
    drv.send(PAYER, router.functions.deposit(G.config_tuple(cfg), 10 * 10**18))
    # the agent pays 1,000 requests by signing cumulative vouchers; the gateway keeps the latest
    price, latest = 10**15, b""
    for n in range(1, 1001):
        typed = G.voucher_typed_data(chain_id, router.address, cid, n * price)
        if n in (1, 1000):
            latest = eip712.sign_typed_data(PAYER, typed)
    assert eip712.digest(typed) == router.functions.voucherDigest(cid, 1000 * price).call()
    total = 1000 * price
    batch_hash = keccak(b"requests 1..1000")
    row = (G.config_tuple(cfg), total, total, latest, MODEL, batch_hash, 1000)
    receipt = drv.send(GATEWAY, router.functions.claim([row]))
    [event] = _settled_events(receipt, router.address)
    assert (event["payer"], event["amount"], event["count"], event["request_hash"]) == (
        payer,
        total,
        1000,
        batch_hash,
    )
    balance, claimed = router.functions.channels(cid).call()
    assert (balance, claimed) == (10 * 10**18, total)

    # the gateway disappears: the payer withdraws the rest after the channel's delay
    drv.send(PAYER, router.functions.initiateWithdraw(G.config_tuple(cfg), 10 * 10**18 - total))
    with _reverts_with("PaymentRouterWithdrawNotReady(bytes32,uint64)"):
        drv.send(PAYER, router.functions.finalizeWithdraw(G.config_tuple(cfg)))
    drv.advance(cfg["withdrawDelay"])
    before = token.functions.balanceOf(payer).call()
    drv.send(PAYER, router.functions.finalizeWithdraw(G.config_tuple(cfg)))
    assert token.functions.balanceOf(payer).call() == before + 10 * 10**18 - total
    assert token.functions.balanceOf(router.address).call() == 0


def test_root_proposal_delay_and_claim_with_cairn_merkle(drv: Any) -> None:
    token, dist = drv.contract("RewardToken"), drv.contract("RewardDistributor")
    epoch = dist.functions.nextEpoch().call()
    if token.functions.mintedInEpoch(epoch).call() < token.functions.emissionCap(epoch).call():
        drv.send(GATEWAY, dist.functions.fundEmission(epoch))
    keys = [G.derived_key("it-claimer", i) for i in range(3)]
    accounts = [Account.from_key(k).address for k in keys]
    for a in accounts:
        drv.fund_eth(a)
    leaves = [(a, (i + 1) * 10**18) for i, a in enumerate(accounts)]
    leaves += [("0x" + keccak(i.to_bytes(4, "big"))[12:].hex(), 10**15 + i) for i in range(997)]
    tree = build_tree(leaves)
    total = sum(n for _, n in tree.values)
    end = dist.functions.epochEnd(epoch).call()
    if drv.now() < end:
        drv.advance(end - drv.now())
    drv.send(
        ADMIN,
        dist.functions.proposeRoot(tree.root_bytes, epoch, keccak(b"policy"), total, "file://alloc.json"),
    )
    amount, proof = tree.proof_for(accounts[0])
    assert verify(tree.root, (accounts[0], amount), proof)
    # not claimable during the challenge delay
    with _reverts_with("RewardDistributorNoRoot()"):
        drv.send(keys[0], dist.functions.claim(amount, proof))
    drv.advance(dist.functions.challengeDelay().call())
    drv.send(GATEWAY, dist.functions.acceptRoot())
    assert dist.functions.root().call()[0] == tree.root_bytes
    drv.send(keys[0], dist.functions.claim(amount, proof))
    assert token.functions.balanceOf(accounts[0]).call() == amount
    # a relayer claims for the others (sorted, no duplicates); the tokens go to the accounts
    rest = sorted(accounts[1:], key=lambda a: int(a, 16))
    proofs = [tree.proof_for(a) for a in rest]
    drv.send(GATEWAY, dist.functions.claimForBatch(rest, [p[0] for p in proofs], [p[1] for p in proofs]))
    for a, (amt, _) in zip(rest, proofs, strict=True):
        assert token.functions.balanceOf(a).call() == amt
        assert dist.functions.claimed(a).call() == amt
