"""A real channel world for the batch-settlement tests and benches: anvil, every contract (cairn.cli.deploy),
the API's database with both migrations, the indexer's mirror, the embedded model trained (`train`, as
`cairn train` does) on a demo corpus, the gateway's `BatchSettlementScheme` and the claimer on the real
outbox, and agents with funded channels opened on chain by the client plugin. `GatewayProcess` serves the
real API (`backend.api.app:create_app`) on the world's database: agents pay its
`POST /v1/chat/completions`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine
from web3 import Web3
from x402 import x402Client

from backend.api.app import run_migrations
from backend.api.settings import ApiSettings
from backend.api.x402.channel import BatchSettlementScheme
from backend.api.x402.claimer import ChannelClaimer
from backend.api.x402.scheme import Charge
from backend.inference.training import DEFAULT_MODEL_NAME, model_id_of, train
from backend.outbox import Outbox
from cairn.agent.channel_client import ZERO_SALT, CairnChannelScheme, deposit
from cairn.cli.devchain import Anvil, mint_test_tokens
from cairn.core.channel import ChannelConfig
from cairn.core.content import ContentStore, content_hash
from cairn.core.db import make_engine
from cairn.core.deployment import Deployment
from cairn.core.policy import load_policy
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS
from cairn.demo import corpus_files
from support.api_stack import Stack, deploy_on, index_to

PRICE = 10**15  # 0.001 token per request
MODEL_NAME = DEFAULT_MODEL_NAME  # the model `build_world` trains; the real route charges its id
MODEL = model_id_of(MODEL_NAME)
QUESTION = "How do bees make honey?"
CHAT = {"model": MODEL_NAME, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8}


@dataclass
class Agent:
    account: LocalAccount
    plugin: CairnChannelScheme
    config: ChannelConfig
    channel_id: str


@dataclass
class ChannelWorld:
    anvil: Anvil
    w3: Web3
    deployment: Deployment
    admin: LocalAccount
    settler: LocalAccount  # dev 1: SETTLER_ROLE, the channels' receiver authorizer
    engine: Engine
    db_url: str
    settings: ApiSettings
    scheme: BatchSettlementScheme
    agents: list[Agent] = field(default_factory=list)

    @property
    def router(self) -> Any:
        return self.deployment.contract(self.w3, "PaymentRouter")

    @property
    def token(self) -> Any:
        return self.deployment.contract(self.w3, "RewardToken")

    def charge(self, price: int = PRICE, model: str = MODEL) -> Charge:
        return Charge(amount=price, resource="http://127.0.0.1/paid", model_id=model)

    def requirement(self, price: int = PRICE) -> dict[str, Any]:
        return self.scheme.requirement(self.charge(price))

    def index(self) -> None:
        index_to(self.settings, self.deployment, self.engine, int(self.w3.eth.block_number))

    def claimer(self, **kwargs: Any) -> ChannelClaimer:
        outbox = Outbox(self.engine, self.w3, self.settler.key.hex())
        return ChannelClaimer(engine=self.engine, outbox=outbox, router=self.router, **kwargs)

    def pay(self, agent: Agent, price: int = PRICE, model: str = MODEL, *, served: bool = True) -> Any:
        """One request paid through the scheme directly (no HTTP): the plugin signs, the gateway accepts and,
        `served`, marks it served as the gateway does once the route has produced its response (otherwise
        it stays in flight: void or serve it later)."""
        requirement = self.requirement(price)
        payload = {
            "x402Version": 2,
            "accepted": requirement,
            "payload": agent.plugin.create_payment_payload(requirement),
        }
        accepted = self.scheme.accept(payload, requirement, self.charge(price, model))
        agent.plugin.record(self.scheme.response(accepted)["extra"]["channelState"])
        if served:
            self.scheme.served(accepted)
        return accepted

    def open_channel(self, account: LocalAccount, amount: int, *, salt: str = ZERO_SALT) -> Agent:
        """Test tokens for `account`, then the plugin's on-chain deposit into its channel."""
        self.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]
        mint_test_tokens(self.w3, self.deployment, account.address, amount)
        plugin = CairnChannelScheme(account, salt=salt)
        requirement = self.requirement()
        config = plugin.channel_config(requirement)
        deposit(self.w3, account, config, amount)
        agent = Agent(account, plugin, config, plugin.channel_id(requirement))
        self.agents.append(agent)
        return agent


