"""Sign-in, sessions, API keys, the signed-in views and the operator endpoints over real HTTP: `cairn api`
(uvicorn, its JSON logs, the background indexer) on anvil with the real contracts and a SQLite database.

Every request names its client with a fresh `X-Forwarded-For` (the server trusts that header here), so the
per-client limit only bites where a test floods from one client on purpose."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import create_engine, text
from support.api_stack import assert_problem
from support.pg import create_database, drop_database, require_postgres
from support.process import wait_until
from support.siwe import message_for, sign, sign_in
from web3 import Web3

from backend.api.auth import eip4361
from cairn.cli.deploy import deploy_all
from cairn.cli.devchain import Anvil, free_port, start_anvil
from cairn.core.contracts import load_artifact
from cairn.core.deployment import Deployment
from cairn.core.policy import POLICY_DIR
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS, REPO_ROOT

OWNERS = [Account.from_key(k) for k in ANVIL_DEV_KEYS[5:8]]
ADMIN = Account.from_key(ANVIL_DEV_KEYS[0])
_IPS = (f"198.18.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def fresh() -> dict[str, str]:
    """Headers naming a client never seen before."""
    return {"X-Forwarded-For": next(_IPS)}


@dataclass
class Server:
    url: str
    w3: Web3
    anvil: Anvil
    deployment: Deployment
    db_url: str
    log: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cairn.cli", *args], capture_output=True, text=True, timeout=120,
            check=False, env=self.env, cwd=REPO_ROOT,
        )  # fmt: skip

    def api_key(self, *scopes: str) -> str:
        done = self.cli("apikey", "create", *[a for s in scopes for a in ("--scope", s)], "--name", "test")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, headers={**fresh(), **kw.pop("headers", {})}, timeout=60, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self.url + path, headers={**fresh(), **kw.pop("headers", {})}, timeout=180, **kw)


def _send(w3: Web3, key: LocalAccount, fn: Any) -> None:
    tx = fn.build_transaction({"from": key.address, "nonce": w3.eth.get_transaction_count(key.address),
                               "gas": fn.estimate_gas({"from": key.address}, "pending")})  # fmt: skip
    h = w3.eth.send_raw_transaction(key.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(h)["status"] == 1


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Three datasets attested by two validators, epoch 0 funded; then `cairn api --with-indexer` on SQLite
    or PostgreSQL (skipped without a server, failed under CI=true)."""
    if request.param == "postgres":
        require_postgres()
    tmp = tmp_path_factory.mktemp("auth")
    db_url = f"sqlite:///{tmp}/api.db" if request.param == "sqlite" else create_database("cairn_auth")
    try:
        with start_anvil() as anvil:
            yield from _serve(anvil, tmp, db_url)
    finally:
        if request.param == "postgres":
            drop_database(db_url)


