"""The official x402 JavaScript client (`@x402/fetch`, `@x402/core`, `@x402/evm` 2.27, unmodified, pinned in
package.json) pays the real `POST /v1/chat/completions` on the agent stack (anvil, every contract, a model
trained by `cairn train`, the real API on uvicorn with its settler): tests/support/x402_js_client.mjs is the
README's JavaScript snippet, run with node; the answer names its datasets, PAYMENT-RESPONSE says success for
the payer, the payment is recorded and the API's settler settles it on chain."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.agent_stack import NAME, PRICE, ROOT, Loop, agent_stack
from web3.logs import DISCARD

from backend.inference.training import model_id_of

SCRIPT = ROOT / "tests" / "support" / "x402_js_client.mjs"
QUESTION = "How does the indexer detect and roll back a reorg?"


def _node() -> str:
    """The node of the npm lock (the `node` package's binary) when installed, else the one on PATH."""
    pinned = ROOT / "node_modules" / ".bin" / "node"
    found = str(pinned) if pinned.exists() else shutil.which("node")
    assert found, "node is not installed (make install)"
    return found


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    assert (ROOT / "node_modules" / "@x402" / "fetch").is_dir(), "npm packages missing (make install)"
    with agent_stack(tmp_path_factory.mktemp("jsagent")) as stack:
        yield stack


def run_js_client(loop: Loop, key: str, max_amount: int, prompt: str) -> subprocess.CompletedProcess[str]:
    args = [_node(), str(SCRIPT), loop.url, key, str(loop.w3.eth.chain_id), loop.token, str(max_amount),
            NAME, prompt]  # fmt: skip
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _payment(loop: Loop, pid: int) -> dict[str, Any]:
    r = httpx.get(f"{loop.url}/v1/payments/{pid}", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_official_js_client_pays_a_completion_that_is_settled_later(loop: Loop) -> None:
    done = run_js_client(loop, "0x" + loop.payer.key.hex().removeprefix("0x"), PRICE, QUESTION)
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout)
    assert out["status"] == 200, out
    body = out["body"]
    assert body["choices"][0]["message"]["content"]
    assert body["cairn"]["model_id"] == model_id_of(NAME)
    datasets = body["cairn"]["datasets"]
    assert datasets and {d["id"] for d in datasets} <= set(loop.owners)
    settle = out["paymentResponse"]
    assert settle["success"] is True and settle["payer"] == loop.payer.address
    assert settle["network"] == loop.network and settle["amount"] == str(PRICE)
    pid = int(settle["extra"]["paymentId"])
    row = _payment(loop, pid)
    assert row["payer"] == loop.payer.address.lower() and row["amount"] == str(PRICE)
    assert row["model_id"] == model_id_of(NAME)

    deadline = time.monotonic() + 60  # the API's own settler (every 0.5 s here)
    while row["status"] != "settled":
        assert row["status"] in ("accepted", "served", "settling"), row
        assert time.monotonic() < deadline, row
        time.sleep(0.2)
        row = _payment(loop, pid)
    receipt = loop.w3.eth.get_transaction_receipt(row["tx_hash"])
    router = loop.dep.contract(loop.w3, "PaymentRouter")
    [ev] = router.events.PaymentSettled().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["payer"] == loop.payer.address and ev["args"]["amount"] == PRICE
    assert "0x" + bytes(ev["args"]["requestHash"]).hex() == row["nonce"]


def test_official_js_client_spend_cap_below_the_price_pays_nothing(loop: Loop) -> None:
    def count() -> int:
        r = httpx.get(f"{loop.url}/v1/payments", params={"payer": loop.payer.address}, timeout=10)
        assert r.status_code == 200, r.text
        return len(r.json()["payments"])

    before = count()
    done = run_js_client(loop, "0x" + loop.payer.key.hex().removeprefix("0x"), PRICE - 1, QUESTION)
    assert done.returncode != 0 and not done.stdout, done.stdout  # the client refused: no payment sent
    assert count() == before
