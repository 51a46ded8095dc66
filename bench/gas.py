"""Gas of every hot path, measured with real transactions on a fresh anvil (receipts' `gasUsed`).

Everything is deployed by `cairn.cli.deploy.deploy_all` (the same deployer `cairn deploy` uses), then
driven with
locally signed transactions. Figures (gas, per item where the name says so):

* `gas_register_dataset`: one `registerDataset` (the owner's second registration: steady state);
* `gas_register_dataset_batch_per_item`: `registerDatasetBatch` of 100 (shared licence, metadata and location;
  one event), divided by 100; `gas_register_dataset_list_per_item`: `registerDatasets` of 100 datasets each
  with its own fields and event, divided by 100;
* `gas_attest`: one `attest` (a validator's first score on a contribution);
* `gas_attest_batch_per_item`: `attestBatch` of 100 by one validator, divided by 100;
* `gas_publish_root`: `proposeRoot` of epoch 1 (steady state: the pending slot was used before);
  `gas_publish_root_first`: the very first proposal; `gas_accept_root`: `acceptRoot`;
* `gas_claim_first`: first `claim` of an account holding no tokens, 100,000-leaf tree;
* `gas_claim_next`: the same account's next claim after the next epoch's root, 100,000-leaf tree;
* `gas_claim_relayed_batch10_per_user`: `claimForBatch` by a relayer for 10 accounts that claimed before
  (the steady state of a claim relayer), per account; `gas_claim_relayed_batch10_first_per_user`: the same for
  10 accounts claiming for the first time into empty balances;
* `gas_payment_exact`: one `settleExact` (EIP-3009 `receiveWithAuthorization`, fee to the recipient,
  revenue to the pool; steady state: second settlement); `gas_payment_exact_batch10_per_payment`:
  `settleExactBatch` of 10, per payment;
* `gas_payment_voucher_per_request`: one channel `claim` covering 1,000 requests (a channel claimed before),
  divided by 1,000; `gas_payment_voucher_per_request_batch10`: 10 channels x 1,000 requests in one claim;
* `gas_contribution_lifecycle`: per contribution, registration in a batch of 100 + quorum (3 validators)
  attestations in batches of 100 + root proposal over 100 + one first claim counted in full (the owner of each
  contribution claims once: the worst case); `gas_contribution_lifecycle_owner_batch`: the same with the claim
  amortised over the owner's batch of 100.

`python -m bench.gas --write-snapshot` rewrites `contracts/gas-snapshot.json`, which
`tests/integration/test_gas_snapshot.py` compares against (CI fails on a rise above the tolerance).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil, start_anvil
from cairn.core import eip712
from cairn.core.deployment import Deployment
from cairn.core.merkle import MerkleTree, build_tree
from cairn.core.settings import ANVIL_DEV_KEYS

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "contracts" / "gas-snapshot.json"
TREE_SIZE = 100_000
EPOCH_LENGTH = 3600
CHALLENGE_DELAY = 600
REQUESTS_PER_CLAIM = 1_000
PRICE = 10**15  # per request
QUORUM = 3
CHANNEL_DOMAIN_NAME = "x402 Batch Settlement"
CHANNEL_DOMAIN_VERSION = "1"
CHANNEL_CONFIG_FIELDS = [
    {"name": "payer", "type": "address"},
    {"name": "payerAuthorizer", "type": "address"},
    {"name": "receiver", "type": "address"},
    {"name": "receiverAuthorizer", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "withdrawDelay", "type": "uint40"},
    {"name": "salt", "type": "bytes32"},
]
VOUCHER_FIELDS = [{"name": "channelId", "type": "bytes32"}, {"name": "maxClaimableAmount", "type": "uint128"}]


# --- EIP-712 helpers (x402 batch-settlement channel, EIP-3009) -------------------------------------------
def channel_domain(chain_id: int, router: str) -> dict[str, Any]:
    return {
        "name": CHANNEL_DOMAIN_NAME,
        "version": CHANNEL_DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": router,
    }


def channel_config(
    payer: str, payer_authorizer: str, router: str, gateway: str, token: str
) -> dict[str, Any]:
    return {
        "payer": payer,
        "payerAuthorizer": payer_authorizer,
        "receiver": router,
        "receiverAuthorizer": gateway,
        "token": token,
        "withdrawDelay": 900,
        "salt": b"\x00" * 32,
    }


def config_tuple(cfg: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(cfg[f["name"]] for f in CHANNEL_CONFIG_FIELDS)


def channel_id(chain_id: int, router: str, cfg: dict[str, Any]) -> bytes:
    """x402 channel id: the EIP-712 hash of the ChannelConfig under the router's domain."""
    typed = {
        "types": {"EIP712Domain": eip712.DOMAIN_FIELDS, "ChannelConfig": CHANNEL_CONFIG_FIELDS},
        "primaryType": "ChannelConfig",
        "domain": channel_domain(chain_id, router),
        "message": cfg,
    }
    return eip712.digest(typed)