def _serve(anvil: Anvil, tmp: Path, db_url: str) -> Iterator[Server]:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    dep = deploy_all(anvil.url, ADMIN.key.hex(), epoch_length=1000, challenge_delay=5,
                     out=tmp / "deployment.json")  # fmt: skip
    registry, dist = dep.contract(w3, "ContributionRegistry"), dep.contract(w3, "RewardDistributor")
    ids = [bytes([0x60 + i]) * 32 for i in range(len(OWNERS))]
    for owner, cid in zip(OWNERS, ids, strict=True):
        for step in dataset_calls(registry, owner.address, cid, 1, 1, b"\x01" * 32, "ipfs://auth"):
            _send(w3, owner, step)
    for validator in (ADMIN, Account.from_key(ANVIL_DEV_KEYS[2])):
        _send(w3, validator, registry.functions.attestBatch(ids, [7000, 8000, 9000]))
    _send(w3, ADMIN, dist.functions.fundEmission(0))
    policy = json.loads((POLICY_DIR / "v1.json").read_text())
    policy["attestation"]["quorum"] = 2
    (tmp / "policy.json").write_text(json.dumps(policy))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ, CAIRN_RPC_URLS=anvil.url, CAIRN_DATABASE_URL=db_url,
        CAIRN_DEPLOYMENT_FILE=str(tmp / "deployment.json"),
        CAIRN_DATA_DIR=str(tmp / "data"), CAIRN_CONFIRMATIONS="0", CAIRN_API_SIWE_ORIGINS=url,
        CAIRN_API_RELAY_CLIENT_HEADER="X-Forwarded-For", CAIRN_API_OPERATOR_POLICY=str(tmp / "policy.json"),
        CAIRN_API_RATE_CLIENT_BURST="20", CAIRN_API_RATE_CLIENT_PER_MINUTE="60",
        CAIRN_API_RATE_ACCOUNT_BURST="30", CAIRN_API_RATE_ACCOUNT_PER_MINUTE="60", CAIRN_PUBLISHER_KEY="",
        CAIRN_LOG_LEVEL="INFO", PYTHONPATH=str(REPO_ROOT),
    )  # fmt: skip
    log = tmp / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cairn.cli", "api", "--port", str(port), "--with-indexer"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
        )  # fmt: skip
    srv = Server(url, w3, anvil, dep, db_url, log, proc, env)

    def healthy() -> bool:
        try:
            return requests.get(url + "/health", headers=fresh(), timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until("the API", healthy, proc, log, timeout=90)
        yield srv
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _nonce(srv: Server) -> dict[str, Any]:
    r = srv.post("/v1/auth/nonce")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _try(srv: Server, key: LocalAccount, text: str, signature: str | None = None) -> requests.Response:
    body = {"message": text, "signature": signature or sign(key, text), "session": "bearer"}
    return srv.post("/v1/auth/siwe", json=body)


# --- sign-in ------------------------------------------------------------------------------------------------
def test_browser_session_is_an_httponly_samesite_cookie_and_sign_out_ends_it(server: Server) -> None:
    key = Account.create()
    browser = requests.Session()
    browser.headers.update(fresh())
    r = sign_in(browser, server.url, key, session="cookie")
    assert r.status_code == 200, r.text
    assert r.json()["address"] == key.address and r.json()["token"] is None and r.json()["kind"] == "cookie"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("cairn_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert r.headers["cache-control"] == "no-store"
    me = browser.get(server.url + "/v1/auth/session")
    assert me.status_code == 200 and me.json()["address"] == key.address, me.text
    assert browser.post(server.url + "/v1/auth/signout").status_code == 204
    token = cookie.split(";")[0].split("=", 1)[1]
    gone = requests.get(server.url + "/v1/auth/session", cookies={"cairn_session": token}, headers=fresh())
    problem = assert_problem(gone, 401, "unauthenticated", "signed out")
    assert gone.headers["www-authenticate"].startswith("Bearer"), problem


def test_script_session_is_a_bearer_token_stored_only_as_its_hash(server: Server) -> None:
    key = Account.create()
    r = sign_in(requests, server.url, key, **fresh())
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert server.get("/v1/auth/session", headers=auth).json()["kind"] == "bearer"
    engine = create_engine(server.db_url)
    with engine.connect() as conn:
        stored = [tuple(row) for row in conn.execute(text("SELECT * FROM auth_session"))]
    engine.dispose()
    assert stored and not any(token in str(row) for row in stored)
    assert server.post("/v1/auth/signout", headers=auth).status_code == 204
    assert_problem(server.get("/v1/auth/session", headers=auth), 401, "unauthenticated")
    assert_problem(server.get("/v1/me"), 401, "unauthenticated", "sign in first")
    # a session ends no later than the message's Expiration Time (else after CAIRN_API_SESSION_TTL_S)
    soon = int(time.time()) + 120
    msg = message_for(_nonce(server), key.address, expiration_time=eip4361.iso(soon))
    short = _try(server, key, msg.text())
    assert short.status_code == 200 and short.json()["expires_at"] == soon, short.text
    msg = message_for(_nonce(server), key.address, expiration_time=None)
    default = _try(server, key, msg.text())
    assert int(default.json()["expires_at"]) - int(time.time()) in range(3500, 3601)


def test_siwe_negative_cases_are_401_naming_the_check(server: Server) -> None:
    key, other = Account.create(), Account.create()
    now = int(time.time())
    cases = {
        "siwe_domain_mismatch": {"domain": "evil.example"},
        "siwe_uri_mismatch": {"uri": "https://evil.example/login"},
        "siwe_chain_mismatch": {"chain_id": 1},
        "siwe_expired": {"issued_at": eip4361.iso(now - 120), "expiration_time": eip4361.iso(now - 60)},
        "siwe_not_yet_valid": {"not_before": eip4361.iso(now + 300)},
        "siwe_issued_in_future": {"issued_at": eip4361.iso(now + 3600)},
        "siwe_nonce_unknown": {"nonce": "neverissued1234"},
    }
    for code, overrides in cases.items():
        msg = message_for(_nonce(server), key.address, **overrides)
        assert_problem(_try(server, key, msg.text()), 401, code)
    # a signature by another key over the right message
    msg = message_for(_nonce(server), key.address)
    problem = assert_problem(
        _try(server, key, msg.text(), sign(other, msg.text())), 401, "siwe_signature_invalid"
    )
    assert other.address in problem["detail"]
    # the refusals above consumed nothing: the same nonce still signs in, once; the replay is refused
    ok = _try(server, key, msg.text())
    assert ok.status_code == 200, ok.text
    assert_problem(_try(server, key, msg.text()), 401, "siwe_nonce_used")
    # an address that is not EIP-55 checksummed, and a text that is not an EIP-4361 message
    msg = message_for(_nonce(server), key.address.lower())
    assert_problem(_try(server, key, msg.text()), 401, "siwe_address_checksum")
    assert_problem(_try(server, key, "hello"), 422, "siwe_malformed")
    # a nonce past its time (issued here, never used)
    engine = create_engine(server.db_url)
    with engine.begin() as conn:
        old = {"t": now - 700}
        conn.execute(text("INSERT INTO auth_nonce VALUES ('expirednonce0001', :t, :t, NULL)"), old)
    engine.dispose()
    msg = message_for(_nonce(server), key.address, nonce="expirednonce0001")
    assert_problem(_try(server, key, msg.text()), 401, "siwe_nonce_expired")


def test_concurrent_sign_ins_with_one_nonce_open_one_session(server: Server) -> None:
    key = Account.create()
    msg = message_for(_nonce(server), key.address).text()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _try(server, key, msg), range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7, [a.text for a in answers]
    assert all(a.json()["code"] == "siwe_nonce_used" for a in answers if a.status_code == 401)


def test_a_contract_wallet_signs_in_through_eip1271(server: Server) -> None:
    owner = Account.create()
    art = load_artifact("Wallet1271", REPO_ROOT / "artifacts" / "contracts" / "test" / "handlers")
    w3 = server.w3
    tx = (
        w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        .constructor(owner.address)
        .build_transaction(
            {"from": ADMIN.address, "nonce": w3.eth.get_transaction_count(ADMIN.address, "pending")}
        )
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(ADMIN.sign_transaction(tx).raw_transaction)
    )
    wallet = str(receipt["contractAddress"])
    msg = message_for(_nonce(server), wallet)
    r = _try(
        server, owner, msg.text()
    )  # the wallet's owner key signs; the wallet's isValidSignature says yes
    assert r.status_code == 200, r.text
    assert r.json()["address"] == wallet and r.json()["wallet"] is True
    me = server.get("/v1/auth/session", headers={"Authorization": f"Bearer {r.json()['token']}"})
    assert me.json()["address"] == wallet
    stranger = Account.create()
    msg = message_for(_nonce(server), wallet)
    assert_problem(_try(server, stranger, msg.text()), 401, "siwe_signature_invalid", "contract wallet")


# --- rate limits, logs --------------------------------------------------------------------------------
def test_rate_limits_per_client_and_per_account_answer_429_with_retry_after(server: Server) -> None:
    one = fresh()
    answers = [requests.get(server.url + "/health", headers=one, timeout=30) for _ in range(25)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and answers[0].status_code == 200
    problem = assert_problem(limited[0], 429, "rate_limited", "this client")
    assert problem["reason"] == "rate_client" and int(limited[0].headers["retry-after"]) >= 1
    # one account over many clients: its own bucket
    token = sign_in(requests, server.url, Account.create(), **fresh()).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    answers = [server.get("/v1/auth/session", headers=auth) for _ in range(40)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and answers[0].status_code == 200
    assert assert_problem(limited[0], 429, "rate_limited")["reason"] == "rate_account"
    assert int(limited[0].headers["retry-after"]) >= 1


def test_logs_are_json_lines_with_the_request_id_on_the_access_log_too(server: Server) -> None:
    r = server.get("/health", headers={"X-Request-ID": "trace-auth-0001"})
    assert r.headers["x-request-id"] == "trace-auth-0001"
    generated = server.get("/v1/epochs").headers["x-request-id"]
    assert len(generated) == 32

    def lines() -> list[dict[str, Any]]:
        out = []
        for line in server.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def access(rid: str) -> list[dict[str, Any]]:
        return [e for e in lines() if e["logger"] == "uvicorn.access" and e["request_id"] == rid]

    wait_until("the access log line", lambda: access("trace-auth-0001") and access(generated), server.proc,
               server.log, timeout=10)  # fmt: skip
    line = access("trace-auth-0001")[0]
    assert line["path"] == "/health" and line["method"] == "GET" and line["status"] == 200
    assert {"ts", "level", "message"} <= set(line)
    assert any(e["logger"].startswith("uvicorn") and e["request_id"] is None for e in lines())  # start-up


# --- operators and the signed-in views ------------------------------------------------------------
def _travel(srv: Server, timestamp: int) -> None:
    srv.anvil.rpc("evm_setNextBlockTimestamp", [timestamp])
    srv.anvil.rpc("evm_mine", [])


def _outbox_keys(srv: Server) -> list[str]:
    engine = create_engine(srv.db_url)
    with engine.connect() as conn:
        keys = [str(r[0]) for r in conn.execute(text("SELECT key FROM outbox_tx ORDER BY id"))]
    engine.dispose()
    return keys


def _until(what: str, srv: Server, call: Any) -> requests.Response:
    """Call until the answer is not a 409 epoch_not_ready (the background indexer catching up)."""
    box: dict[str, requests.Response] = {}

    def ready() -> bool:
        box["r"] = call()
        return not (box["r"].status_code == 409 and box["r"].json()["code"] == "epoch_not_ready")

    wait_until(what, ready, srv.proc, srv.log, timeout=60, interval=0.5)
    return box["r"]


def test_operator_endpoints_run_the_lifecycle_idempotently_and_refuse_missing_or_wrong_keys(
    server: Server,
) -> None:
    epochs_key, payouts_key = server.api_key("epochs:write"), server.api_key("payouts:write")
    as_epochs, as_payouts = {"X-API-Key": epochs_key}, {"Authorization": f"Bearer {payouts_key}"}
    # refused before anything runs
    assert_problem(server.post("/v1/operator/epochs/0/close"), 401, "unauthenticated", "epochs:write")
    assert_problem(server.post("/v1/operator/epochs/0/close", headers={"X-API-Key": "cairn_0_nope"}),
                   401, "unauthenticated", "unknown or revoked")  # fmt: skip
    assert_problem(
        server.post("/v1/operator/epochs/0/close", headers=as_payouts), 403, "forbidden", "epochs:write"
    )
    assert_problem(
        server.post("/v1/operator/epochs/0/payout", headers=as_epochs), 403, "forbidden", "payouts:write"
    )
    # a session token is no API key
    token = sign_in(requests, server.url, OWNERS[0], **fresh()).json()["token"]
    assert_problem(server.post("/v1/operator/epochs/0/close", headers={"Authorization": f"Bearer {token}"}),
                   401, "unauthenticated")  # fmt: skip
    # not ended yet: 409 with what it waits for
    assert_problem(server.post("/v1/operator/epochs/0/close", headers=as_epochs), 409, "epoch_not_ready")
    _travel(server, server.deployment.epoch.bounds(0)[1])
    closed = _until("close", server, lambda: server.post("/v1/operator/epochs/0/close", headers=as_epochs))
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "computed" and closed.json()["leaf_count"] == len(OWNERS) + 1
    again = server.post("/v1/operator/epochs/0/close", headers=as_epochs)
    assert again.json() == closed.json()
    published = server.post("/v1/operator/epochs/0/publish", headers=as_epochs)
    assert published.status_code == 200 and published.json()["status"] == "proposed", published.text
    sent = _outbox_keys(server)
    assert server.post("/v1/operator/epochs/0/publish", headers=as_epochs).json() == published.json()
    assert _outbox_keys(server) == sent and any(k.startswith("propose:") for k in sent)  # nothing sent again
    dist = server.deployment.contract(server.w3, "RewardDistributor")
    assert "0x" + bytes(dist.functions.pendingRoot().call()[0]).hex() == published.json()["root"]
    valid_at = int(published.json()["valid_at"])
    early = server.post("/v1/operator/epochs/0/finalize", headers=as_epochs)
    if int(server.w3.eth.get_block("latest")["timestamp"]) < valid_at:
        assert_problem(early, 409, "epoch_not_ready", "acceptable in")
    _travel(server, valid_at + 1)
    accepted = server.post("/v1/operator/epochs/0/finalize", headers=as_epochs)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted", accepted.text
    assert server.post("/v1/operator/epochs/0/finalize", headers=as_epochs).json() == accepted.json()
    assert len(_outbox_keys(server)) == len(sent) + 1  # the one acceptRoot
    # the signed-in owner sees its reward and the proof before the payout
    auth = {"Authorization": f"Bearer {token}"}

    def root_mirrored() -> bool:  # the background indexer mirrors RootAccepted
        r = server.get("/v1/me/rewards", headers=auth)
        return r.status_code == 200 and bool(r.json()["claim"])

    wait_until("the root in the mirror", root_mirrored, server.proc, server.log, timeout=30, interval=0.5)
    rewards = server.get("/v1/me/rewards", headers=auth)
    assert rewards.status_code == 200, rewards.text
    body = rewards.json()
    assert [e["epoch"] for e in body["epochs"]] == [0] and int(body["claimable"]) > 0
    assert body["claim"]["root"] == accepted.json()["root"] and body["claimed"] == "0"
    assert body["epochs"][0]["amount"] == body["cumulative"] == body["claim"]["cumulative_amount"]
    paid = server.post("/v1/operator/epochs/0/payout", headers=as_payouts)
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "accepted" and paid.json()["payout"]["paid"] == len(OWNERS) + 1
    paid_keys = _outbox_keys(server)
    twice = server.post("/v1/operator/epochs/0/payout", headers=as_payouts).json()["payout"]
    assert twice["paid"] == 0 and twice["already_paid"] == len(OWNERS) + 1
    assert _outbox_keys(server) == paid_keys
    owner = OWNERS[0].address
    assert int(dist.functions.claimed(owner).call()) == int(body["cumulative"])

    def claimed_seen() -> bool:
        r = server.get("/v1/me/claims", headers=auth)
        return r.status_code == 200 and bool(r.json()["claims"])

    wait_until("the payout in the mirror", claimed_seen, server.proc, server.log, timeout=30, interval=0.5)
    claims = server.get("/v1/me/claims", headers=auth).json()["claims"]
    assert claims[0]["amount"] == body["cumulative"] and claims[0]["caller"] == ADMIN.address
    after = server.get("/v1/me/rewards", headers=auth).json()
    assert after["claimed"] == body["cumulative"] and after["claimable"] == "0"
    mine = server.get("/v1/me/contributions", headers=auth).json()
    assert mine["dataset_count"] == 1 and mine["items"][0]["owner"] == owner
    status = mine["items"][0]["status"]
    assert status["quorum"] == 2 and status["quorum_met"] and status["score"]["validators"] == 2
    summary = server.get("/v1/me", headers=auth).json()
    assert summary["address"] == owner and summary["rewards"]["claimed"] == body["cumulative"]
    # a revoked key stops at once
    key_id = epochs_key.split("_")[1]
    assert server.cli("apikey", "revoke", key_id).returncode == 0
    assert_problem(server.post("/v1/operator/epochs/0/close", headers=as_epochs), 401, "unauthenticated")
    listed = server.cli("apikey", "list")
    assert key_id in listed.stdout and "revoked" in listed.stdout and epochs_key not in listed.stdout
    bad = server.cli("apikey", "create", "--scope", "root:all")
    assert bad.returncode == 3 and "unknown scope" in bad.stderr


def test_openapi_declares_the_security_schemes_and_the_problems(server: Server) -> None:
    doc = server.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert {"session_cookie", "bearer", "api_key"} <= set(schemes)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert "429" in op["responses"], path
            if path.startswith(("/v1/me", "/v1/operator", "/v1/auth/session", "/v1/auth/signout")):
                assert "401" in op["responses"] and op.get("security"), path
            if path.startswith("/v1/operator"):
                assert "403" in op["responses"], path
    assert server.get("/v1/auth/nonce").status_code == 405
