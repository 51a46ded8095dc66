"""A real stack for the API tests: anvil, deployed contracts, seeded events, the real indexer's mirror in
SQLite or PostgreSQL, and the app under FastAPI's TestClient. The `stack` and `sqlite_stack` fixtures
(tests/conftest.py) build it; the helpers here drive it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from backend.rewards.publication import build_publication, write_allocation_file
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil, mint_test_tokens, start_anvil
from cairn.core import merkle
from cairn.core.deployment import Deployment
from cairn.core.eip712 import transfer_authorization_typed_data
from cairn.core.policy import Policy, load_policy, parse_policy
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS, Settings
from indexer.core import Indexer, IndexerOptions
from support.pg import create_database, drop_database, require_postgres

EPOCH_LENGTH = 3600
CHALLENGE_DELAY = 600
EMISSION_CAP = 10**24
FEE_BPS = 250
PAYMENT = 10**20
PROBLEM = "application/problem+json"


@dataclass
class Stack:
    anvil: Anvil
    w3: Web3
    deployment: Deployment
    settings: ApiSettings
    tmp: Path
    admin: LocalAccount
    validators: list[LocalAccount]
    owners: list[LocalAccount]
    payer: LocalAccount
    client: TestClient | None = None
    seeded: dict[str, Any] = field(default_factory=dict)

    def contract(self, name: str) -> Any:
        return self.deployment.contract(self.w3, name)

    def transact(self, account: LocalAccount, fn: Any) -> dict[str, Any]:
        tx = fn.build_transaction(
            {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                # "pending": a reveal needs its commit mined
                "gas": fn.estimate_gas({"from": account.address}, "pending"),
            }
        )
        signed = account.sign_transaction(tx)
        h = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = dict(self.w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.02))
        assert receipt["status"] == 1, receipt
        return receipt

    def index(self) -> None:
        """Run the real indexer's catch-up once (to the chain head)."""
        idx = Indexer(
            self.settings, self.deployment, options=IndexerOptions(poll_interval=0.02, confirmations=0)
        )
        try:
            idx.run_once()
        finally:
            idx.close()
            idx.engine.dispose()

    @property
    def api(self) -> TestClient:
        assert self.client is not None
        return self.client


def index_to(settings: Settings, deployment: Deployment, engine: Engine, block: int) -> None:
    """Run the real indexer (0 confirmations) on `engine` until its cursor reaches `block`."""
    idx = Indexer(
        settings, deployment, engine=engine, options=IndexerOptions(finality="confirmations", confirmations=0)
    )
    for _ in range(50):
        idx.run_once()
        with engine.connect() as conn:
            cur = conn.execute(text("SELECT MAX(block_number) FROM indexer_cursor")).scalar()
        if cur is not None and int(cur) >= block:
            return
    raise AssertionError(f"the indexer did not reach block {block}")


def deploy(w3: Web3, admin: LocalAccount, tmp: Path) -> Deployment:
    """Every contract through `cairn.cli.deploy`, epoch 0 starting now; the deployment file under `tmp`."""
    return deploy_all(
        w3,
        admin.key.hex(),
        epoch_length=EPOCH_LENGTH,
        out=tmp / "deployment.json",
        initial_epoch_cap=EMISSION_CAP,
        challenge_delay=CHALLENGE_DELAY,
        fee_bps=FEE_BPS,
    )


def deploy_on(anvil: Anvil, tmp: Path) -> tuple[Web3, LocalAccount, Deployment]:
    """`deploy` on `anvil` by account 0 (the admin): (web3, admin, deployment), nothing seeded."""
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    admin = Account.from_key(ANVIL_DEV_KEYS[0])
    return w3, admin, deploy(w3, admin, tmp)


def h32(label: str) -> str:
    return "0x" + Web3.keccak(text=label).hex().removeprefix("0x")


def seed(stack: Stack) -> None:
    """Datasets (direct), a compute job, attestations and a model manifest."""
    registry = stack.contract("ContributionRegistry")
    models = stack.contract("ModelRegistry")
    admin = stack.admin
    datasets = []
    for i, owner in enumerate([stack.owners[0], stack.owners[0], stack.owners[1]]):
        ch = h32(f"dataset-{i}")
        for step in dataset_calls(registry, owner.address, ch, 1000 + i, 1, h32(f"meta-{i}"), f"ipfs://d{i}"):
            stack.transact(owner, step)
        datasets.append(ch)
    stack.transact(
        stack.owners[1], registry.functions.registerCompute(h32("job-0"), 77, h32("model-a"), h32("res"))
    )
    compute_id = (
        "0x" + bytes(registry.functions.computeId(stack.owners[1].address, h32("job-0")).call()).hex()
    )
    role = registry.functions.VALIDATOR_ROLE().call()
    for v in stack.validators:
        stack.transact(admin, registry.functions.grantRole(role, v.address))
    stack.transact(stack.validators[0], registry.functions.attest(datasets[0], 8000))
    stack.transact(stack.validators[1], registry.functions.attest(datasets[0], 6000))
    stack.transact(stack.validators[0], registry.functions.attest(datasets[0], 9000))  # replaces 8000
    stack.transact(stack.validators[0], registry.functions.attest(compute_id, 5000))
    stack.transact(stack.owners[0], registry.functions.withdraw(datasets[1]))
    trainer_role = models.functions.TRAINER_ROLE().call()
    stack.transact(admin, models.functions.grantRole(trainer_role, admin.address))
    ids = sorted([datasets[0], datasets[2]])
    stack.transact(admin, models.functions.registerManifest(h32("model-a"), ids, [3, 1]))
    stack.transact(admin, models.functions.registerManifest(h32("model-a"), ids, [1, 1]))
    stack.seeded.update(datasets=datasets, compute_id=compute_id, model_id=h32("model-a"), manifest_ids=ids)


