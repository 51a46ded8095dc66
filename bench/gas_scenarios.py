"""The gas scenarios: real transactions on a fresh anvil, each scenario the receipt's exact `gasUsed` of one
transaction, named `Contract.function: scenario`.

Every input is fixed (keys derived from labels, content hashes from indices, a fixed EIP-3009 `validBefore`,
leaves from a fixed rule), so two runs on the same anvil and contracts give the same gas to the unit: calldata
costs 4 or 16 gas per byte depending on whether it is zero, so an input taken from the clock (as
`validBefore = now + 1h` was) moves the gas between runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak

from bench.gas_driver import CHALLENGE_DELAY, EPOCH_LENGTH, claim_proof, derived_key, leaves_for, start
from bench.x402 import channel_config, channel_id, config_tuple, exact_payment, voucher_typed_data
from cairn.cli.devchain import mint_test_tokens, start_anvil
from cairn.core import eip712
from cairn.core.merkle import MerkleTree, build_tree
from cairn.core.registration import dataset_batch_calls, dataset_calls, dataset_list_calls
from cairn.core.settings import ANVIL_DEV_KEYS

TREE_SIZE = 100_000
BATCH = 100  # datasets per registration batch, scores per attestation batch
RELAYED = 10  # accounts per relayed claim batch, payments per exact batch, channels per voucher claim
REQUESTS_PER_CLAIM = 1_000
PRICE = 10**15  # per request
VALID_BEFORE = 2**31 - 1  # EIP-3009 validBefore of every exact payment: fixed, so the calldata is too
IPFS = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"

# --- scenario names (the keys of contracts/gas-snapshot.json) -------------------------------------------
COMMIT = "ContributionRegistry.commit: one commitment (the first step of every dataset registration)"
REGISTER_DATASET = "ContributionRegistry.registerDataset: the owner's second dataset (the reveal)"
REGISTER_DATASETS = (
    f"ContributionRegistry.registerDatasets: {BATCH} datasets, each with its own fields (the reveal)"
)
REGISTER_DATASET_BATCH = (
    f"ContributionRegistry.registerDatasetBatch: {BATCH} datasets sharing their fields (the reveal)"
)
ATTEST = "ContributionRegistry.attest: a validator's first score on a contribution"
ATTEST_BATCH = [
    f"ContributionRegistry.attestBatch: {BATCH} scores, {nth} validator"
    for nth in ("first", "second", "third (quorum)")
]
PROPOSE_ROOT_FIRST = "RewardDistributor.proposeRoot: the first root (epoch 0)"
ACCEPT_ROOT = "RewardDistributor.acceptRoot: the first root"
PROPOSE_ROOT = "RewardDistributor.proposeRoot: epoch 1 (steady state)"
CLAIM_FIRST = f"RewardDistributor.claim: first claim of an account holding no tokens, {TREE_SIZE}-leaf tree"
CLAIM_NEXT = f"RewardDistributor.claim: the same account's claim of the next root, {TREE_SIZE}-leaf tree"
CLAIM_FOR_BATCH_FIRST = (
    f"RewardDistributor.claimForBatch: {RELAYED} accounts claiming for the first time, {TREE_SIZE}-leaf tree"
)
CLAIM_FOR_BATCH = (
    f"RewardDistributor.claimForBatch: {RELAYED} accounts that claimed before, {TREE_SIZE}-leaf tree"
)
SETTLE_EXACT = "PaymentRouter.settleExact: the payer's second payment"
SETTLE_EXACT_BATCH = f"PaymentRouter.settleExactBatch: {RELAYED} payments from {RELAYED} payers"
VOUCHER_CLAIM = f"PaymentRouter.claim: 1 channel claimed before, {REQUESTS_PER_CLAIM} requests"
VOUCHER_CLAIM_BATCH = (
    f"PaymentRouter.claim: {RELAYED} channels claimed before, {REQUESTS_PER_CLAIM} requests each"
)


def _salt(i: int) -> bytes:
    """Fixed salts: the snapshot is exact, and calldata gas depends on the bytes."""
    return keccak(b"salt" + i.to_bytes(4, "big"))


def _dataset(i: int) -> tuple[bytes, int, int, bytes, str]:
    return keccak(b"dataset" + i.to_bytes(4, "big")), 1 << 30, 1, keccak(b"meta" + bytes([i % 256])), IPFS


def measure(log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
    """Every scenario's exact gas, measured on a fresh anvil (a few seconds; the tree build is most of it)."""
    gas: dict[str, int] = {}
    with start_anvil() as chain:
        d = start(chain)
        chain_id = d.w3.eth.chain_id
        admin, gateway = ANVIL_DEV_KEYS[0], ANVIL_DEV_KEYS[1]
        token, reg = d.contract("RewardToken"), d.contract("ContributionRegistry")
        dist, router = d.contract("RewardDistributor"), d.contract("PaymentRouter")
        token_name = token.functions.name().call()
        gateway_addr = Account.from_key(gateway).address

        # --- tokens for payers (minted as the distributor, the only minter, on the local chain) ---
        payer_keys = [derived_key("payer", i) for i in range(RELAYED + 2)]
        for k in payer_keys:
            addr = Account.from_key(k).address
            d.fund_eth(addr)
            mint_test_tokens(d.w3, d.deployment, addr, 100 * 10**18)
        d.send(gateway, dist.functions.fundEmission(0))

        # --- registry ---
        owner = ANVIL_DEV_KEYS[5]
        owner_addr = Account.from_key(owner).address
        for step in dataset_calls(reg, owner_addr, *_dataset(0), salt=_salt(0)):
            d.send(owner, step)
        commit, reveal = dataset_calls(reg, owner_addr, *_dataset(1), salt=_salt(1))
        gas[COMMIT] = d.gas(owner, commit)
        gas[REGISTER_DATASET] = d.gas(owner, reveal)
        listed = [_dataset(i) for i in range(2000, 2000 + BATCH)]
        commit, reveal = dataset_list_calls(reg, owner_addr, listed, salt=_salt(2))
        d.send(owner, commit)
        gas[REGISTER_DATASETS] = d.gas(owner, reveal)
        ids = [_dataset(i)[0] for i in range(1000, 1000 + BATCH)]
        shared = (ids, [1 << 30] * BATCH, 1, keccak(b"batch-manifest"), IPFS)
        commit, reveal = dataset_batch_calls(reg, owner_addr, shared, salt=_salt(3))
        d.send(owner, commit)
        gas[REGISTER_DATASET_BATCH] = d.gas(owner, reveal)
        validators = [ANVIL_DEV_KEYS[0], ANVIL_DEV_KEYS[2], ANVIL_DEV_KEYS[6]]
        role = reg.functions.VALIDATOR_ROLE().call()
        for k in validators:
            addr = Account.from_key(k).address
            if not reg.functions.hasRole(role, addr).call():
                d.send(admin, reg.functions.grantRole(role, addr))
        gas[ATTEST] = d.gas(validators[1], reg.functions.attest(_dataset(0)[0], 8000))
        scores = [7000 + j for j in range(BATCH)]
        for name, k in zip(ATTEST_BATCH, validators, strict=True):
            gas[name] = d.gas(k, reg.functions.attestBatch(ids, scores))
        log("registry measured")

        # --- roots and claims on a 100k-leaf tree ---
        claimer_keys = [derived_key("claimer", i) for i in range(RELAYED + 1)]
        claimers = [Account.from_key(k).address for k in claimer_keys]
        for a in claimers:
            d.fund_eth(a)
        t0 = time.perf_counter()
        tree_a = build_tree(leaves_for(claimers, TREE_SIZE, 0, PRICE))
        log(f"tree of {TREE_SIZE} built in {time.perf_counter() - t0:.1f} s")
        d.advance(EPOCH_LENGTH)
        policy = keccak(b"policy-v1")
        uri = f"{IPFS}/epoch-0.json"
        total_a = sum(n for _, n in tree_a.values)
        gas[PROPOSE_ROOT_FIRST] = d.gas(
            admin, dist.functions.proposeRoot(tree_a.root_bytes, 0, policy, total_a, uri)
        )
        d.advance(CHALLENGE_DELAY)
        gas[ACCEPT_ROOT] = d.gas(gateway, dist.functions.acceptRoot())
        gas[CLAIM_FIRST] = d.gas(claimer_keys[0], dist.functions.claim(*claim_proof(tree_a, claimers[0])))
        relayed = sorted(claimers[1:], key=lambda a: int(a, 16))

        def claim_for_batch(tree: MerkleTree) -> int:
            rows = [claim_proof(tree, a) for a in relayed]
            return d.gas(
                gateway, dist.functions.claimForBatch(relayed, [r[0] for r in rows], [r[1] for r in rows])
            )

        gas[CLAIM_FOR_BATCH_FIRST] = claim_for_batch(tree_a)
        tree_b = build_tree(leaves_for(claimers, TREE_SIZE, PRICE, PRICE))
        total_b = sum(n for _, n in tree_b.values)
        d.advance(EPOCH_LENGTH)
        next_root = dist.functions.proposeRoot(tree_b.root_bytes, 1, policy, total_b, uri.replace("-0", "-1"))
        gas[PROPOSE_ROOT] = d.gas(admin, next_root)
        d.advance(CHALLENGE_DELAY)
        d.send(gateway, dist.functions.acceptRoot())
        gas[CLAIM_NEXT] = d.gas(claimer_keys[0], dist.functions.claim(*claim_proof(tree_b, claimers[0])))
        gas[CLAIM_FOR_BATCH] = claim_for_batch(tree_b)
        log("claims measured")

        # --- exact payments (EIP-3009) ---
        model = keccak(b"model-1")

        def pay(k: str, i: int) -> tuple[Any, ...]:
            return exact_payment(
                key=k,
                token_name=token_name,
                chain_id=chain_id,
                token=token.address,
                router=router.address,
                value=PRICE,
                nonce=keccak(b"n" + i.to_bytes(4, "big")),
                now=0,
                valid_before=VALID_BEFORE,
                model_id=model,
            )

        d.send(gateway, router.functions.settleExact(pay(payer_keys[0], 0), model))
        gas[SETTLE_EXACT] = d.gas(gateway, router.functions.settleExact(pay(payer_keys[0], 1), model))
        payments = [pay(payer_keys[1 + i], 100 + i) for i in range(RELAYED)]
        gas[SETTLE_EXACT_BATCH] = d.gas(gateway, router.functions.settleExactBatch(payments, model))

        # --- channels (x402 batch-settlement) ---
        channels = []
        for k in payer_keys[:RELAYED]:
            addr = Account.from_key(k).address
            cfg = channel_config(addr, addr, router.address, gateway_addr, token.address)
            d.send(k, token.functions.approve(router.address, 2**256 - 1))
            d.send(k, router.functions.deposit(config_tuple(cfg), 50 * 10**18))
            channels.append((k, cfg, channel_id(chain_id, router.address, cfg)))

        def claim_row(k: str, cfg: dict[str, Any], cid: bytes, total: int) -> tuple[Any, ...]:
            sig = eip712.sign_typed_data(k, voucher_typed_data(chain_id, router.address, cid, total))
            request_id = keccak(cid + total.to_bytes(32, "big"))
            return config_tuple(cfg), total, total, sig, model, request_id, REQUESTS_PER_CLAIM

        per_claim = PRICE * REQUESTS_PER_CLAIM
        d.send(gateway, router.functions.claim([claim_row(*c, per_claim) for c in channels]))  # warm slots
        gas[VOUCHER_CLAIM] = d.gas(gateway, router.functions.claim([claim_row(*channels[0], 2 * per_claim)]))
        rows = [claim_row(*c, 3 * per_claim) for c in channels]
        gas[VOUCHER_CLAIM_BATCH] = d.gas(gateway, router.functions.claim(rows))
        log("payments measured")
    return dict(sorted(gas.items()))
