"""Deploy Cairn's contracts, wire their roles and write the deployment file (`cairn deploy`).

Order: RewardToken, RewardDistributor, ContributionRegistry, ModelRegistry, PaymentRouter. The token is
given the distributor's address before the distributor exists (predicted from the deployer's nonce; the
distributor's constructor reverts unless the token names it). Every contract gets the same epoch clock
(genesis, length). No minting role exists: the token mints only for its immutable DISTRIBUTOR (emission goes
through `fundEmission` only, and an epoch's unminted cap expires with the epoch).

On the local chain (31337) the anvil development accounts also get the operational roles, so the demo works
with the default keys (`cairn.core.settings.ANVIL_DEV_KEYS`):

- dev 0 (deployer, default publisher key): DEFAULT_ADMIN of every contract, PAUSER (registry and
  distributor), PUBLISHER and GUARDIAN (RewardDistributor), VALIDATOR, TRAINER, SETTLER and FEE_MANAGER;
- dev 1 (default relayer key): SETTLER (PaymentRouter); relayed registration itself needs no role;
- dev 2: VALIDATOR (ContributionRegistry);  dev 3: TRAINER (ModelRegistry);  dev 4: GUARDIAN.

Elsewhere the deployer keeps DEFAULT_ADMIN_ROLE and grants operational roles explicitly.
Transactions go through the outbox (`backend.outbox`), like every other sender's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import rlp  # type: ignore[import-untyped]
import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_typing import HexStr
from rich.console import Console
from sqlalchemy import Engine
from web3 import Web3
from web3.contract import Contract

from backend.outbox import CONFIRMED, Outbox, memory_engine
from cairn.core.chain import connect
from cairn.core.contracts import CORE_CONTRACTS, load_artifact
from cairn.core.deployment import CompilerInfo, ContractInfo, Deployment, EpochConfig
from cairn.core.errors import CairnError, ConfigError, DeploymentError, MissingKeyError, OutboxError
from cairn.core.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID, PLACEHOLDER_MARKERS, load_settings
from cairn.core.solc_input import build_input, hardhat_compiler, input_hash

DEFAULT_EPOCH_LENGTH = 3600
DEFAULT_TOKEN_NAME = "Cairn"
DEFAULT_TOKEN_SYMBOL = "CAIRN"
DEFAULT_INITIAL_EPOCH_CAP = 10_000 * 10**18
DEFAULT_DECAY_BPS = 50
# The challenge delay (seconds between a root's proposal and its acceptance, during which a guardian or the
# watchtower, `cairn audit --watch`, can revoke it): 10 minutes on the local chain (the demo), one day on any
# other chain, long enough for the watchtower to recompute a root (a minute for 100k contributors, see
# bench `audit_seconds_100k`) and for a human to act when it alerts without a guardian key.
DEFAULT_CHALLENGE_DELAY = 600
DEFAULT_CHALLENGE_DELAY_REAL = 86_400


def default_challenge_delay(chain_id: int) -> int:
    return DEFAULT_CHALLENGE_DELAY if chain_id == LOCAL_CHAIN_ID else DEFAULT_CHALLENGE_DELAY_REAL


DEFAULT_MAX_FEE_BPS = 1_000
DEFAULT_FEE_BPS = 100

# Constructor parameter name (without trailing "_") under which later contracts receive each address.
ADDRESS_PARAMS: dict[str, str] = {
    "RewardToken": "token",
    "ContributionRegistry": "registry",
    "ModelRegistry": "modelRegistry",
    "RewardDistributor": "distributor",
    "PaymentRouter": "router",
}

# role name -> (contract, dev account indices) granted on the local chain only.
DEV_ROLES: dict[str, tuple[str, tuple[int, ...]]] = {
    "VALIDATOR_ROLE": ("ContributionRegistry", (0, 2)),
    "TRAINER_ROLE": ("ModelRegistry", (0, 3)),
    "PUBLISHER_ROLE": ("RewardDistributor", (0,)),
    "GUARDIAN_ROLE": ("RewardDistributor", (0, 4)),
    "PAUSER_ROLE": ("RewardDistributor", (0,)),
    "SETTLER_ROLE": ("PaymentRouter", (0, 1)),
    "FEE_MANAGER_ROLE": ("PaymentRouter", (0,)),
}


def dev_address(index: int) -> str:
    return str(Account.from_key(ANVIL_DEV_KEYS[index]).address)


def create_address(deployer: str, nonce: int) -> str:
    """Where a CREATE from `deployer` with `nonce` deploys: `keccak256(rlp([deployer, nonce]))[12:]`."""
    digest = keccak(rlp.encode([bytes.fromhex(deployer.removeprefix("0x")), nonce]))
    return Web3.to_checksum_address(digest[12:])


class _Sender:
    """Sends the deployment's transactions through the outbox (signed and stored before broadcast, nonces
    shared through its database, fee bumps) and waits for each one it is asked to wait for."""

    def __init__(self, w3: Web3, outbox: Outbox) -> None:
        self.w3 = w3
        self.outbox = outbox
        self.chain_id = outbox.chain_id
        self.nonce = outbox.next_nonce()  # the run's first nonce: names its transactions, predicts addresses
        self.run = f"deploy:{self.chain_id}:{outbox.sender}:{self.nonce}"
        self.pending: list[tuple[str, str]] = []

    def send(self, tx: dict[str, Any], what: str, *, wait: bool = True) -> Any:
        """Enqueue; wait for the receipt unless `wait` is false (then call `wait_pending`)."""
        key = f"{self.run}:{what}"
        try:
            self.outbox.enqueue(
                key, to=tx.get("to"), data=str(tx.get("data") or "0x"), value=int(tx.get("value", 0))
            )
        except CairnError as exc:  # would revert, refused by the node, no nonce
            raise DeploymentError(f"{what}: transaction rejected: {exc}") from None
        if not wait:
            self.pending.append((key, what))
            return None
        return self._receipt(key, what)

    def _receipt(self, key: str, what: str) -> Any:
        try:
            row = self.outbox.wait(key, timeout=120)
        except OutboxError as exc:
            raise DeploymentError(f"{what}: {exc}") from None
        if row.status != CONFIRMED or row.mined_hash is None:
            raise DeploymentError(
                f"{what}: transaction {row.tx_hash} {'reverted' if row.mined_hash else 'was replaced'}"
            )
        return self.w3.eth.get_transaction_receipt(HexStr(row.mined_hash))

    def wait_pending(self) -> None:
        """Wait for every transaction sent with `wait=False` (they are independent, so they share blocks)."""
        pending, self.pending = self.pending, []
        for key, what in pending:
            self._receipt(key, what)

    def deploy(self, name: str, args: Sequence[Any]) -> tuple[Contract, int, str]:
        art = load_artifact(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        try:
            data = factory.constructor(*args).data_in_transaction
        except Exception as exc:
            raise DeploymentError(f"deploying {name}: {type(exc).__name__}: {exc}") from None
        receipt = self.send({"to": None, "data": data}, f"deploying {name}")
        address = receipt["contractAddress"]
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        return self.w3.eth.contract(address=address, abi=art.abi), int(receipt["blockNumber"]), tx_hash

    def call(self, contract: Contract, fn: str, *args: Any, wait: bool = True) -> None:
        what = f"{fn} on {contract.address}"
        try:
            data = contract.encode_abi(fn, args=list(args))
        except Exception as exc:
            raise DeploymentError(f"{what}: {type(exc).__name__}: {exc}") from None
        self.send(
            {"to": contract.address, "data": data}, f"{what} {keccak(data.encode()).hex()[:16]}", wait=wait
        )


def _constructor_args(name: str, values: Mapping[str, Any]) -> list[Any]:
    """Arguments of `name`'s constructor, by parameter name (so the order is taken from the ABI)."""
    abi = load_artifact(name).abi
    inputs: list[dict[str, Any]] = next(
        (item.get("inputs", []) for item in abi if item.get("type") == "constructor"), []
    )
    args = []
    for param in inputs:
        key = str(param["name"]).rstrip("_")
        if key not in values:
            raise DeploymentError(f"{name} constructor has an unknown parameter {param['name']!r}")
        args.append(values[key])
    return args