def travel_to(stack: Stack, timestamp: int) -> None:
    """Mine the next block at `timestamp` (anvil), so epochs end and challenge delays pass for real."""
    stack.anvil.rpc("evm_setNextBlockTimestamp", [timestamp])
    stack.anvil.rpc("evm_mine")


def write_allocation(
    stack: Stack, epoch: int, previous: dict[str, int], amounts: dict[str, int], policy: Policy | None = None
) -> tuple[merkle.MerkleTree, str]:
    """The rewards engine's content-addressed allocation file for these amounts; returns (tree, uri)."""
    publication = build_publication(
        epoch=epoch,
        end_block=int(stack.w3.eth.block_number),
        chain_id=31337,
        distributor=stack.deployment.address("RewardDistributor"),
        policy=policy or load_policy("v1"),
        previous=previous,
        epoch_amounts=amounts,
    )
    _, uri = write_allocation_file(stack.settings.data_dir, publication.to_bytes())
    return publication.tree, uri


def seed_rewards(stack: Stack) -> None:
    """A paid inference, epoch funding, a root accepted and claimed (epoch 0), then for epoch 1 a root
    revoked by the guardian and a pending one."""
    admin, payer = stack.admin, stack.payer
    token, router = stack.contract("RewardToken"), stack.contract("PaymentRouter")
    dist = stack.contract("RewardDistributor")
    mint_test_tokens(stack.w3, stack.deployment, payer.address, 10 * PAYMENT)
    stack.transact(admin, router.functions.grantRole(router.functions.SETTLER_ROLE().call(), admin.address))
    nonce = h32("payment-1")
    typed = transfer_authorization_typed_data(
        token_name="Cairn",
        chain_id=31337,
        verifying_contract=token.address,
        from_=payer.address,
        to=router.address,
        value=PAYMENT,
        valid_after=0,
        valid_before=2**40,
        nonce=nonce,
    )
    sig = Account.sign_typed_data(payer.key, full_message=typed)
    payment = (
        payer.address,
        PAYMENT,
        0,
        2**40,
        nonce,
        sig.v,
        sig.r.to_bytes(32, "big"),
        sig.s.to_bytes(32, "big"),
    )
    stack.transact(admin, router.functions.settleExact(payment, stack.seeded["model_id"]))
    stack.transact(admin, dist.functions.fundEmission(0))
    genesis = stack.deployment.epoch.genesis
    travel_to(stack, genesis + EPOCH_LENGTH + 1)
    for role in ("PUBLISHER_ROLE", "GUARDIAN_ROLE"):
        stack.transact(admin, dist.functions.grantRole(getattr(dist.functions, role)().call(), admin.address))
    policy_hash = load_policy("v1").content_hash()
    o0, o1 = stack.owners[0].address, stack.owners[1].address
    first = {o0.lower(): 3 * 10**18, o1.lower(): 10**18}
    tree0, uri0 = write_allocation(stack, 0, {}, first)
    stack.transact(admin, dist.functions.proposeRoot(tree0.root, 0, policy_hash, 4 * 10**18, uri0))
    now = int(stack.w3.eth.get_block("latest")["timestamp"])
    travel_to(stack, now + CHALLENGE_DELAY + 1)
    stack.transact(admin, dist.functions.acceptRoot())
    amount, proof = tree0.proof_for(o0)
    stack.transact(stack.owners[0], dist.functions.claim(amount, proof))
    travel_to(stack, genesis + 2 * EPOCH_LENGTH + 1)
    # the revoked root was computed under a policy that exists nowhere but in its allocation file
    custom = parse_policy({**load_policy("v1").model_dump(mode="json"), "account_cap_bps": 9000})
    bad, bad_uri = write_allocation(stack, 1, first, {o0.lower(): 6 * 10**18}, custom)
    stack.transact(
        admin, dist.functions.proposeRoot(bad.root, 1, custom.content_hash(), 10 * 10**18, bad_uri)
    )
    stack.transact(admin, dist.functions.revokeRoot())
    tree1, uri1 = write_allocation(stack, 1, first, {o0.lower(): 2 * 10**18})
    stack.transact(admin, dist.functions.proposeRoot(tree1.root, 1, policy_hash, 6 * 10**18, uri1))
    stack.seeded.update(
        policy_hash=policy_hash,
        custom_policy_hash=custom.content_hash(),
        tree0=tree0,
        uri0=uri0,
        tree1=tree1,
        uri1=uri1,
        revoked_root=bad.root,
    )