def build_world(anvil: Anvil, tmp: Path, db_url: str | None = None) -> ChannelWorld:
    w3, admin, dep = deploy_on(anvil, tmp)
    url = db_url or f"sqlite:///{tmp}/channels.db"
    engine = make_engine(url)
    run_migrations(engine, dep)
    settings = ApiSettings(
        rpc_urls=[anvil.url], database_url=url, deployment_file=tmp / "deployment.json",
        data_dir=tmp / "data", confirmations=0,
    )  # fmt: skip
    settler = Account.from_key(ANVIL_DEV_KEYS[1])
    _train(Stack(anvil, w3, dep, settings, tmp, admin, [], [], admin), engine)
    token = dep.contract(w3, "RewardToken")
    scheme = BatchSettlementScheme(
        engine=engine,
        chain_id=dep.chain_id,
        router=dep.address("PaymentRouter"),
        token=token.address,
        receiver_authorizer=settler.address,
        token_name=str(token.functions.name().call()),
    )
    return ChannelWorld(anvil, w3, dep, admin, settler, engine, url, settings, scheme)


def _train(stack: Stack, engine: Engine) -> None:
    """One demo corpus registered by dev account 5, attested by three validators (the v1 quorum), stored,
    indexed, and the embedded model trained on it with its manifest registered (the trainer, dev key 3)."""
    registry = stack.contract("ContributionRegistry")
    third = Account.from_key(ANVIL_DEV_KEYS[4])
    stack.transact(stack.admin, registry.functions.grantRole(registry.functions.VALIDATOR_ROLE().call(),
                                                             third.address))  # fmt: skip
    path = next(f for f in corpus_files() if f.name == "beekeeping.txt")
    data = path.read_bytes()
    digest = content_hash(data)
    owner = Account.from_key(ANVIL_DEV_KEYS[5])
    for step in dataset_calls(registry, owner.address, digest, len(data), 1, b"\x01" * 32, "file://bees"):
        stack.transact(owner, step)
    for key, score in ((0, 9000), (2, 8000), (4, 7000)):
        stack.transact(Account.from_key(ANVIL_DEV_KEYS[key]), registry.functions.attest(digest, score))
    cfg = stack.settings
    store = ContentStore(cfg.content_dir, max_bytes=cfg.content_max_bytes)
    store.put_file(digest, path)
    index_to(cfg, stack.deployment, engine, int(stack.w3.eth.block_number))
    train(engine=engine, w3=stack.w3, deployment=stack.deployment, policy=load_policy("v1"), store=store,
          trainer_key=ANVIL_DEV_KEYS[3], name=MODEL_NAME)  # fmt: skip


def agent_key(i: int) -> LocalAccount:
    return Account.from_key(Web3.keccak(text=f"cairn-channel-agent-{i}"))


class GatewayProcess:
    """The real API (`cairn api --workers N`, every middleware, the x402 gateway with
    both schemes) in its own process(es) on the world's database, `POST /v1/chat/completions` of the trained
    model priced `price`. The world's test process indexes and claims, so the API's own indexer, settler and
    claimer are off (CAIRN_API_RUN_INDEXER / ..._SETTLE_IN_API / ..._CLAIM_IN_API), and so are the
    per-client rate limits (every agent here is one loopback client)."""

    def __init__(
        self, world: ChannelWorld, tmp: Path, name: str, *, price: int = PRICE, workers: int = 1
    ) -> None:
        import json
        import os
        import subprocess
        import sys

        from cairn.cli.devchain import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1/chat/completions"
        self.log = tmp / f"{name}.log"
        repo = Path(__file__).resolve().parents[2]
        path = os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env.update(
            PYTHONPATH=path, CAIRN_RPC_URLS=world.anvil.url, CAIRN_DATABASE_URL=world.db_url,
            CAIRN_DEPLOYMENT_FILE=str(world.settings.deployment_file),
            CAIRN_DATA_DIR=str(world.settings.data_dir),
            CAIRN_CONFIRMATIONS="0", CAIRN_API_PRICES=json.dumps({MODEL_NAME: str(price)}),
            CAIRN_API_RUN_INDEXER="false", CAIRN_API_MIGRATE="false", CAIRN_API_X402_SETTLE_IN_API="false",
            CAIRN_API_CHANNEL_CLAIM_IN_API="false", CAIRN_API_RATE_CLIENT_BURST="1000000000",
            CAIRN_API_RATE_CLIENT_PER_MINUTE="1000000000", CAIRN_LOG_LEVEL="WARNING",
        )  # fmt: skip
        args = [sys.executable, "-m", "cairn.cli", "api", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(workers)]  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self, timeout: float = 60.0) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(self.log.read_text())
            try:
                if httpx.post(self.url, json=CHAT, timeout=5).status_code == 402:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway did not start: {self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def official_client(world: ChannelWorld, plugin: object) -> x402Client:
    """The official `x402Client` with `plugin` (our batch-settlement scheme) registered for the world's
    chain and spend controls that allow the RewardToken up to 10 prices a payment (client configuration)."""
    client = x402Client()
    client.register(f"eip155:{world.deployment.chain_id}", plugin)  # type: ignore[arg-type]
    client.set_spend_controls({"allowed_assets": [{
        "network": f"eip155:{world.deployment.chain_id}", "asset": world.token.address,
        "max_amount_per_payment": str(10 * PRICE),
    }]})  # fmt: skip
    return client
