"""The x402 settler under kill -9: payments are accepted by the real gateway (payloads signed by the official
client's exact EVM scheme), some then cancelled by their payer or front-run straight to the token, and a
settler process settles them through the outbox while it is killed at random moments, again and again. After
it finally completes: every served payment is settled exactly once (one PaymentSettled with its nonce, its
amount paid by the payer) or recorded as failed (no event, nothing paid), none lost, none twice; exposure is
back to zero and failed settlements are counted per payer.

Run as a script, this file is the settler process: `python test_x402_settle_crash.py <rpc> <db> <deployment>`.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI") == "true"
KILLS = 100 if IN_CI else int(os.environ.get("CAIRN_CRASH_KILLS", "6"))
BATCH = 4
ROOT = Path(__file__).resolve().parents[2]


def _settings(rpc: str, db_url: str, dep_file: str) -> Any:
    from backend.api.settings import ApiSettings

    return ApiSettings(
        rpc_urls=[rpc], database_url=db_url, deployment_file=Path(dep_file), confirmations=0,
        api_x402_batch_size=BATCH, api_x402_exposure_limit=10**24,
    )  # fmt: skip


def worker(rpc: str, db_url: str, dep_file: str) -> None:
    """Settle until nothing is accepted or settling."""
    from backend.api.chain import connect_chain
    from backend.api.x402 import store
    from backend.api.x402.settle import build_settler
    from cairn.core.db import make_engine

    cfg = _settings(rpc, db_url, dep_file)
    engine = make_engine(db_url)
    settler = build_settler(cfg, connect_chain(cfg), engine)
    while True:
        settler.round()
        open_ = store.payments(engine, settler.chain_id, payer=None, status=store.SERVED, limit=1)
        open_ += store.payments(engine, settler.chain_id, payer=None, status=store.SETTLING, limit=1)
        if not open_:
            return
        time.sleep(0.02)


def _run_worker(args: list[str], kill_after: float | None) -> int | None:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
    )  # fmt: skip
    if kill_after is None:
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise AssertionError(err.decode()[-3000:])
        return proc.returncode
    try:
        proc.wait(timeout=kill_after)
        return proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL
        proc.wait()
        return None


class Payments:
    """Payments accepted by the real gateway (in this process), signed by the official client's scheme."""

    def __init__(self, w3: Any, dep: Any, cfg: Any, payers: list[Any]) -> None:
        from backend.api.chain import connect_chain
        from backend.api.x402.service import build_gateway
        from cairn.core.db import make_engine

        self.w3, self.dep, self.payers = w3, dep, payers
        self.engine = make_engine(cfg.database_url)
        self.gateway = build_gateway(cfg, connect_chain(cfg), self.engine)
        self.n = 0

    def accept(self, account: Any) -> dict[str, Any]:
        """One paid request of `account`: the official client's payload through the gateway. Returns it."""
        import asyncio

        from support.x402_stack import ECHO_MODEL, official_client
        from x402.schemas import PaymentRequired

        from backend.api.x402.gateway import encode
        from backend.api.x402.scheme import Charge

        self.n += 1
        charge = Charge(amount=10**15 + self.n, resource="http://test/echo", model_id=ECHO_MODEL)
        required = PaymentRequired.model_validate(self.gateway.payment_required(charge))
        network = f"eip155:{self.w3.eth.chain_id}"
        client = official_client(account.key.hex(), self.dep.address("RewardToken"), network, 10**18)
        payload = asyncio.run(client.create_payment_payload(required))
        body = payload.model_dump(by_alias=True, exclude_none=True)
        accepted, _ = self.gateway.pay(encode(body), charge)
        self.gateway.served(accepted)  # as the middleware does once the route produced its response
        return dict(body["payload"])