def voucher_typed_data(chain_id: int, router: str, cid: bytes, max_claimable: int) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": eip712.DOMAIN_FIELDS, "Voucher": VOUCHER_FIELDS},
        "primaryType": "Voucher",
        "domain": channel_domain(chain_id, router),
        "message": {"channelId": cid, "maxClaimableAmount": max_claimable},
    }


def split_sig(sig: bytes) -> tuple[int, bytes, bytes]:
    return sig[64], sig[:32], sig[32:64]


def exact_payment(
    *,
    key: str,
    token_name: str,
    chain_id: int,
    token: str,
    router: str,
    value: int,
    nonce: bytes,
    now: int,
    model_id: bytes,
) -> tuple[Any, ...]:
    """A signed EIP-3009 ReceiveWithAuthorization to the router, as the router's `ExactPayment` tuple."""
    payer = Account.from_key(key).address
    valid_after, valid_before = 0, now + 3600
    typed = eip712.transfer_authorization_typed_data(
        token_name=token_name,
        chain_id=chain_id,
        verifying_contract=token,
        from_=payer,
        to=router,
        value=value,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce="0x" + nonce.hex(),
        receive=True,
    )
    v, r, s = split_sig(eip712.sign_typed_data(key, typed))
    return (payer, value, valid_after, valid_before, nonce, v, r, s, model_id, keccak(b"req" + nonce))


# --- chain driver -------------------------------------------------------------------------------------------
@dataclass
class Driver:
    """Signs and sends transactions from several keys; returns receipts (reverts raise)."""

    chain: Anvil
    w3: Web3
    deployment: Deployment
    nonces: dict[str, int] = field(default_factory=dict)

    def contract(self, name: str) -> Contract:
        return self.deployment.contract(self.w3, name)

    def send(self, key: str, fn: Any) -> Any:
        acct: LocalAccount = Account.from_key(key)
        nonce = self.nonces.get(acct.address)
        if nonce is None:
            nonce = int(self.w3.eth.get_transaction_count(acct.address, "pending"))
        tx = fn.build_transaction({"from": acct.address, "nonce": nonce, "chainId": self.w3.eth.chain_id})
        tx["gas"] = int(tx["gas"]) * 2
        signed = acct.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.nonces[acct.address] = nonce + 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.02)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def gas(self, key: str, fn: Any) -> int:
        return int(self.send(key, fn)["gasUsed"])

    def advance(self, seconds: int) -> None:
        self.chain.rpc("evm_increaseTime", [seconds])
        self.chain.rpc("evm_mine")

    def fund_eth(self, address: str) -> None:
        self.chain.rpc("anvil_setBalance", [address, hex(10**20)])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def derived_key(label: str, i: int) -> str:
    return "0x" + keccak(f"cairn-gas-{label}-{i}".encode()).hex()


def start(chain: Anvil) -> Driver:
    w3 = Web3(Web3.HTTPProvider(chain.url, request_kwargs={"timeout": 60}))
    dep = deploy_all(w3, ANVIL_DEV_KEYS[0], epoch_length=EPOCH_LENGTH, challenge_delay=CHALLENGE_DELAY)
    return Driver(chain, w3, dep)


def leaves_for(claimers: Sequence[str], size: int, bump: int) -> list[tuple[str, int]]:
    """`size` leaves: the claimers first, then deterministic pseudo-accounts; amounts grow with `bump`."""
    out = [(a, PRICE * (i + 1) + bump) for i, a in enumerate(claimers)]
    for i in range(len(claimers), size):
        addr = "0x" + keccak(b"leaf" + i.to_bytes(4, "big"))[12:].hex()
        out.append((addr, 10**12 + i + bump))
    return out


