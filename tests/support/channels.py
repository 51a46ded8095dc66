"""A real channel world for the batch-settlement tests and benches: anvil, every contract (cairn.cli.deploy),
the API's database with both migrations, the indexer's mirror, the gateway's `BatchSettlementScheme` and the
claimer on the real outbox, and agents with funded channels opened on chain by the client plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine
from web3 import Web3

from backend.api.app import run_migrations
from backend.api.settings import ApiSettings
from backend.api.x402.channel import BatchSettlementScheme
from backend.api.x402.claimer import ChannelClaimer
from backend.api.x402.scheme import Charge
from backend.outbox import Outbox
from cairn.agent.channel_client import ZERO_SALT, CairnChannelScheme, deposit
from cairn.cli.devchain import Anvil, mint_test_tokens
from cairn.core.channel import ChannelConfig
from cairn.core.db import make_engine
from cairn.core.deployment import Deployment
from cairn.core.settings import ANVIL_DEV_KEYS
from support.api_stack import deploy_on, index_to

PRICE = 10**15  # 0.001 token per request
MODEL = "0x" + "ab" * 32


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

    def pay(self, agent: Agent, price: int = PRICE, model: str = MODEL) -> Any:
        """One request paid through the scheme directly (no HTTP): the plugin signs, the gateway accepts."""
        requirement = self.requirement(price)
        payload = {
            "x402Version": 2,
            "accepted": requirement,
            "payload": agent.plugin.create_payment_payload(requirement),
        }
        accepted = self.scheme.accept(payload, requirement, self.charge(price, model))
        agent.plugin.record(self.scheme.response(accepted)["extra"]["channelState"])
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


def agent_key(i: int) -> LocalAccount:
    return Account.from_key(Web3.keccak(text=f"cairn-channel-agent-{i}"))


class GatewayProcess:
    """The test gateway (support.channel_gateway) in its own uvicorn process on the world's database."""

    def __init__(
        self, world: ChannelWorld, tmp: Path, name: str, *, price: int = PRICE, workers: int = 1
    ) -> None:
        import os
        import subprocess
        import sys

        from cairn.cli.devchain import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/paid"
        self.log = tmp / f"{name}.log"
        repo = Path(__file__).resolve().parents[2]
        path = os.pathsep.join([str(repo), str(repo / "tests"), os.environ.get("PYTHONPATH", "")])
        env = dict(
            os.environ, PYTHONPATH=path, CHANNEL_GW_DB=world.db_url,
            CHANNEL_GW_DEPLOYMENT=str(tmp / "deployment.json"), CHANNEL_GW_AUTHORIZER=world.settler.address,
            CHANNEL_GW_PRICE=str(price), CHANNEL_GW_MODEL=MODEL, CHANNEL_GW_RPC=world.anvil.url,
        )  # fmt: skip
        args = [sys.executable, "-m", "uvicorn", "--factory", "support.channel_gateway:app_from_env",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", "--no-access-log",
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
                if httpx.get(self.url, timeout=2).status_code == 402:
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
