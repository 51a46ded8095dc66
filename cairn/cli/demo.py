"""`cairn demo`: play the whole Cairn loop once on the local chain, through the running API and contracts.

1. an AI agent gets test tokens from epoch 0's capped emission (unless it still holds some from an earlier
   run), and the distributor is funded with the rest (`EpochLifecycle.fund`, what the keeper does);
2. contributors register the text corpora the repository ships (cairn/demo/corpora) by their SHA-256 and
   upload them to the API's content store: A gaslessly through the API relayer (EIP-712, `cairn data add`'s
   client), B directly; a compute provider registers a training job;
3. three validators attest (the policy's quorum is 3); the trainer trains the embedded model on the corpora's
   stored content and registers its manifest, weights = each corpus's share of the training tokens
   (`cairn train`, backend.inference.training);
4. the agent asks the model a question over HTTP (`POST /v1/chat/completions`) and pays its 402 with the
   official x402 client (`cairn.cli.x402_pay.pay_once`); the API's settler settles it (settleExactBatch
   through the outbox) and the indexer mirrors it as the model's revenue;
5. the chain moves past the epoch's end; the rewards engine closes the epoch from the indexer's mirror,
   prints the epoch's revenue (`GET /v1/epochs/{n}/revenue`) and what each contributor was paid for the
   agent's question (the revenue's contributors share over the manifest's weights x median scores), proposes
   the Merkle root, waits the challenge delay and accepts it;
6. contributor A claims with the proof served by the API; everyone else is paid by push payouts
   (`claimForBatch` through the outbox, as `cairn epoch payout` does).

Only for the local chain (31337): it uses the public anvil development keys and moves the chain's clock.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_hash.auto import keccak
from rich.console import Console
from sqlalchemy import Engine
from web3 import Web3

from backend.inference.training import DEFAULT_MODEL_NAME, TrainReport, mirror_block, model_id_of, train
from backend.outbox import CONFIRMED, Outbox
from backend.rewards.publication import read_allocation_file
from cairn.cli.data import DataClient
from cairn.cli.devchain import mint_test_tokens, rpc_call
from cairn.cli.x402_pay import pay_once
from cairn.core.content import ContentStore, hash_file
from cairn.core.db import make_engine
from cairn.core.deployment import Deployment
from cairn.core.errors import CairnError, ConfigError, InvalidInputError, OutboxRevertError
from cairn.core.policy import load_policy
from cairn.core.registration import compute_id, dataset_list_calls
from cairn.core.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID, Settings
from cairn.demo import corpus_files

out = Console()
ADMIN, RELAYER, VALIDATOR_2, TRAINER, VALIDATOR_3 = (ANVIL_DEV_KEYS[i] for i in range(5))
CONTRIBUTOR_A, CONTRIBUTOR_B, PROVIDER, AGENT = (ANVIL_DEV_KEYS[i] for i in (5, 6, 7, 8))
MODEL_ID = model_id_of(DEFAULT_MODEL_NAME)  # keccak256("cairn-demo-model-v1")
PRICE = 5 * 10**18  # one inference request, in token wei
WAIT_S = 60.0
QUESTION = "How do bees make honey from nectar?"


def _h(text: str) -> bytes:
    return keccak(text.encode())


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            reply: dict[str, Any] = json.loads(resp.read())
            return reply
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise CairnError(f"{method} {url} answered {exc.code}: {detail}") from None


@dataclass(frozen=True)
class Corpus:
    """One shipped corpus file and what its registration says."""

    path: Path
    digest: bytes  # SHA-256 of the file: the dataset's content hash
    size: int
    uri: str  # where the API's content store serves it
    metadata: str  # keccak256 of the file name

    @classmethod
    def of(cls, path: Path, api: str) -> Corpus:
        digest, size = hash_file(path)
        meta = "0x" + _h(f"cairn-demo-corpus:{path.name}").hex()
        return cls(path, digest, size, f"{api}/v1/content/0x{digest.hex()}", meta)

    def as_input(self) -> tuple[bytes, int, int, bytes, str]:
        """The registry's `DatasetInput` tuple."""
        return (self.digest, self.size, 2, bytes.fromhex(self.metadata[2:]), self.uri)