def build_stack(tmp: Path, database: str, *, rewards: bool = True) -> Iterator[Stack]:
    """Anvil, every contract, the seeded events and rewards, the mirror indexed to the head, the app under a
    TestClient; `database` is "sqlite" or "postgres" (skipped without a server, failed under CI=true).
    `rewards=False`: no roots on chain; epoch 0 funded and ended instead, for the operator endpoints to close,
    publish, finalize and pay out themselves."""
    if database != "sqlite":
        require_postgres()
    db_url = f"sqlite:///{tmp}/api.db" if database == "sqlite" else create_database("cairn_api")
    try:
        with start_anvil() as anvil:
            w3 = Web3(Web3.HTTPProvider(anvil.url))
            admin = Account.from_key(ANVIL_DEV_KEYS[0])
            validators = [Account.from_key(k) for k in ANVIL_DEV_KEYS[2:4]]
            owners = [Account.from_key(k) for k in ANVIL_DEV_KEYS[4:6]]
            payer = Account.from_key(ANVIL_DEV_KEYS[6])
            dep = deploy(w3, admin, tmp)
            settings = ApiSettings(
                rpc_urls=[anvil.url],
                database_url=db_url,
                deployment_file=tmp / "deployment.json",
                data_dir=tmp / "data",
                confirmations=0,
                api_siwe_origins="http://testserver",  # TestClient's origin (tests/support/siwe.py)
                # thousands of requests from one test client (the fuzz): limits far above them
                api_rate_client_burst=1_000_000,
                api_rate_account_burst=1_000_000,
                api_head_max_age_s=0,  # tests move the clock between requests
            )
            stack = Stack(anvil, w3, dep, settings, tmp, admin, validators, owners, payer)
            seed(stack)
            if rewards:
                seed_rewards(stack)
            else:
                stack.transact(admin, stack.contract("RewardDistributor").functions.fundEmission(0))
                travel_to(stack, dep.epoch.genesis + EPOCH_LENGTH + 1)
            stack.index()
            with TestClient(create_app(settings)) as client:
                stack.client = client
                yield stack
    finally:
        if database != "sqlite":
            drop_database(db_url)


_SHARED: dict[str, Stack] = {}


def shared_stack(request: pytest.FixtureRequest, kind: str) -> Stack:
    """One seeded, indexed, read-only stack per database kind for the whole session (built on first use,
    torn down when the session ends): the read, rewards and dashboard tests only read from it."""
    if kind not in _SHARED:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        gen = build_stack(factory.mktemp(f"api-{kind}"), kind)
        _SHARED[kind] = next(gen)

        def close() -> None:
            _SHARED.pop(kind, None)
            with contextlib.suppress(StopIteration):
                next(gen)

        request.config.add_cleanup(close)
    return _SHARED[kind]


def assert_problem(resp: Any, status: int, code: str, *needles: str) -> dict[str, Any]:
    """An RFC 9457 problem with the given status and code whose detail contains every needle."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    body = dict(resp.json())
    assert body["status"] == status and body["code"] == code, body
    assert body["type"].endswith(code) and body["title"], body
    for needle in needles:
        assert needle in body["detail"], (needle, body["detail"])
    return body


def sign_registration(owner: LocalAccount, typed: dict[str, Any]) -> dict[str, Any]:
    """The POST /v1/datasets body for the API's register-dataset typed data, signed by `owner`."""
    sig = Account.sign_typed_data(owner.key, full_message=typed).signature
    ds = typed["message"]["dataset"]
    return {
        "content_hash": ds["contentHash"],
        "size": ds["size"],
        "license_id": ds["licenseId"],
        "metadata_hash": ds["metadataHash"],
        "uri": ds["uri"],
        "owner": owner.address,
        "deadline": typed["message"]["deadline"],
        "signature": "0x" + bytes(sig).hex(),
    }


def signed_body(stack: Stack, owner: LocalAccount, label: str, **overrides: Any) -> dict[str, Any]:
    """Ask the API for the typed data, sign it as `owner`, and build the POST body."""
    params = {
        "owner": owner.address,
        "content_hash": h32(label),
        "size": 4096,
        "license_id": 2,
        "uri": f"ar://{label}",
    }
    params.update(overrides)
    return sign_registration(owner, stack.api.get("/v1/eip712/register-dataset", params=params).json())


def relayer_nonce(stack: Stack) -> int:
    return int(stack.w3.eth.get_transaction_count(stack.w3.eth.accounts[1]))


def local_settings(anvil: Anvil, tmp_path: Path, name: str) -> ApiSettings:
    """API settings on the local chain with a SQLite database of its own (`<tmp_path>/<name>.db`)."""
    return ApiSettings(
        rpc_urls=[anvil.url],
        database_url=f"sqlite:///{tmp_path}/{name}.db",
        deployment_file=tmp_path / "deployment.json",
    )
