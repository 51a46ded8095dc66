"""`cairn demo`: play the whole Cairn loop once on the local chain, through the running API and contracts.

1. an AI agent gets test tokens from epoch 0's capped emission (unless it still holds some from an earlier
   run), and the distributor is funded with the rest (`EpochLifecycle.fund`, what the keeper does);
2. contributor A registers a dataset gaslessly through the API relayer (EIP-712), contributor B directly,
   and a compute provider registers a training job;
3. three validators attest (the policy's quorum is 3), a trainer publishes the model's manifest;
4. the agent pays for one inference with an x402-style EIP-3009 authorization, settled by the router;
5. the chain moves past the epoch's end; the rewards engine closes the epoch from the indexer's mirror,
   proposes the Merkle root, waits the challenge delay and accepts it;
6. contributor A claims with the proof served by the API; everyone else is paid by push payouts
   (`claimForBatch` through the outbox, as `cairn epoch payout` does).

Only for the local chain (31337): it uses the public anvil development keys and moves the chain's clock.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from eth_account import Account
from eth_hash.auto import keccak
from rich.console import Console
from sqlalchemy import Engine
from web3 import Web3

from backend.outbox import CONFIRMED, Outbox
from cairn.cli.devchain import mint_test_tokens, rpc_call
from cairn.core.db import make_engine
from cairn.core.deployment import Deployment
from cairn.core.eip712 import transfer_authorization_typed_data
from cairn.core.errors import CairnError, ConfigError, OutboxRevertError
from cairn.core.registration import compute_id, dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID, Settings

out = Console()
ADMIN, RELAYER, VALIDATOR_2, TRAINER, VALIDATOR_3 = (ANVIL_DEV_KEYS[i] for i in range(5))
CONTRIBUTOR_A, CONTRIBUTOR_B, PROVIDER, AGENT = (ANVIL_DEV_KEYS[i] for i in (5, 6, 7, 8))
MODEL_ID = "0x" + keccak(b"cairn-demo-model-v1").hex()
PRICE = 5 * 10**18  # one inference request, in token wei
WAIT_S = 60.0


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
        models, router = self.contract("ModelRegistry"), self.contract("PaymentRouter")
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

        out.print("[bold]demo[/] contributors register: A gasless through the API relayer, B directly")
        ds_a, ds_b = _h(f"demo-dataset-a-{time.time_ns()}"), _h(f"demo-dataset-b-{time.time_ns()}")
        query = (
            f"owner={a}&content_hash=0x{ds_a.hex()}&size=1048576&license_id=1"
            f"&metadata_hash=0x{_h('meta-a').hex()}&uri=ipfs://demo-a"
        )
        typed = _http("GET", f"{self.api}/v1/eip712/register-dataset?{query}")
        sig = Account.sign_typed_data(CONTRIBUTOR_A, full_message=typed)
        msg = typed["message"]
        relayed = _http(
            "POST",
            f"{self.api}/v1/datasets",
            {
                "content_hash": "0x" + ds_a.hex(),
                "size": 1048576,
                "license_id": 1,
                "metadata_hash": "0x" + _h("meta-a").hex(),
                "uri": "ipfs://demo-a",
                "owner": a,
                "deadline": int(msg["deadline"]),
                "signature": "0x" + bytes(sig.signature).hex(),
            },
        )
        phase, tx = relayed.get("phase"), relayed.get("tx_hash")
        out.print(f"       relayed registration {relayed.get('relay_id')}: {phase} tx {tx}")
        b_steps = dataset_calls(registry, b, ds_b, 524288, 2, _h("meta-b"), "ipfs://demo-b")
        for step in b_steps:  # commit (hides the content hash), then the reveal once the commit is mined
            self.send(CONTRIBUTOR_B, step)
        job = _h(f"demo-training-job-{time.time_ns()}")  # a new job per run: `cairn demo` replays
        self.send(
            PROVIDER, registry.functions.registerCompute(job, 3600, bytes.fromhex(MODEL_ID[2:]), _h("res"))
        )
        provider_id = compute_id(Account.from_key(PROVIDER).address, job)
        self._wait_relayed(ds_a, str(relayed.get("relay_id")))

        out.print("[bold]demo[/] three validators attest; the trainer publishes the model's manifest")
        validator_role = registry.functions.VALIDATOR_ROLE().call()
        self.send(ADMIN, registry.functions.grantRole(validator_role, Account.from_key(VALIDATOR_3).address))
        for key, scores in (
            (ADMIN, (9000, 8000, 7000)),
            (VALIDATOR_2, (8500, 6000, 9000)),
            (VALIDATOR_3, (9500, 7000, 8000)),
        ):
            for cid, score in zip((ds_a, ds_b, provider_id), scores, strict=True):
                self.send(key, registry.functions.attest(cid, score))
        pairs = sorted([(ds_a, 60), (ds_b, 40)])
        self.send(
            TRAINER,
            models.functions.registerManifest(
                bytes.fromhex(MODEL_ID[2:]), [p[0] for p in pairs], [p[1] for p in pairs]
            ),
        )

        out.print(
            "[bold]demo[/] the agent pays for one inference (EIP-3009 authorization, settled by the router)"
        )
        nonce = "0x" + _h(f"demo-request-{time.time_ns()}").hex()
        auth = transfer_authorization_typed_data(
            token_name=token.functions.name().call(),
            chain_id=LOCAL_CHAIN_ID,
            verifying_contract=token.address,
            from_=agent,
            to=router.address,
            value=PRICE,
            valid_after=0,
            valid_before=2**40,
            nonce=nonce,
        )
        s = Account.sign_typed_data(AGENT, full_message=auth)
        payment = (
            agent,
            PRICE,
            0,
            2**40,
            bytes.fromhex(nonce[2:]),
            s.v,
            s.r.to_bytes(32, "big"),
            s.s.to_bytes(32, "big"),
        )
        self.send(RELAYER, router.functions.settleExact(payment, bytes.fromhex(MODEL_ID[2:])))

        return self._close_and_claim(eng, epoch, dist, token, a, b)

    def epoch_engine(self) -> Any:
        """The rewards engine on the stack's database, publishing with the development publisher key."""
        from backend.rewards.lifecycle import EpochLifecycle
        from cairn.core.policy import load_policy

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

    def _wait_relayed(self, content_hash: bytes, relay_id: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                _http("GET", f"{self.api}/v1/relays/{relay_id}")  # reading it also sends the reveal when due
                _http("GET", f"{self.api}/v1/datasets/0x{content_hash.hex()}")
                return
            except CairnError:
                time.sleep(0.5)
        raise CairnError("the relayed registration did not appear in the API within 60 s")

    def _close_and_claim(self, eng: Any, epoch: int, dist: Any, token: Any, a: str, b: str) -> dict[str, int]:
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