class Senders:
    """The demo's transactions, each key through its own outbox on one database (the stack's, so the
    relayer and publisher keys share their nonces with the API and the rewards engine)."""

    def __init__(self, w3: Web3, engine: Engine) -> None:
        self.w3 = w3
        self.engine = engine
        self.run = f"demo:{time.time_ns()}"
        self.count = 0
        self._boxes: dict[str, Outbox] = {}

    def send(self, key: str, fn: Any) -> None:
        box = self._boxes.get(key)
        if box is None:
            box = self._boxes[key] = Outbox(self.engine, self.w3, key)
        self.count += 1
        name = f"{self.run}:{self.count}:{fn.fn_name}"
        try:
            box.enqueue(name, to=fn.address, data=fn._encode_transaction_data())
            row = box.wait(name, timeout=WAIT_S)
        except OutboxRevertError as exc:  # the node's gas estimate reverted: say which call, in one line
            raise CairnError(f"demo transaction {fn.fn_name} would revert: {exc}") from None
        if row.status != CONFIRMED:
            raise CairnError(f"demo transaction {fn.fn_name} reverted")


def give_agent_test_tokens(w3: Web3, dep: Deployment, senders: Senders | None = None) -> bool:
    """Local chain only: mint the demo agent ten requests' worth of tokens from the current epoch's emission
    cap, unless it holds enough already. `cairn dev` calls it on a fresh chain before the keeper moves the
    rest of the cap into the pool (so `cairn dev --no-demo`, then `cairn demo`, works). True if minted.

    Without `senders`, the transactions go through an outbox on a private in-memory database (nothing else
    sends with the admin key at that point of `cairn dev`)."""
    if dep.chain_id != LOCAL_CHAIN_ID:
        raise ConfigError(f"test tokens exist only on the local chain {LOCAL_CHAIN_ID}, not {dep.chain_id}")
    token = dep.contract(w3, "RewardToken")
    agent = Account.from_key(AGENT).address
    if int(token.functions.balanceOf(agent).call()) >= PRICE:
        return False
    epoch = dep.epoch.epoch_at(int(w3.eth.get_block("latest")["timestamp"]))
    left = int(token.functions.emissionCap(epoch).call()) - int(token.functions.mintedInEpoch(epoch).call())
    if left < 10 * PRICE:
        raise CairnError(
            f"the demo agent has no test tokens and epoch {epoch}'s emission is already in the reward pool "
            "(the keeper funds each epoch as it starts): replay on a fresh chain (cairn dev --reset)"
        )
    # Only the distributor mints (no role can be granted): on the local chain, as the distributor.
    mint_test_tokens(w3, dep, agent, 10 * PRICE)
    return True