def _compiler_info() -> CompilerInfo:
    """What built the artifacts being deployed: the compiler, its settings and the standard-JSON input's hash
    (the input `cairn audit` rebuilds from the sources to verify the code on chain)."""
    version, settings = hardhat_compiler()
    return CompilerInfo(version=version, settings=settings, input_hash=input_hash(build_input(settings)))


def _grant(sender: _Sender, contract: Contract, role_name: str, account: str) -> None:
    role = getattr(contract.functions, role_name)().call()
    if not contract.functions.hasRole(role, account).call():
        sender.call(contract, "grantRole", role, account, wait=False)


def deploy_all(
    w3_or_rpc_url: Web3 | str,
    deployer_key: str,
    *,
    epoch_length: int = DEFAULT_EPOCH_LENGTH,
    genesis: int | None = None,
    out: Path | None = None,
    token_name: str = DEFAULT_TOKEN_NAME,
    token_symbol: str = DEFAULT_TOKEN_SYMBOL,
    initial_epoch_cap: int = DEFAULT_INITIAL_EPOCH_CAP,
    decay_bps: int = DEFAULT_DECAY_BPS,
    challenge_delay: int | None = None,
    max_fee_bps: int = DEFAULT_MAX_FEE_BPS,
    fee_bps: int = DEFAULT_FEE_BPS,
    fee_recipient: str | None = None,
    dev_roles: bool | None = None,
    engine: Engine | None = None,
    outbox: Outbox | None = None,
) -> Deployment:
    """Deploy and wire every contract; write the deployment file to `out` if given.

    `genesis` defaults to the latest block's timestamp (epoch 0 starts now). `dev_roles` defaults to
    "chain id is 31337". Transactions go through `outbox` (its key must be `deployer_key`), else through an
    outbox on `engine`, else on a private in-memory database (`backend.outbox.memory_engine`): the deployer
    waits for every transaction before it returns, and a deployment cut short is redone from the start (the
    deployment file is written last), so nothing needs to outlive the run. Pass the stack's engine to share
    nonces with other senders of the same key running at the same time.
    """
    if epoch_length <= 0:
        raise ConfigError(f"epoch length must be positive, got {epoch_length}")
    w3 = connect(w3_or_rpc_url)
    account: LocalAccount = Account.from_key(deployer_key)
    if outbox is None:
        outbox = Outbox(engine if engine is not None else memory_engine(), w3, deployer_key)
    elif outbox.sender != account.address.lower():
        raise ConfigError(f"the outbox sends as {outbox.sender}, not as the deployer {account.address}")
    sender = _Sender(w3, outbox)
    chain_id = sender.chain_id
    if genesis is None:
        genesis = int(w3.eth.get_block("latest")["timestamp"])
    admin = account.address
    values: dict[str, Any] = {
        "name": token_name,
        "symbol": token_symbol,
        "admin": admin,
        "genesis": genesis,
        "epochLength": epoch_length,
        "length": epoch_length,
        "initialEpochCap": initial_epoch_cap,
        "decayBps": decay_bps,
        "challengeDelay": default_challenge_delay(chain_id) if challenge_delay is None else challenge_delay,
        "maxFeeBps": max_fee_bps,
        "feeBps": fee_bps,
        "feeRecipient": fee_recipient or admin,
    }
    for name in CORE_CONTRACTS:
        load_artifact(name)  # fail before sending anything if the build is missing
    names = list(CORE_CONTRACTS)
    # RewardDistributor is deployed with the nonce right after the token's.
    values["distributor"] = create_address(admin, sender.nonce + names.index("RewardDistributor"))

    deployed: dict[str, Contract] = {}
    blocks: dict[str, int] = {}
    txs: dict[str, tuple[str, list[Any]]] = {}
    for name in names:
        args = _constructor_args(name, values)
        contract, block, tx_hash = sender.deploy(name, args)
        deployed[name], blocks[name], txs[name] = contract, block, (tx_hash, args)
        predicted = values.get(ADDRESS_PARAMS[name], contract.address)
        if predicted != contract.address:
            raise DeploymentError(f"{name} deployed at {contract.address}, predicted {predicted}")
        values[ADDRESS_PARAMS[name]] = contract.address

    if dev_roles if dev_roles is not None else chain_id == LOCAL_CHAIN_ID:
        for role_name, (contract_name, indices) in DEV_ROLES.items():
            if contract_name in deployed:
                for i in indices:
                    _grant(sender, deployed[contract_name], role_name, dev_address(i))

    sender.wait_pending()

    deployment = Deployment(
        chain_id=chain_id,
        start_block=min(blocks.values()),
        deployer=admin,
        deployed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        epoch=EpochConfig(genesis=genesis, length=epoch_length),
        contracts={
            name: ContractInfo(
                address=c.address,
                block=blocks[name],
                abi=load_artifact(name).abi,
                tx_hash=txs[name][0],
                constructor_args=txs[name][1],
            )
            for name, c in deployed.items()
        },
        compiler=_compiler_info(),
    )
    if out is not None:
        deployment.save(out)
    return deployment


