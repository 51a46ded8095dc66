"""A chain driver for the gas scenarios: every contract deployed by `cairn.cli.deploy.deploy_all` (the
deployer `cairn deploy` uses) on a fresh anvil, then locally signed transactions from several keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil
from cairn.core.deployment import Deployment
from cairn.core.merkle import MerkleTree
from cairn.core.settings import ANVIL_DEV_KEYS

EPOCH_LENGTH = 3600
CHALLENGE_DELAY = 600


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
        # estimated for the next block ("pending"): a reveal needs its commitment at least a block old
        gas = int(fn.estimate_gas({"from": acct.address}, "pending")) * 2
        tx = fn.build_transaction(
            {"from": acct.address, "nonce": nonce, "chainId": self.w3.eth.chain_id, "gas": gas}
        )
        signed = acct.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.nonces[acct.address] = nonce + 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.02)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def gas(self, key: str, fn: Any) -> int:
        """The receipt's `gasUsed` of one transaction."""
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


def leaves_for(claimers: Sequence[str], size: int, bump: int, price: int) -> list[tuple[str, int]]:
    """`size` leaves: the claimers first, then deterministic pseudo-accounts; amounts grow with `bump`."""
    out = [(a, price * (i + 1) + bump) for i, a in enumerate(claimers)]
    for i in range(len(claimers), size):
        addr = "0x" + keccak(b"leaf" + i.to_bytes(4, "big"))[12:].hex()
        out.append((addr, 10**12 + i + bump))
    return out


def claim_proof(tree: MerkleTree, account: str) -> tuple[int, list[bytes]]:
    idx = tree.index_of(account)
    return tree.values[idx][1], tree.proof_bytes(idx)