def _admin_send(w3: Any, fn: Any) -> None:
    from eth_account import Account

    from cairn.core.settings import ANVIL_DEV_KEYS

    admin = Account.from_key(ANVIL_DEV_KEYS[3])  # not the settler's key (dev 1): its nonces stay the outbox's
    tx = fn.build_transaction({"from": admin.address, "nonce": w3.eth.get_transaction_count(admin.address)})
    h = w3.eth.send_raw_transaction(admin.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(h)["status"] == 1


def _cancel(w3: Any, dep: Any, key: str, nonce: str) -> None:
    from eth_account import Account

    from cairn.core import eip712

    token = dep.contract(w3, "RewardToken")
    acct = Account.from_key(key)
    typed = eip712.cancel_authorization_typed_data(
        token_name=token.functions.name().call(), chain_id=w3.eth.chain_id, verifying_contract=token.address,
        authorizer=acct.address, nonce=nonce,
    )  # fmt: skip
    s = Account.sign_typed_data(key, full_message=typed)
    _admin_send(
        w3,
        token.functions.cancelAuthorization(
            acct.address, bytes.fromhex(nonce[2:]), s.v, s.r.to_bytes(32, "big"), s.s.to_bytes(32, "big")
        ),
    )


def _front_run(w3: Any, dep: Any, inner: dict[str, Any]) -> None:
    token = dep.contract(w3, "RewardToken")
    a = inner["authorization"]
    _admin_send(
        w3,
        token.functions.transferWithAuthorization(
            a["from"], a["to"], int(a["value"]), int(a["validAfter"]), int(a["validBefore"]),
            bytes.fromhex(a["nonce"][2:]), bytes.fromhex(inner["signature"][2:]),
        ),
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_kill_9_settler_never_loses_or_doubles_a_payment(anvil: Any, tmp_path: Path) -> None:
    from eth_account import Account
    from support.api_stack import deploy_on
    from support.x402_stack import fund_payers
    from web3.logs import DISCARD

    from backend import migrations
    from backend.api.x402 import store
    from cairn.cli.devchain import mint_test_tokens
    from cairn.core.db import make_engine

    w3, _, dep = deploy_on(anvil, tmp_path)
    db_url = f"sqlite:///{tmp_path}/crash.db"
    setup = make_engine(db_url)
    migrations.upgrade(setup)
    setup.dispose()
    cfg = _settings(anvil.url, db_url, str(tmp_path / "deployment.json"))
    payers = fund_payers(w3, dep)
    token, router = dep.contract(w3, "RewardToken"), dep.contract(w3, "PaymentRouter")
    start = {p.address: token.functions.balanceOf(p.address).call() for p in payers}
    pay = Payments(w3, dep, cfg, payers)
    rng = random.Random(int(os.environ.get("CAIRN_CRASH_SEED", "402")))
    args = [anvil.url, db_url, str(tmp_path / "deployment.json")]
    cancelled: list[tuple[str, str]] = []
    front_run: list[tuple[str, str]] = []
    extra_payers: list[Any] = []

    def add_payments() -> None:
        for _ in range(rng.randint(2, 6)):
            pay.accept(rng.choice(payers))
        if rng.random() < 0.2:  # served, then cancelled by a payer of its own (refused from then on)
            acct = Account.create()
            mint_test_tokens(w3, dep, acct.address, 10**18)
            inner = pay.accept(acct)
            _cancel(w3, dep, acct.key.hex(), inner["authorization"]["nonce"])
            cancelled.append((acct.address.lower(), inner["authorization"]["nonce"].lower()))
            extra_payers.append(acct)
        if rng.random() < 0.1:  # served, then submitted straight to the token by someone else
            acct = rng.choice(payers)
            inner = pay.accept(acct)
            _front_run(w3, dep, inner)
            front_run.append((acct.address.lower(), inner["authorization"]["nonce"].lower()))

    add_payments()
    t0 = time.perf_counter()
    _run_worker(args, None)
    window = time.perf_counter() - t0
    kills = 0
    while kills < KILLS:
        add_payments()
        t0 = time.perf_counter()
        code = _run_worker(args, rng.uniform(0.2 * window, 1.05 * window))
        if code is None:
            kills += 1
        else:
            window = min(window, time.perf_counter() - t0)
    _run_worker(args, None)

    # --- every payment: settled once or failed, none open ---
    rows = store.payments(pay.engine, w3.eth.chain_id, payer=None, status=None, limit=100_000)
    assert rows and all(r["status"] in (store.SETTLED, store.FAILED) for r in rows), Counter(
        r["status"] for r in rows
    )
    logs = router.events.PaymentSettled().get_logs(from_block=0)

    def ev_key(e: Any) -> tuple[str, str]:
        return str(e["args"]["payer"]).lower(), "0x" + bytes(e["args"]["requestHash"]).hex()

    events = Counter(ev_key(e) for e in logs)
    amounts = {ev_key(e): e["args"]["amount"] for e in logs}
    for r in rows:
        key = (r["payer"], r["nonce"])
        if r["status"] == store.SETTLED:
            assert events[key] == 1, (r, events[key])  # exactly once
            assert amounts[key] == int(r["amount"])
            receipt = w3.eth.get_transaction_receipt(r["tx_hash"])
            assert key in {
                ev_key(e) for e in router.events.PaymentSettled().process_receipt(receipt, errors=DISCARD)
            }
        else:
            assert events[key] == 0, r
            assert r["reason"] == "authorization_used_or_cancelled", r
    by_key = {(r["payer"], r["nonce"]): r for r in rows}
    assert {k for k in cancelled} == {k for k, r in by_key.items() if r["status"] == store.FAILED}
    assert all(by_key[k]["status"] == store.SETTLED for k in front_run)
    assert sum(events.values()) == len(rows) - len(cancelled)  # no event for anything unserved
    # --- the money: each payer paid exactly its settled payments; the router holds nothing ---
    for p in payers:
        paid = sum(
            int(r["amount"]) for r in rows if r["payer"] == p.address.lower() and r["status"] == "settled"
        )
        assert start[p.address] - token.functions.balanceOf(p.address).call() == paid
    for acct in extra_payers:
        assert token.functions.balanceOf(acct.address).call() == 10**18  # cancelled: nothing taken
    assert token.functions.balanceOf(router.address).call() == 0
    # --- exposure back to zero, failures counted per payer ---
    for p in [*payers, *extra_payers]:
        e = store.exposure(pay.engine, w3.eth.chain_id, p.address)
        assert e.unsettled == 0
        assert e.failed == sum(1 for k in cancelled if k[0] == p.address.lower())
    assert kills >= KILLS
    pay.engine.dispose()


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], sys.argv[3])