def resolve_deployer_key(chain_id: int, key_env: str | None) -> str:
    """The deployer key from `$key_env`; anvil dev key 0 on the local chain when none is given."""
    value = os.environ.get(key_env, "").strip() if key_env else ""
    if key_env and not value and chain_id != LOCAL_CHAIN_ID:
        raise MissingKeyError(f"{key_env} is not set; it must hold the deployer key for chain {chain_id}")
    if not value:
        if chain_id == LOCAL_CHAIN_ID:
            return load_settings().signing_key("publisher", chain_id)
        raise ConfigError(
            f"no deployer key: pass --key-env VAR (an environment variable) for chain {chain_id}"
        )
    if chain_id != LOCAL_CHAIN_ID:
        if any(m in value.lower() for m in PLACEHOLDER_MARKERS):
            raise ConfigError(f"{key_env} is a placeholder; set a real key for chain {chain_id}")
        if value.lower() in ANVIL_DEV_KEYS:
            raise ConfigError(f"{key_env} is a public anvil development key; refused on chain {chain_id}")
    return value


def deploy_command(
    rpc_url: Annotated[
        str | None, typer.Option("--rpc-url", help="JSON-RPC URL (default CAIRN_RPC_URLS)")
    ] = None,
    key_env: Annotated[
        str | None, typer.Option("--key-env", help="Environment variable holding the deployer key")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--deployment", help="Deployment file to write (CAIRN_DEPLOYMENT_FILE)")
    ] = None,
    epoch_length: Annotated[int, typer.Option("--epoch-length", help="Epoch length in seconds")] = (
        DEFAULT_EPOCH_LENGTH
    ),
    genesis: Annotated[
        int | None, typer.Option("--genesis", help="Epoch 0 start (unix s; default now)")
    ] = None,
    challenge_delay: Annotated[
        int | None,
        typer.Option("--challenge-delay", help="Seconds a root stays revocable (600 local, 86400 else)"),
    ] = None,
) -> None:
    """Deploy the contracts, grant roles and write the deployment file."""
    settings = load_settings()
    url = rpc_url or settings.rpc_urls[0]
    w3 = connect(url)
    key = resolve_deployer_key(w3.eth.chain_id, key_env)
    path = out or settings.deployment_file
    deployment = deploy_all(
        w3, key, epoch_length=epoch_length, genesis=genesis, out=path, challenge_delay=challenge_delay
    )
    console = Console()
    for name, info in deployment.contracts.items():
        console.print(f"{name:22} {info.address}  block {info.block}")
    console.print(f"chain {deployment.chain_id}, start block {deployment.start_block} -> {path}")


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_command)