class Demo:
    def __init__(self, settings: Settings, deployment: Deployment, api_url: str) -> None:
        if deployment.chain_id != LOCAL_CHAIN_ID:
            raise ConfigError(
                f"the demo runs only on the local chain {LOCAL_CHAIN_ID}, not {deployment.chain_id}"
            )
        self.settings = settings
        self.dep = deployment
        self.api = api_url
        self.rpc = settings.rpc_urls[0]
        self.w3 = Web3(Web3.HTTPProvider(self.rpc))
        self.engine = make_engine(settings.database_url)
        self.senders = Senders(self.w3, self.engine)

    def contract(self, name: str) -> Any:
        return self.dep.contract(self.w3, name)

    def send(self, key: str, fn: Any) -> None:
        self.senders.send(key, fn)

    def travel_past(self, timestamp: int) -> None:
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        if now <= timestamp:
            rpc_call(self.rpc, "evm_increaseTime", [timestamp - now + 1])
            rpc_call(self.rpc, "evm_mine", [])

    def run(self) -> dict[str, int]:
        token, registry = self.contract("RewardToken"), self.contract("ContributionRegistry")
        dist = self.contract("RewardDistributor")
        agent = Account.from_key(AGENT).address
        a, b = Account.from_key(CONTRIBUTOR_A).address, Account.from_key(CONTRIBUTOR_B).address
        epoch = self.dep.epoch.epoch_at(int(self.w3.eth.get_block("latest")["timestamp"]))

        eng = self.epoch_engine()
        give_agent_test_tokens(
            self.w3, self.dep, self.senders
        )  # a no-op when `cairn dev` or an earlier run gave them
        held = int(token.functions.balanceOf(agent).call())
        out.print(
            f"[bold]demo[/] epoch {epoch}: the agent holds {held / 1e18:.0f} test tokens "
            "(minted from a capped epoch emission)"
        )
        funded = eng.fund(epoch)  # what the keeper does at each epoch's start; a no-op if it already did
        out.print(f"       epoch {epoch}'s emission in the reward pool: {funded.minted / 1e18:.2f} tokens")

        out.print(
            "[bold]demo[/] contributors register text corpora by their SHA-256 and upload them to the "
            "content store: A gasless through the API relayer, B directly"
        )
        corpora = self.register_corpora(registry, a, b)
        job = _h(f"demo-training-job-{time.time_ns()}")  # a new job per run: `cairn demo` replays
        self.send(
            PROVIDER, registry.functions.registerCompute(job, 3600, bytes.fromhex(MODEL_ID[2:]), _h("res"))
        )
        provider_id = compute_id(Account.from_key(PROVIDER).address, job)

        out.print(
            "[bold]demo[/] three validators attest; the trainer trains the model on the corpora and "
            "registers its manifest"
        )
        validator_role = registry.functions.VALIDATOR_ROLE().call()
        self.send(ADMIN, registry.functions.grantRole(validator_role, Account.from_key(VALIDATOR_3).address))
        ids = [c.digest for c in corpora] + [provider_id]
        for key, base in ((ADMIN, 9000), (VALIDATOR_2, 8000), (VALIDATOR_3, 8500)):
            for i, cid in enumerate(ids):
                self.send(key, registry.functions.attest(cid, base - 500 * (i % 3)))
        report = self.train_model()
        weights = ", ".join(str(d["weight"]) for d in report.datasets)
        out.print(
            f"       `cairn train`: model {report.name} version {report.version}, artefact "
            f"{report.artefact[:18]}... trained in {report.train_seconds:.2f} s on {len(report.datasets)} "
            f"corpora; manifest weights (token shares of 1e6): {weights}"
        )

        paid = self.ask_and_pay(token.address, epoch)
        return self._close_and_claim(eng, epoch, dist, token, a, b, paid)

    def train_model(self) -> TrainReport:
        """`cairn train` on the stack: once the indexer's mirror holds the attestations, train the embedded
        model on the stored content of the datasets that meet the quorum and register its manifest (weights =
        token shares) with the development trainer key. A replay trains the same artefact, sends nothing."""
        head = int(self.w3.eth.block_number)
        deadline = time.monotonic() + WAIT_S
        while True:
            with self.engine.connect() as conn:
                try:
                    indexed = mirror_block(conn)
                except InvalidInputError:
                    indexed = -1
            if indexed >= head:
                break
            if time.monotonic() > deadline:
                raise CairnError(f"the indexer did not reach block {head} within {WAIT_S:.0f} s")
            time.sleep(0.2)
        return train(
            engine=self.engine,
            w3=self.w3,
            deployment=self.dep,
            policy=load_policy("v1"),
            store=ContentStore(self.settings.content_dir, max_bytes=self.settings.content_max_bytes),
            trainer_key=TRAINER,
            name=DEFAULT_MODEL_NAME,
        )

    def epoch_engine(self) -> Any:
        """The rewards engine on the stack's database, publishing with the development publisher key."""
        from backend.rewards.lifecycle import EpochLifecycle

        return EpochLifecycle(
            engine=self.engine,
            w3=self.w3,
            deployment=self.dep,
            policy=load_policy("v1"),
            data_dir=self.settings.data_dir,
            publisher_key=ADMIN,
            confirmations=0,
            finality="confirmations",  # the dev chain's blocks are final at once
            source="db",
        )

    def register_corpora(self, registry: Any, a: str, b: str) -> list[Corpus]:
        """Register the shipped corpora (cairn/demo/corpora) by their SHA-256 and upload each file to the
        API's content store: A's half relayed gaslessly (`cairn data add`'s client), B's half with one direct
        `registerDatasets` (commit, then reveal). A corpus registered by an earlier run is only re-uploaded
        (one hash, one owner)."""
        files = corpus_files()
        half = (len(files) + 1) // 2
        client = DataClient(self.api)
        corpora: list[Corpus] = []
        try:
            for owner_key, owner, group in (
                (CONTRIBUTOR_A, a, files[:half]),
                (CONTRIBUTOR_B, b, files[half:]),
            ):
                items = [Corpus.of(path, self.api) for path in group]
                fresh = [c for c in items if not self._registered(registry, c.digest)]
                if owner_key == CONTRIBUTOR_A:
                    for c in fresh:
                        client.add(
                            owner_key,
                            file=c.path,
                            uri=c.uri,
                            license_id=1,
                            metadata_hash=c.metadata,
                            upload=False,
                        )
                elif fresh:
                    steps = dataset_list_calls(registry, owner, [c.as_input() for c in fresh])
                    for step in steps:  # commit (hides the content hashes), then the reveal once it is mined
                        self.send(owner_key, step)
                for c in items:
                    client.upload("0x" + c.digest.hex(), c.path, c.size)  # checked again if already stored
                    how = "registered" if c in fresh else "already registered"
                    who = "A (relayed)" if owner_key == CONTRIBUTOR_A else "B (direct)"
                    out.print(f"       {c.path.name}: 0x{c.digest.hex()} ({c.size} bytes) {how} by {who}")
                corpora += items
            for c in corpora:
                client.wait_indexed("0x" + c.digest.hex(), timeout=WAIT_S)
        finally:
            client.close()
        return corpora

    @staticmethod
    def _registered(registry: Any, digest: bytes) -> bool:
        return int(registry.functions.contributionOf(digest).call()[1]) != 0

    def ask_and_pay(self, token: str, epoch: int) -> int:
        """The agent asks the served model a question over HTTP (`POST /v1/chat/completions`), answering the
        402 with one x402 exact payment from the official client (`pay_once`); the API's settler settles it
        and the indexer mirrors the settlement. Returns the price paid."""
        served = _http("GET", f"{self.api}/v1/models")["data"]
        card = next((m for m in served if m["id"] == DEFAULT_MODEL_NAME), None)
        if card is None:
            raise CairnError(f"the API does not serve {DEFAULT_MODEL_NAME} (GET /v1/models)")
        price = int(card["cairn"]["price"])
        if price == 0:
            raise CairnError(f"{DEFAULT_MODEL_NAME} is free (price 0): set CAIRN_API_PRICES for the demo")
        out.print(
            f"[bold]demo[/] the agent asks the model over HTTP and pays {price / 1e18:g} tokens with the "
            "official x402 client (exact scheme, EIP-3009 TransferWithAuthorization)"
        )
        body = {
            "model": DEFAULT_MODEL_NAME,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 24,
        }
        paid = pay_once(f"{self.api}/v1/chat/completions", AGENT, asset=token,
                        network=f"eip155:{LOCAL_CHAIN_ID}", max_amount=price, json_body=body)  # fmt: skip
        if paid.status != 200 or paid.settlement is None:
            raise CairnError(f"the paid question got HTTP {paid.status}: {str(paid.body)[:200]}")
        drawn = ", ".join(f"{d['id'][:10]}... ({d['score']:.2f})" for d in paid.body["cairn"]["datasets"])
        answer = paid.body["choices"][0]["message"]["content"]
        out.print(f'       "{QUESTION}" -> "{answer[:70]}..."; drew on {drawn}')
        status = f"{self.api}{paid.settlement['extra']['status']}"
        deadline = time.monotonic() + WAIT_S
        while (row := _http("GET", status))["status"] != "settled":
            if row["status"] == "failed" or time.monotonic() > deadline:
                raise CairnError(f"the agent's payment was not settled: {row}")
            time.sleep(0.5)
        out.print(f"       the settler settled it: settleExactBatch {row['tx_hash']}")
        while not any(
            m["model_id"] == MODEL_ID for m in _http("GET", f"{self.api}/v1/epochs/{epoch}/revenue")["models"]
        ):
            if time.monotonic() > deadline:
                raise CairnError("the indexer did not mirror the settled payment")
            time.sleep(0.5)
        return price

    def _revenue_shares(self, eng: Any, epoch: int, end_block: int) -> tuple[dict[str, Any], dict[str, int]]:
        """Epoch `epoch`'s revenue of the demo model (`GET /v1/epochs/{n}/revenue`) and its contributors'
        share split over the manifest's weights x median scores, as the reward
        policy does (before the cap)."""
        from backend.rewards.allocation import split_largest_remainder
        from backend.rewards.sqlsource import inputs_from_db
        from cairn.core.policy import BPS

        revenue = _http("GET", f"{self.api}/v1/epochs/{epoch}/revenue")
        model = next(m for m in revenue["models"] if m["model_id"] == MODEL_ID)
        inputs = inputs_from_db(eng.engine, epoch, end_block, eng.policy)
        pool = int(model["net"]) * eng.policy.revenue_split_bps.contributors // BPS
        return model, split_largest_remainder(pool, inputs.model_data_weights.get(MODEL_ID, {}))

    def _close_and_claim(
        self, eng: Any, epoch: int, dist: Any, token: Any, a: str, b: str, paid: int
    ) -> dict[str, int]:
        from backend.rewards.payouts import push_payouts
        from cairn.core.errors import EpochNotReadyError

        out.print(f"[bold]demo[/] the chain's clock moves past the end of epoch {epoch}; the epoch closes")
        self.travel_past(self.dep.epoch.bounds(epoch)[1])
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                eng.close(epoch)
                break
            except EpochNotReadyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        computed = eng.compute(epoch)
        model, shares = self._revenue_shares(eng, epoch, int(computed.end_block))
        out.print(
            f"       epoch {epoch} revenue of {DEFAULT_MODEL_NAME}: {int(model['amount']) / 1e18:g} paid, "
            f"fee {int(model['fee']) / 1e18:g}, net {int(model['net']) / 1e18:g} "
            f"(GET /v1/epochs/{epoch}/revenue)"
        )
        doc = read_allocation_file(self.settings.data_dir, computed.allocation_file or "")
        for name, addr in (("A", a), ("B", b)):
            share = shares.get(addr.lower(), 0)
            total = int(doc["epoch_amounts"].get(addr.lower(), 0))
            out.print(
                f"       contributor {name} was paid {share / 1e18:.6f} tokens for the agent's question "
                f"(its manifest weight x score share of the {paid / 1e18:g}-token payment); epoch {epoch} "
                f"allocation {total / 1e18:.4f} in all"
            )
        eng.publish(epoch)
        out.print(
            f"       root {computed.root} proposed; "
            f"guardian window {dist.functions.challengeDelay().call()} s"
        )
        self.travel_past(
            int(self.w3.eth.get_block("latest")["timestamp"]) + dist.functions.challengeDelay().call()
        )
        eng.finalize(epoch)
        proof = _http("GET", f"{self.api}/v1/epochs/{epoch}/proofs/{a}")
        out.print(
            f"[bold]demo[/] contributor A claims {int(proof['cumulative_amount']) / 1e18:.4f} tokens "
            "with the API's proof"
        )
        self.send(
            CONTRIBUTOR_A,
            dist.functions.claim(
                int(proof["cumulative_amount"]), [bytes.fromhex(p[2:]) for p in proof["proof"]]
            ),
        )
        report = push_payouts(eng, epoch)
        out.print(f"[bold]demo[/] push payouts (relayed claimForBatch): {report.summary()}")
        eng.engine.dispose()
        balances = {name: int(token.functions.balanceOf(addr).call()) for name, addr in (("A", a), ("B", b))}
        out.print(
            f"[green]demo done[/]: A holds {balances['A'] / 1e18:.4f}, B holds {balances['B'] / 1e18:.4f} "
            f"tokens; see {self.api}/ and {self.api}/v1/accounts/{a}"
        )
        return balances