def _claim_proof(tree: MerkleTree, account: str) -> tuple[int, list[bytes]]:
    idx = tree.index_of(account)
    return tree.values[idx][1], tree.proof_bytes(idx)


def measure(tree_size: int = TREE_SIZE, log: Callable[[str], None] = lambda _m: None) -> dict[str, float]:
    figures: dict[str, float] = {}
    with start_anvil() as chain:
        d = start(chain)
        w3 = d.w3
        chain_id = w3.eth.chain_id
        admin, gateway = ANVIL_DEV_KEYS[0], ANVIL_DEV_KEYS[1]
        token, reg = d.contract("RewardToken"), d.contract("ContributionRegistry")
        dist, router = d.contract("RewardDistributor"), d.contract("PaymentRouter")
        token_name = token.functions.name().call()
        gateway_addr = Account.from_key(gateway).address

        # --- tokens for payers (the deployer takes MINTER for the benchmark), then the pool's emission ---
        d.send(
            admin,
            token.functions.grantRole(token.functions.MINTER_ROLE().call(), Account.from_key(admin).address),
        )
        payer_keys = [derived_key("payer", i) for i in range(12)]
        for k in payer_keys:
            addr = Account.from_key(k).address
            d.fund_eth(addr)
            d.send(admin, token.functions.mintEmission(0, addr, 100 * 10**18))
        d.send(gateway, dist.functions.fundEmission(0))

        # --- registry ---
        owner = ANVIL_DEV_KEYS[5]

        def ds(i: int) -> tuple[bytes, int, int, bytes, str]:
            return (
                keccak(b"dataset" + i.to_bytes(4, "big")),
                1 << 30,
                1,
                keccak(b"meta" + bytes([i % 256])),
                "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            )

        d.send(owner, reg.functions.registerDataset(*ds(0)))
        figures["gas_register_dataset"] = d.gas(owner, reg.functions.registerDataset(*ds(1)))
        listed = [ds(i) for i in range(2000, 2100)]
        figures["gas_register_dataset_list_per_item"] = (
            d.gas(owner, reg.functions.registerDatasets(listed)) / 100
        )
        batch = [ds(i) for i in range(1000, 1100)]
        shared = (
            [b[0] for b in batch],
            [b[1] for b in batch],
            1,
            keccak(b"batch-manifest"),
            "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        )
        figures["gas_register_dataset_batch_per_item"] = (
            d.gas(owner, reg.functions.registerDatasetBatch(shared)) / 100
        )
        validators = [ANVIL_DEV_KEYS[0], ANVIL_DEV_KEYS[2], ANVIL_DEV_KEYS[6]]
        role = reg.functions.VALIDATOR_ROLE().call()
        for k in validators:
            addr = Account.from_key(k).address
            if not reg.functions.hasRole(role, addr).call():
                d.send(admin, reg.functions.grantRole(role, addr))
        figures["gas_attest"] = d.gas(validators[1], reg.functions.attest(ds(0)[0], 8000))
        ids = [b[0] for b in batch]
        attest_gas = [
            d.gas(k, reg.functions.attestBatch(ids, [7000 + j for j in range(100)])) for k in validators
        ]
        figures["gas_attest_batch_per_item"] = attest_gas[0] / 100
        log("registry measured")

        # --- roots and claims on a 100k-leaf tree ---
        claimer_keys = [derived_key("claimer", i) for i in range(11)]
        claimers = [Account.from_key(k).address for k in claimer_keys]
        for a in claimers:
            d.fund_eth(a)
        t0 = time.perf_counter()
        tree_a = build_tree(leaves_for(claimers, tree_size, 0))
        log(f"tree of {tree_size} built in {time.perf_counter() - t0:.1f} s")
        total_a = sum(n for _, n in tree_a.values)
        d.advance(EPOCH_LENGTH)
        policy = keccak(b"policy-v1")
        uri = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/epoch-0.json"
        figures["gas_publish_root_first"] = d.gas(
            admin, dist.functions.proposeRoot(tree_a.root_bytes, 0, policy, total_a, uri)
        )
        d.advance(CHALLENGE_DELAY)
        figures["gas_accept_root"] = d.gas(gateway, dist.functions.acceptRoot())
        amount, proof = _claim_proof(tree_a, claimers[0])
        figures["gas_claim_first"] = d.gas(claimer_keys[0], dist.functions.claim(amount, proof))
        batch10 = sorted(claimers[1:11], key=lambda a: int(a, 16))

        def relayed(tree: MerkleTree) -> int:
            rows = [_claim_proof(tree, a) for a in batch10]
            fn = dist.functions.claimForBatch(batch10, [r[0] for r in rows], [r[1] for r in rows])
            return d.gas(gateway, fn)

        figures["gas_claim_relayed_batch10_first_per_user"] = relayed(tree_a) / 10

        tree_b = build_tree(leaves_for(claimers, tree_size, PRICE))
        total_b = sum(n for _, n in tree_b.values)
        d.advance(EPOCH_LENGTH)
        figures["gas_publish_root"] = d.gas(
            admin, dist.functions.proposeRoot(tree_b.root_bytes, 1, policy, total_b, uri.replace("-0", "-1"))
        )
        d.advance(CHALLENGE_DELAY)
        d.send(gateway, dist.functions.acceptRoot())
        amount, proof = _claim_proof(tree_b, claimers[0])
        figures["gas_claim_next"] = d.gas(claimer_keys[0], dist.functions.claim(amount, proof))
        figures["gas_claim_relayed_batch10_per_user"] = relayed(tree_b) / 10
        log("claims measured")

        # --- exact payments (EIP-3009) ---
        now = d.now()
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
                now=now,
                model_id=model,
            )

        d.send(gateway, router.functions.settleExact(pay(payer_keys[0], 0)))
        figures["gas_payment_exact"] = d.gas(gateway, router.functions.settleExact(pay(payer_keys[0], 1)))
        payments = [pay(payer_keys[1 + i], 100 + i) for i in range(10)]
        figures["gas_payment_exact_batch10_per_payment"] = (
            d.gas(gateway, router.functions.settleExactBatch(payments)) / 10
        )

        # --- channels (x402 batch-settlement) ---
        configs = []
        for k in payer_keys[:10]:
            addr = Account.from_key(k).address
            cfg = channel_config(addr, addr, router.address, gateway_addr, token.address)
            d.send(k, token.functions.approve(router.address, 2**256 - 1))
            d.send(k, router.functions.deposit(config_tuple(cfg), 50 * 10**18))
            configs.append((k, cfg, channel_id(chain_id, router.address, cfg)))

        def claim_row(k: str, cfg: dict[str, Any], cid: bytes, total: int) -> tuple[Any, ...]:
            sig = eip712.sign_typed_data(k, voucher_typed_data(chain_id, router.address, cid, total))
            return (
                config_tuple(cfg),
                total,
                total,
                sig,
                model,
                keccak(cid + total.to_bytes(32, "big")),
                REQUESTS_PER_CLAIM,
            )

        per_claim = PRICE * REQUESTS_PER_CLAIM
        rows = [claim_row(k, cfg, cid, per_claim) for k, cfg, cid in configs]
        d.send(gateway, router.functions.claim(rows))  # first claims (warm channel slots)
        k, cfg, cid = configs[0]
        one = d.gas(gateway, router.functions.claim([claim_row(k, cfg, cid, 2 * per_claim)]))
        figures["gas_payment_voucher_per_request"] = one / REQUESTS_PER_CLAIM
        rows = [claim_row(k, cfg, cid, 3 * per_claim) for k, cfg, cid in configs]
        ten = d.gas(gateway, router.functions.claim(rows))
        figures["gas_payment_voucher_per_request_batch10"] = ten / (10 * REQUESTS_PER_CLAIM)
        log("payments measured")

        attest_per_item = sum(attest_gas) / 100
        base = (
            figures["gas_register_dataset_batch_per_item"]
            + attest_per_item
            + figures["gas_publish_root"] / 100
        )
        figures["gas_contribution_lifecycle"] = base + figures["gas_claim_first"]
        figures["gas_contribution_lifecycle_owner_batch"] = base + figures["gas_claim_first"] / 100
        figures["gas_tree_leaves"] = float(tree_size)
    return {k: round(float(v), 1) for k, v in sorted(figures.items())}


def run() -> dict[str, float]:
    return measure(log=lambda m: print(f"   {m}", flush=True))


def main(argv: list[str]) -> int:
    figures = run()
    for k, v in figures.items():
        print(f"{k} = {v}")
    if "--write-snapshot" in argv:
        SNAPSHOT.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
