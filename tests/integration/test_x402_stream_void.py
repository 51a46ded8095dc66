"""A paid streamed completion is settled only if its stream ends: `POST /v1/chat/completions` with
`stream: true` for a model answered by an upstream relays the upstream's own stream; an upstream killed
(SIGKILL) midway, after the 200 and PAYMENT-RESPONSE success went out, makes the payment void (never settled,
exposure released, the authorization unused on chain), while a stream that ends is served and settled. Real
anvil, contracts, app under uvicorn, official x402 Python client for the signature, and a real upstream
process (tests/support/sse_upstream.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.x402_stack import PRICE, X402Stack, official_client, settle_all, x402_stack
from x402.http import x402HTTPClient

from backend.api.chain import connect_chain
from backend.api.x402 import store
from backend.api.x402.settle import build_settler
from cairn.cli.devchain import free_port, start_anvil
from cairn.core.db import make_engine

UPSTREAM = Path(__file__).resolve().parents[1] / "support" / "sse_upstream.py"
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def upstream(port: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, str(UPSTREAM), str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[X402Stack, int]]:
    tmp: Path = tmp_path_factory.mktemp("x402s")
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    ups = {"flaky": {"base_url": base, "model": "slow", "timeout_s": 60}, "steady": {"base_url": base}}
    with start_anvil() as anvil, x402_stack(
        anvil, tmp, api_x402_settle_in_api=False, api_upstreams=ups,
        api_prices={"flaky": PRICE, "steady": PRICE},
    ) as s:  # fmt: skip
        yield s, port


def _chat(stack: X402Stack) -> str:
    return stack.url.replace("/test/echo", "/v1/chat/completions")


def _paid_headers(stack: X402Stack, i: int, body: dict[str, Any], url: str | None = None) -> dict[str, str]:
    """PAYMENT-SIGNATURE of the official client for `body`'s 402 (exact, on the RewardToken)."""
    client = official_client(stack.payers[i].key.hex(), stack.token, stack.network, 10 * PRICE)
    resp = httpx.post(url or _chat(stack), json=body, timeout=10)
    assert resp.status_code == 402, resp.text
    required = x402HTTPClient(client).get_payment_required_response(resp.headers.get, resp.content)
    payload = asyncio.run(client.create_payment_payload(required))
    raw = payload.model_dump_json(by_alias=True, exclude_none=True)
    return {"PAYMENT-SIGNATURE": base64.b64encode(raw.encode()).decode()}


def _payments(stack: X402Stack, payer: str) -> dict[str, Any]:
    r = httpx.get(stack.url.replace("/test/echo", "/v1/payments"), params={"payer": payer}, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "How do bees make honey?"}],
    }


def test_stream_whose_upstream_is_killed_midway_is_void_and_never_settled(
    world: tuple[X402Stack, int],
) -> None:
    stack, port = world
    payer = stack.payers[1]
    token = stack.contract("RewardToken")
    before = token.functions.balanceOf(payer.address).call()
    body = _body("flaky")
    headers = _paid_headers(stack, 1, body)
    events: list[str] = []
    with (
        upstream(port) as up,
        httpx.Client(timeout=60) as http,
        http.stream("POST", _chat(stack), json=body, headers=headers) as resp,
    ):
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        settle = json.loads(base64.b64decode(resp.headers["PAYMENT-RESPONSE"]))
        assert settle["success"] is True and settle["payer"] == payer.address  # sent before the failure
        lines = resp.iter_lines()
        try:
            for line in lines:
                if line.startswith("data:"):
                    events.append(line)
                if len(events) == 2:  # the role chunk and the first word: the upstream now waits 30 s
                    up.kill()  # the provider dies mid-stream
                    up.wait(timeout=10)
        except httpx.HTTPError:
            pass  # the relay broke off its stream (no terminating chunk)
    assert len(events) == 2 and json.loads(events[1][5:])["choices"][0]["delta"]["content"] == "bees"
    assert "data: [DONE]" not in events
    pid = int(settle["extra"]["paymentId"])
    deadline = time.monotonic() + 30
    while True:
        [row] = [p for p in _payments(stack, payer.address)["payments"] if p["id"] == pid]
        if row["status"] != "accepted":
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
    assert (row["status"], row["reason"]) == ("void", "stream_failed"), row
    assert _payments(stack, payer.address)["exposure"]["unsettled"] == "0"
    settle_all(stack)  # a real settler round: the void payment is never submitted
    [row] = [p for p in _payments(stack, payer.address)["payments"] if p["id"] == pid]
    assert row["status"] == "void" and row["tx_hash"] is None
    assert token.functions.balanceOf(payer.address).call() == before
    nonce = bytes.fromhex(row["nonce"][2:])
    assert token.functions.authorizationState(payer.address, nonce).call() is False


def test_stream_that_ends_is_served_and_settled(world: tuple[X402Stack, int]) -> None:
    stack, port = world
    payer = stack.payers[2]
    token = stack.contract("RewardToken")
    before = token.functions.balanceOf(payer.address).call()
    body = _body("steady")
    headers = _paid_headers(stack, 2, body)
    with (
        upstream(port),
        httpx.Client(timeout=60) as http,
        http.stream("POST", _chat(stack), json=body, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        events = [line[5:].strip() for line in resp.iter_lines() if line.startswith("data:")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "bees make honey from nectar"
    )
    assert {c["model"] for c in chunks} == {"steady"}
    assert chunks[-1]["cairn"]["provider"] == "upstream"
    assert [d["id"] for d in chunks[-1]["cairn"]["datasets"]] == ["0x" + "ab" * 32]
    [row] = _payments(stack, payer.address)["payments"]
    assert row["status"] == "served"  # marked before the last chunk went out
    settle_all(stack)
    [row] = _payments(stack, payer.address)["payments"]
    assert row["status"] == "settled" and row["tx_hash"]
    assert token.functions.balanceOf(payer.address).call() == before - PRICE


@contextmanager
def api_process(stack: X402Stack, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A second API process (uvicorn) on the stack's chain and database, its upstreams and prices."""
    cfg = stack.settings
    ups = {k: v.model_dump(mode="json") for k, v in cfg.api_upstreams.items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(
        PYTHONPATH=str(ROOT), CAIRN_RPC_URLS=stack.anvil.url, CAIRN_DATABASE_URL=cfg.database_url,
        CAIRN_DEPLOYMENT_FILE=str(cfg.deployment_file), CAIRN_DATA_DIR=str(cfg.data_dir),
        CAIRN_CONFIRMATIONS="0", CAIRN_API_UPSTREAMS=json.dumps(ups),
        CAIRN_API_PRICES=json.dumps({k: str(v) for k, v in cfg.api_prices.items()}),
        CAIRN_API_RUN_INDEXER="false", CAIRN_API_MIGRATE="false", CAIRN_API_X402_SETTLE_IN_API="false",
        CAIRN_API_CHANNEL_CLAIM_IN_API="false", CAIRN_LOG_LEVEL="WARNING",
    )  # fmt: skip
    args = [sys.executable, "-m", "uvicorn", "--factory", "backend.api.app:create_app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_api_killed_mid_stream_leaves_a_payment_the_settler_voids_after_the_serve_timeout(
    world: tuple[X402Stack, int], tmp_path: Path
) -> None:
    """kill -9 of the API process while it streams: the payment stays `accepted` (neither served nor void);
    the settler never batches it and, once it is older than the serve timeout, voids it: never charged."""
    stack, port = world
    payer = stack.payers[0]
    token = stack.contract("RewardToken")
    before = token.functions.balanceOf(payer.address).call()
    api_port = free_port()
    chat = f"http://127.0.0.1:{api_port}/v1/chat/completions"
    body = _body("flaky")
    with upstream(port), api_process(stack, api_port, tmp_path / "api.log") as api:
        headers = _paid_headers(stack, 0, body, chat)
        events: list[str] = []
        with httpx.Client(timeout=60) as http, http.stream("POST", chat, json=body, headers=headers) as resp:
            assert resp.status_code == 200
            pid = int(json.loads(base64.b64decode(resp.headers["PAYMENT-RESPONSE"]))["extra"]["paymentId"])
            try:
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        events.append(line)
                    if len(events) == 2:
                        api.kill()  # the API process dies while serving the paid stream
                        api.wait(timeout=10)
            except httpx.HTTPError:
                pass
    assert len(events) == 2
    [row] = [p for p in _payments(stack, payer.address)["payments"] if p["id"] == pid]
    assert row["status"] == "accepted", row  # nobody marked it: its process is gone

    engine = make_engine(stack.settings.database_url)
    try:
        cfg = stack.settings.model_copy(update={"api_x402_serve_timeout_s": 1})
        settler = build_settler(cfg, connect_chain(cfg), engine)
        assert settler.round()["submitted"] == 0  # accepted, not served: never in a batch
        deadline = time.monotonic() + 30
        while store.payments(engine, settler.chain_id, payer=payer.address, status="accepted", limit=10):
            assert time.monotonic() < deadline
            time.sleep(0.5)
            settler.round()
    finally:
        engine.dispose()
    [row] = [p for p in _payments(stack, payer.address)["payments"] if p["id"] == pid]
    assert (row["status"], row["reason"], row["tx_hash"]) == ("void", "not_served_in_time", None), row
    assert _payments(stack, payer.address)["exposure"]["unsettled"] == "0"
    assert token.functions.balanceOf(payer.address).call() == before
    nonce = bytes.fromhex(row["nonce"][2:])
    assert token.functions.authorizationState(payer.address, nonce).call() is False
