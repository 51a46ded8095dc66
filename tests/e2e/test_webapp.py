"""The web app in a real browser (Debian Chromium via Playwright) with an injected EIP-6963 test wallet
backed by an anvil key, against a real stack: anvil, the deployed contracts, seeded events and rewards, the
API under uvicorn with its relayer, outbox and indexer running (SQLite).

Screenshots of each view land in `.cairn/screenshots/` (tests/support/browser.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from support.api_stack import (
    CHALLENGE_DELAY,
    EPOCH_LENGTH,
    Stack,
    deploy,
    h32,
    seed,
    seed_rewards,
    travel_to,
    write_allocation,
)
from support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    WALLET_NAME,
    TestWallet,
    install_wallet,
    screenshot,
)
from support.uvicorn_thread import serve
from web3 import Web3

from backend.api.app import create_app
from backend.api.settings import ApiSettings
from cairn.cli.devchain import free_port, start_anvil
from cairn.core.policy import POLICY_DIR
from cairn.core.registration import dataset_calls
from cairn.core.settings import ANVIL_DEV_KEYS, REPO_ROOT

VALIDITY_S = 3600  # web/src/views/contribute.ts VALIDITY_S
WALLET_KEY = ANVIL_DEV_KEYS[7]  # not used by the seeded history


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """A seeded stack of its own (this module registers datasets), served with the indexer in-process."""
    tmp = tmp_path_factory.mktemp("web")
    with start_anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        admin = Account.from_key(ANVIL_DEV_KEYS[0])
        dep = deploy(w3, admin, tmp)
        port = free_port()
        settings = ApiSettings(
            rpc_urls=[anvil.url],
            database_url=f"sqlite:///{tmp}/web.db",
            deployment_file=tmp / "deployment.json",
            data_dir=tmp / "data",
            confirmations=0,
            finality="confirmations",
            api_siwe_origins=f"http://127.0.0.1:{port}",  # the page's origin: SIWE messages name it
        )
        stack = Stack(
            anvil, w3, dep, settings, tmp, admin,
            validators=[Account.from_key(k) for k in ANVIL_DEV_KEYS[2:4]],
            owners=[Account.from_key(k) for k in ANVIL_DEV_KEYS[4:6]],
            payer=Account.from_key(ANVIL_DEV_KEYS[6]),
        )  # fmt: skip
        seed(stack)
        seed_rewards(stack)
        stack.index()
        with serve(create_app(settings, run_indexer=True), port) as url:
            yield stack, url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("chromium missing: run scripts/ensure-chromium.sh (make test does)")
    bundle = Path(__file__).resolve().parents[2] / "backend" / "api" / "static" / "app.js"
    if not bundle.exists():
        pytest.fail("the web app bundle is missing: run `make build` (node scripts/build-web.mjs)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def open_app(
    browser: Any,
    url: str,
    wallet: TestWallet,
    view: str = "overview",
    *,
    eip6963: bool = True,
    **context: Any,
) -> tuple[Any, list[str]]:
    page = browser.new_context(**context).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    install_wallet(page, wallet, eip6963=eip6963)
    page.goto(f"{url}/#/{view}")
    from playwright.sync_api import expect

    expect(page.locator("body[data-loaded=true]")).to_be_attached()
    return page, errors


def connect(page: Any, name: str = WALLET_NAME) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Connect wallet").click()
    page.get_by_role("button", name=name).click()
    expect(page.get_by_test_id("wallet-account")).not_to_be_empty()


def tokens_text(wei: int) -> str:
    """What web/src/lib/format.ts `tokens` shows: whole tokens, then the significant decimals."""
    whole, frac = divmod(wei, 10**18)
    return f"{whole}.{str(frac).rjust(18, '0').rstrip('0')}" if frac else str(whole)


def make_wallet(stack: Stack, chain_id: int = 31337) -> TestWallet:
    return TestWallet(Account.from_key(WALLET_KEY), stack.anvil.url, chain_id)


def test_connect_wrong_network_and_switch(web: tuple[Stack, str], browser: Any) -> None:
    from playwright.sync_api import expect

    stack, url = web
    wallet = make_wallet(stack, chain_id=1)  # the wallet starts on another network
    page, errors = open_app(browser, url, wallet)
    connect(page)
    address = wallet.account.address
    expect(page.get_by_test_id("wallet-account")).to_have_attribute("title", address)
    warning = page.locator("#network-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(
        "Wrong network: your wallet is on chain 1, this Cairn deployment runs on chain 31337."
    )
    expect(page.locator("body")).to_have_attribute("data-wallet", "wrong-network")
    screenshot(page, "wrong-network")
    # signing on the wrong chain is refused by the app before the wallet is asked
    page.get_by_role("link", name="Contribute").click()
    page.wait_for_function("document.body.dataset.view === 'contribute'")
    page.set_input_files("#file-input", files=[{"name": "a.txt", "mimeType": "text/plain", "buffer": b"abc"}])
    expect(page.get_by_test_id("file-hash")).to_have_text("0x" + hashlib.sha256(b"abc").hexdigest())
    page.get_by_role("button", name="Sign and register").click()
    expect(page.locator("#register-error")).to_have_text(
        "Your wallet is on chain 1, but this Cairn deployment runs on chain 31337. "
        "Switch the network to continue."
    )
    assert "eth_signTypedData_v4" not in wallet.calls
    # the person refuses the switch in the wallet: a clear message, still on the wrong network
    wallet.reject_switch = True
    page.get_by_role("button", name="Switch network").click()
    expect(page.locator("#wallet-error")).to_have_text(
        "You rejected the request in your wallet: nothing was signed or sent."
    )
    expect(warning).to_be_visible()
    # then accepts it: wallet_switchEthereumChain to the deployment's chain (from the API's /health)
    wallet.reject_switch = False
    page.get_by_role("button", name="Switch network").click()
    expect(warning).to_be_hidden()
    expect(page.locator("#wallet-error")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-wallet", "connected")
    assert wallet.chain_id == 31337
    # disconnect forgets the account
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("button", name="Connect wallet")).to_be_visible()
    assert errors == []


def test_register_dataset_from_a_file(web: tuple[Stack, str], browser: Any) -> None:
    from playwright.sync_api import expect

    stack, url = web
    wallet = make_wallet(stack)
    page, errors = open_app(browser, url, wallet, view="contribute")
    posted: list[int] = []
    page.on("request", lambda req: posted.append(len(req.post_data_buffer or b"")))
    expect(page.locator("#contribute-needs-wallet")).to_be_visible()
    connect(page)
    expect(page.locator("#contribute-needs-wallet")).to_be_hidden()
    expect(page.locator("#my-contributions-empty")).to_have_text("No dataset registered by this account yet.")
    data = os.urandom(3 * 1024 * 1024 + 17)  # hashed in chunks, with progress
    digest = "0x" + hashlib.sha256(data).hexdigest()
    page.get_by_label("Drop a file here, or choose one").set_input_files(
        files=[{"name": "corpus.bin", "mimeType": "application/octet-stream", "buffer": data}]
    )
    expect(page.get_by_test_id("file-hash")).to_have_text(digest)
    expect(page.locator("#hash-progress")).to_have_attribute("value", "100")
    expect(page.locator("#hash-status")).to_contain_text("Hashed 3.0 MiB")
    page.get_by_label("Where the data can be fetched (URI)").fill("ipfs://corpus-web")
    page.get_by_label("Licence id").fill("3")
    page.get_by_role("button", name="Sign and register").click()
    expect(page.locator("#step-sign")).to_have_attribute("data-state", "done")
    expect(page.locator("#step-reveal")).to_have_attribute("data-state", "done", timeout=60_000)
    expect(page.locator("#step-indexed")).to_have_attribute("data-state", "done", timeout=60_000)
    expect(page.locator("#step-attested")).to_have_attribute("data-state", "active")
    # the signature: EIP-712 RegisterDataset over the file's hash and size, deadline from the chain's clock
    [signed] = [s for s in wallet.signed if s["method"] == "eth_signTypedData_v4"]
    typed = signed["typed"]
    assert typed["primaryType"] == "RegisterDataset"
    assert typed["domain"]["name"] == "Cairn ContributionRegistry"
    assert int(typed["domain"]["chainId"]) == 31337
    message = typed["message"]
    assert message["dataset"]["contentHash"] == digest and int(message["dataset"]["size"]) == len(data)
    assert message["dataset"]["uri"] == "ipfs://corpus-web" and int(message["dataset"]["licenseId"]) == 3
    deadline = int(message["deadline"])
    # seeded history moved the chain's clock past two epochs: a wall-clock deadline would be far earlier
    assert deadline - VALIDITY_S >= stack.deployment.epoch.genesis + 2 * EPOCH_LENGTH
    assert deadline - VALIDITY_S > time.time() + 3600
    assert deadline <= int(stack.w3.eth.get_block("latest")["timestamp"]) + VALIDITY_S
    # on chain, owned by the wallet's account (the relayer paid the gas)
    with urllib.request.urlopen(f"{url}/v1/datasets/{digest}") as resp:
        ds = json.loads(resp.read())
    assert ds["owner"] == wallet.account.address and ds["size"] == len(data)
    assert "eth_sendTransaction" not in wallet.calls
    assert max(posted) < 4096, posted  # the file itself was never sent anywhere
    row = page.locator(f'#my-contributions-body tr[data-content-hash="{digest}"]')
    expect(row).to_contain_text("ipfs://corpus-web")
    expect(row).to_contain_text("not yet")
    # a validator attests on chain; the indexer mirrors it and the page follows it to "attested"
    registry = stack.contract("ContributionRegistry")
    stack.transact(stack.validators[0], registry.functions.attest(digest, 7000))
    expect(page.locator("#step-attested")).to_have_attribute("data-state", "done", timeout=60_000)
    expect(page.locator("#step-attested")).to_contain_text("Attested by 1 validator(s), median score 7000")
    expect(row).to_contain_text("1 (median 7000)")
    screenshot(page, "contribute")
    # the same file again: the page finds it registered and asks for no signature
    page.get_by_role("button", name="Sign and register").click()
    expect(page.locator("#register-error")).to_have_text(
        f"This file is already registered, by {wallet.account.address} in block {ds['block_number']}: "
        "nothing to sign."
    )
    assert [s["method"] for s in wallet.signed] == ["eth_signTypedData_v4"]
    assert errors == []


def test_rejected_signature_is_explained(web: tuple[Stack, str], browser: Any) -> None:
    from playwright.sync_api import expect

    stack, url = web
    wallet = make_wallet(stack)
    wallet.reject_signatures = True
    page, errors = open_app(browser, url, wallet, view="contribute")
    connect(page)
    # drop a file on the drop zone (a real DataTransfer carrying a File)
    page.evaluate(
        """() => {
          const dt = new DataTransfer();
          const bytes = new TextEncoder().encode("dropped bytes");
          dt.items.add(new File([bytes], "dropped.txt", { type: "text/plain" }));
          const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true });
          document.getElementById("dropzone").dispatchEvent(drop);
        }"""
    )
    expect(page.get_by_test_id("file-hash")).to_have_text("0x" + hashlib.sha256(b"dropped bytes").hexdigest())
    page.get_by_label("Where the data can be fetched (URI)").fill("ipfs://refused")
    page.get_by_role("button", name="Sign and register").click()
    expect(page.locator("#register-error")).to_have_text(
        "You rejected the request in your wallet: nothing was signed or sent."
    )
    expect(page.locator("#step-sign")).to_have_attribute("data-state", "failed")
    expect(page.locator("#relay-id")).to_have_text("—")
    expect(page.get_by_role("button", name="Sign and register")).to_be_enabled()
    assert "eth_signTypedData_v4" in wallet.calls
    screenshot(page, "rejected-signature")
    # an API refusal shows the API's own detail (problem+json): a malformed metadata hash is caught first
    wallet.reject_signatures = False
    page.get_by_label("Metadata hash (optional, bytes32)").fill("0x12")
    page.get_by_role("button", name="Sign and register").click()
    expect(page.locator("#register-error")).to_have_text(
        "The metadata hash must be 0x followed by 64 hex digits (or empty)."
    )
    assert errors == []


def test_auditor_shows_epochs_and_lorenz_curve(web: tuple[Stack, str], browser: Any) -> None:
    from playwright.sync_api import expect

    stack, url = web
    page, errors = open_app(browser, url, make_wallet(stack), view="auditor")  # no wallet needed
    rows = page.locator("#audit-epochs-body tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("pending")
    expect(rows.nth(1)).to_contain_text("accepted")
    epoch0 = page.locator('#audit-epochs-body tr[data-epoch="0"]')
    tree0 = stack.seeded["tree0"]
    expect(epoch0.locator("td").nth(2)).to_have_attribute("title", tree0.root)
    expect(epoch0.locator("td").nth(3).locator("a")).to_have_attribute("title", stack.seeded["policy_hash"])
    expect(epoch0.locator("td").nth(5)).to_have_text("4")  # total cumulative: 4 tokens
    # the newest epoch with an allocation is shown first: one recipient, perfectly unequal... and equal
    expect(page.get_by_test_id("audit-gini")).to_have_text("0.000")
    expect(page.locator("#audit-recipients")).to_have_text("1")
    # epoch 0: 3 and 1 tokens -> Gini = ((2-3)*1 + (4-3)*3) / (2*4) = 0.25
    page.get_by_role("button", name="Lorenz curve of epoch 0").click()
    expect(page.locator("#audit-detail-title")).to_have_text("Epoch 0: rewards distribution")
    expect(page.get_by_test_id("audit-gini")).to_have_text("0.250")
    expect(page.locator("#audit-recipients")).to_have_text("2")
    expect(page.locator("#audit-epoch-total")).to_have_text(f"4 ({4 * 10**18} wei)")
    # the Gini shown is the API's (GET /v1/epochs/0/distribution): no allocation file downloaded for it
    with urllib.request.urlopen(url + "/v1/epochs/0/distribution") as resp:
        api = json.loads(resp.read())
    expect(page.get_by_test_id("audit-gini")).to_have_attribute("data-gini", str(api["gini"]))
    verdict = page.get_by_test_id("audit-tree-verdict")
    expect(verdict).to_have_text("not checked yet")
    # on demand, the browser re-hashes the file's tree (OpenZeppelin standard-v1) against the on-chain root
    page.get_by_role("button", name="Verify the tree in this browser (downloads the file)").click()
    expect(verdict).to_have_attribute("data-verdict", "verified")
    expect(verdict).to_have_text(
        f"Verified in this browser: the file's 2 leaves (cumulative 4 tokens) hash to {tree0.root}, "
        "the root on chain."
    )
    chart = page.locator("#lorenz-chart")
    expect(chart).to_have_attribute(
        "aria-label", "Lorenz curve of epoch 0 rewards over 2 recipients, Gini coefficient 0.250"
    )
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("data-points", "101")
    # the download is the content-addressed allocation file published with the root
    href = page.locator("#audit-download").get_attribute("href")
    assert href is not None and href.endswith(stack.seeded["uri0"].split("/")[-1])
    with urllib.request.urlopen(url + href) as resp:
        body = resp.read()
    assert json.loads(body)["root"] == tree0.root
    assert "0x" + Web3.keccak(body).hex().removeprefix("0x") in href
    screenshot(page, "auditor")
    assert errors == []


def test_phone_width_and_labels(web: tuple[Stack, str], browser: Any) -> None:
    stack, url = web
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
    page, errors = open_app(browser, url, make_wallet(stack), view="contribute", **phone)
    for view in ("contribute", "validate", "agent", "auditor", "overview"):
        page.goto(f"{url}/#/{view}")
        page.wait_for_function(f"document.body.dataset.view === '{view}'")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (view, overflow)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll("input, button, select, textarea")]
                 .filter((e) => e.offsetParent !== null)
                 .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                                && !(e.textContent || "").trim())
                 .map((e) => e.id || e.outerHTML)"""
        )
        assert unlabelled == [], (view, unlabelled)
        screenshot(page, f"phone-{view}")
    # keyboard only: Tab reaches the wallet button, Enter opens the wallet list
    page.goto(f"{url}/#/contribute")
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused in {"Overview", "Contribute", "Agent", "Auditor", "Connect wallet"}
    assert errors == []


def test_a_wallet_without_eip6963_is_found_through_window_ethereum(
    web: tuple[Stack, str], browser: Any
) -> None:
    from playwright.sync_api import expect

    stack, url = web
    wallet = make_wallet(stack)
    page, errors = open_app(browser, url, wallet, eip6963=False)
    connect(page, name="Browser wallet")
    expect(page.get_by_test_id("wallet-account")).to_have_attribute("title", wallet.account.address)
    expect(page.locator("body")).to_have_attribute("data-wallet", "connected")
    assert errors == []


def test_no_wallet_at_all_is_explained(web: tuple[Stack, str], browser: Any) -> None:
    from playwright.sync_api import expect

    _, url = web
    page = browser.new_page()  # no wallet injected
    page.goto(f"{url}/#/contribute")
    expect(page.locator("body[data-loaded=true]")).to_be_attached()
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator("#wallet-error")).to_have_text(
        "No browser wallet found. Install an Ethereum wallet extension (EIP-6963), then reload."
    )
    # the read-only views still work
    page.get_by_role("link", name="Auditor").click()
    expect(page.locator("#audit-epochs-body tr")).to_have_count(2)


def test_claim_with_one_click(web: tuple[Stack, str], browser: Any) -> None:
    from playwright.sync_api import expect

    stack, url = web
    owner = stack.owners[1]  # 1 token in epoch 0 (accepted), never claimed; epoch 1's root still waits
    wallet = TestWallet(owner, stack.anvil.url, 31337)
    token = stack.contract("RewardToken")
    before = int(token.functions.balanceOf(owner.address).call())
    page, errors = open_app(browser, url, wallet, view="contribute")
    connect(page)
    expect(page.locator("#rewards-claimable")).to_have_text(f"1 ({10**18} wei)")
    expect(page.get_by_test_id("rewards-balance")).to_have_attribute("data-wei", str(before))
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#claim-status")).to_contain_text("Claimed 1 tokens in block", timeout=60_000)
    after = int(token.functions.balanceOf(owner.address).call())
    assert after - before == 10**18
    expect(page.get_by_test_id("rewards-balance")).to_have_attribute("data-wei", str(after))
    assert "eth_sendTransaction" in wallet.calls
    # once the indexer has mirrored the claim, the API's account view agrees
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/v1/accounts/{owner.address}") as resp:
            if json.loads(resp.read())["rewards"]["claimed"] == str(10**18):
                break
        time.sleep(0.2)
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("link", name="Contribute").click()
    expect(page.locator("#rewards-claimed")).to_have_text(f"1 ({10**18} wei)")
    expect(page.locator("#rewards-claimable")).to_have_text("0 (0 wei)")
    expect(page.get_by_role("button", name="Claim")).to_be_disabled()
    screenshot(page, "claim")
    assert errors == []


def test_sign_in_with_ethereum(web: tuple[Stack, str], browser: Any) -> None:
    """SIWE through the API's /v1/auth routes: the wallet signs the EIP-4361 message naming the page's origin
    (one of CAIRN_API_SIWE_ORIGINS), the server sets an httpOnly cookie that /v1/auth/session honours and
    that survives a reload; sign-out ends the session on the server."""
    from playwright.sync_api import expect

    stack, url = web
    wallet = make_wallet(stack)
    page, errors = open_app(browser, url, wallet)
    connect(page)
    page.get_by_role("button", name="Sign in").click()
    address = wallet.account.address
    expect(page.get_by_test_id("session-status")).to_have_text(f"Signed in as {address[:8]}…{address[-6:]}")
    [signed] = [s for s in wallet.signed if s["method"] == "personal_sign"]
    message = signed["message"]
    host = url.removeprefix("http://")
    assert message.startswith(f"{host} wants you to sign in with your Ethereum account:\n{address}\n")
    assert "\nChain ID: 31337\n" in message and "\nNonce: " in message and f"\nURI: {url}" in message
    assert f"\nURI: {url}\n" in message and "\nExpiration Time: " in message
    [cookie] = [c for c in page.context.cookies() if c["httpOnly"]]
    assert cookie["sameSite"] == "Strict"
    session = page.evaluate("fetch('/v1/auth/session').then(r => r.json())")
    assert session["address"] == address and session["kind"] == "cookie"
    # the cookie outlives a reload: connecting again finds the session without a new signature
    page.reload()
    connect(page)
    expect(page.get_by_test_id("session-status")).to_have_text(f"Signed in as {address[:8]}…{address[-6:]}")
    assert [c["method"] for c in wallet.signed].count("personal_sign") == 1
    screenshot(page, "signin")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("session-status")).to_have_text("")
    status = page.evaluate("fetch('/v1/auth/session').then(r => r.status)")
    assert status == 401
    assert errors == []


def test_sign_in_refused_by_the_wallet_or_the_server_is_explained(
    web: tuple[Stack, str], browser: Any
) -> None:
    """A sign-in the person rejects in the wallet, and one from an origin the server does not accept
    (CAIRN_API_SIWE_ORIGINS names http://127.0.0.1:<port>, the page is opened as localhost), each show a
    sentence; no session is opened."""
    from playwright.sync_api import expect

    stack, url = web
    wallet = make_wallet(stack)
    wallet.reject_signatures = True
    page, errors = open_app(browser, url, wallet)
    connect(page)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#wallet-error")).to_have_text(
        "You rejected the request in your wallet: nothing was signed or sent."
    )
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("session-status")).to_have_text("")
    page.close()
    other = url.replace("127.0.0.1", "localhost")
    wallet = make_wallet(stack)
    page, errors2 = open_app(browser, other, wallet)
    connect(page)
    page.get_by_role("button", name="Sign in").click()
    host = other.removeprefix("http://")
    expect(page.locator("#wallet-error")).to_have_text(
        f"the message asks to sign in to '{host}'; this server is '{url.removeprefix('http://')}'"
    )
    assert [s["method"] for s in wallet.signed] == ["personal_sign"]  # signed, then refused by the server
    assert not [c for c in page.context.cookies() if c["httpOnly"]]
    screenshot(page, "signin-refused")
    assert errors == [] and errors2 == []


def test_validator_scores_a_dataset_from_the_wallet(web: tuple[Stack, str], browser: Any) -> None:
    from playwright.sync_api import expect

    stack, url = web
    # an account without VALIDATOR_ROLE is told so and cannot attest
    page, errors = open_app(browser, url, make_wallet(stack), view="validate")
    connect(page)
    expect(page.locator("#review-role")).to_contain_text("does not hold VALIDATOR_ROLE")
    target = stack.seeded["datasets"][2]  # ipfs://d2, owner 1, not scored yet
    expect(page.get_by_role("button", name=f"Attest dataset {target}")).to_be_disabled()
    page.close()
    validator = stack.validators[1]
    wallet = TestWallet(validator, stack.anvil.url, 31337)
    page, errors = open_app(browser, url, wallet, view="validate")
    connect(page)
    expect(page.locator("#review-role")).to_contain_text("holds VALIDATOR_ROLE")
    # the review queue (/v1/validators/{address}/queue): what this validator has not attested yet
    queued = page.locator(f'#queue-body tr[data-contribution-id="{target}"]')
    expect(queued).to_contain_text("ipfs://d2")
    expect(queued.locator("td").nth(4)).to_have_text("0")
    expect(queued.locator("td").nth(5)).to_have_text("not in the store")
    d0 = stack.seeded["datasets"][0]  # attested by this validator already (6000)
    expect(page.locator(f'#queue-body tr[data-contribution-id="{d0}"]')).to_have_count(0)
    row = page.locator(f'#review-body tr[data-content-hash="{target}"]')
    expect(row).to_contain_text("ipfs://d2")
    expect(row.locator("td").nth(3)).to_have_text("none")
    page.get_by_label(f"Score for dataset {target}").fill("10001")
    page.get_by_role("button", name=f"Attest dataset {target}").click()
    expect(row).to_contain_text("A score is a whole number from 0 to 10000.")
    page.get_by_label(f"Score for dataset {target}").fill("8000")
    page.get_by_role("button", name=f"Attest dataset {target}").click()
    expect(row.locator("td").nth(4)).to_have_text("8000", timeout=30_000)
    expect(row.locator("td").nth(3)).to_have_text("1 (median 8000)")
    with urllib.request.urlopen(f"{url}/v1/contributions/{target}") as resp:
        atts = json.loads(resp.read())["attestations"]
    assert [(a["validator"], a["score"]) for a in atts] == [(validator.address, 8000)]
    expect(queued).to_have_count(0)  # reviewed: out of the queue
    screenshot(page, "validate")
    assert errors == []


def test_rewards_per_epoch_chart(web: tuple[Stack, str], browser: Any) -> None:
    from playwright.sync_api import expect

    stack, url = web
    owner = stack.owners[0]  # cumulative 3 tokens after epoch 0, 5 after epoch 1 (pending root)
    page, errors = open_app(browser, url, TestWallet(owner, stack.anvil.url, 31337), view="contribute")
    connect(page)
    chart = page.locator("#rewards-chart")
    expect(chart).to_have_attribute("data-series", "0:3,1:2")
    expect(chart).to_have_attribute("aria-label", "Rewards per epoch: epoch 0 3 tokens, epoch 1 2 tokens")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(page.locator("#rewards-claimable")).to_have_text(f"2 ({2 * 10**18} wei)")
    # epoch 1's root still waits out its challenge delay and epoch 0's is claimed: nothing to claim now
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#rewards-error")).to_have_text(
        "Nothing can be claimed now: the newest root is still in its challenge delay."
    )
    assert errors == []


def sign_in(page: Any, address: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("session-status")).to_have_text(f"Signed in as {address[:8]}…{address[-6:]}")


def test_signed_in_contributor_uses_me_views_and_uploads(web: tuple[Stack, str], browser: Any) -> None:
    """Signed in, the contributor view reads /v1/me/rewards (one request, no proof per epoch) and
    /v1/me/contributions (attestation status with quorum); a registration can upload the file to the content
    store once the relayer accepted it, and the store then serves the same bytes."""
    from playwright.sync_api import expect

    stack, url = web
    owner = stack.owners[0]  # cumulative 3 tokens after epoch 0 (claimed), 5 after epoch 1 (pending root)
    wallet = TestWallet(owner, stack.anvil.url, 31337)
    page, errors = open_app(browser, url, wallet, view="contribute")
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    connect(page)
    expect(page.locator("#rewards-panel")).to_have_attribute("data-source", "public")
    before = len(requested)
    sign_in(page, owner.address)
    expect(page.locator("#rewards-panel")).to_have_attribute("data-source", "me")
    chart = page.locator("#rewards-chart")
    expect(chart).to_have_attribute("data-series", "0:3,1:2")
    expect(chart.locator("canvas")).to_have_count(1)
    # claimable now: under epoch 0's root (the newest past its challenge delay), all claimed already
    expect(page.locator("#rewards-claimable")).to_have_text("0 (0 wei)")
    expect(page.get_by_role("button", name="Claim")).to_be_disabled()
    body = page.locator("#my-contributions-body")
    expect(body).to_have_attribute("data-source", "me")
    d0 = stack.seeded["datasets"][0]  # attested 9000 and 6000 by two validators; the API's policy wants 3
    expect(body.locator(f'tr[data-content-hash="{d0}"]')).to_contain_text(
        "2 (median 7500); quorum not met (2 of 3)"
    )
    after = [u for u in requested[before:] if "/v1/" in u]
    assert any(u.endswith("/v1/me/rewards") for u in after)
    assert any("/v1/me/contributions" in u for u in after)
    assert not any("/proofs/" in u for u in after), after
    # register with the upload box ticked
    data = os.urandom(256 * 1024 + 3)
    digest = "0x" + hashlib.sha256(data).hexdigest()
    page.get_by_label("Drop a file here, or choose one").set_input_files(
        files=[{"name": "shard.bin", "mimeType": "application/octet-stream", "buffer": data}]
    )
    expect(page.get_by_test_id("file-hash")).to_have_text(digest)
    page.get_by_label("Where the data can be fetched (URI)").fill(f"{url}/v1/content/{digest}")
    page.get_by_label("Also upload the file to this server's content store").check()
    page.get_by_role("button", name="Sign and register").click()
    expect(page.locator("#step-upload")).to_have_attribute("data-state", "done", timeout=60_000)
    expect(page.locator("#step-upload")).to_contain_text("Stored: 256.0 KiB")
    expect(page.locator("#step-indexed")).to_have_attribute("data-state", "done", timeout=60_000)
    with urllib.request.urlopen(f"{url}/v1/content/{digest}") as resp:
        assert resp.read() == data
    row = body.locator(f'tr[data-content-hash="{digest}"]')
    expect(row).to_contain_text("not yet; quorum not met (0 of")
    screenshot(page, "contribute-signed-in")
    # a validator's queue links the uploaded content, and the link serves the bytes
    reviewer = TestWallet(stack.validators[0], stack.anvil.url, 31337)
    review, review_errors = open_app(browser, url, reviewer, view="validate")
    connect(review)
    queued = review.locator(f'#queue-body tr[data-contribution-id="{digest}"]')
    link = queued.get_by_role("link", name="download")
    expect(link).to_have_attribute("href", f"/v1/content/{digest}")
    with review.expect_download() as got:
        link.click()
    assert Path(got.value.path()).read_bytes() == data
    assert review_errors == []
    assert errors == []


CONTRIBUTIONS_PAGE = 20  # web/src/views/contribute.ts CONTRIBUTIONS_PAGE


def test_signed_in_contributor_list_follows_next_cursor(tmp_path: Path, browser: Any) -> None:
    """An account with more datasets than one page (registered in one `registerDatasets`, so they share a
    block): the contributor view shows the first page, and "Load more contributions" follows the API's
    `next_cursor` until every dataset is listed once: the public `GET /v1/datasets?owner=` before sign-in,
    then `GET /v1/me/contributions` signed in."""
    from playwright.sync_api import expect

    from cairn.core.registration import dataset_list_calls

    count = CONTRIBUTIONS_PAGE + 3
    with start_anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        admin = Account.from_key(ANVIL_DEV_KEYS[0])
        dep = deploy(w3, admin, tmp_path)
        port = free_port()
        settings = ApiSettings(
            rpc_urls=[anvil.url], database_url=f"sqlite:///{tmp_path}/pages.db",
            deployment_file=tmp_path / "deployment.json", data_dir=tmp_path / "data", confirmations=0,
            finality="confirmations", api_siwe_origins=f"http://127.0.0.1:{port}",
        )  # fmt: skip
        owner = Account.from_key(ANVIL_DEV_KEYS[4])
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, validators=[], owners=[owner], payer=owner)
        hashes = [h32(f"paged-{i}") for i in range(count)]
        items = [(h, 1024 + i, 1, h32("meta"), f"ipfs://paged-{i}") for i, h in enumerate(hashes)]
        for step in dataset_list_calls(stack.contract("ContributionRegistry"), owner.address, items):
            stack.transact(owner, step)
        with serve(create_app(settings, run_indexer=True), port) as url:
            page, errors = open_app(browser, url, TestWallet(owner, anvil.url, 31337), view="contribute")
            requested: list[str] = []
            page.on("request", lambda req: requested.append(req.url))
            connect(page)
            body = page.locator("#my-contributions-body")
            more = page.get_by_role("button", name="Load more contributions")
            # connected, not signed in: the public pages of GET /v1/datasets?owner= are followed the same way
            expect(body).to_have_attribute("data-source", "public", timeout=60_000)
            expect(body.locator("tr")).to_have_count(CONTRIBUTIONS_PAGE, timeout=60_000)
            more.click()
            expect(body.locator("tr")).to_have_count(count)
            expect(more).to_be_hidden()
            public = [body.locator("tr").nth(i).get_attribute("data-content-hash") for i in range(count)]
            assert sorted(public) == sorted(hashes), public
            assert any("/v1/datasets?" in u and "cursor=" in u for u in requested), requested
            sign_in(page, owner.address)
            expect(body).to_have_attribute("data-source", "me")
            expect(body.locator("tr")).to_have_count(CONTRIBUTIONS_PAGE, timeout=60_000)
            expect(more).to_be_visible()
            more.click()
            expect(body.locator("tr")).to_have_count(count)
            expect(more).to_be_hidden()
            shown = [body.locator("tr").nth(i).get_attribute("data-content-hash") for i in range(count)]
            assert sorted(shown) == sorted(hashes), shown  # each once
            pages = [u for u in requested if "/v1/me/contributions" in u]
            assert any("cursor=" in u for u in pages), pages
            screenshot(page, "contribute-paged")
            assert errors == []


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """A stack whose epochs the rewards engine closes (through the operator API): one dataset of
    `owners[0]` attested by two validators (the operator policy's quorum is 2), emission funded, nothing
    published yet."""
    tmp = tmp_path_factory.mktemp("fresh")
    with start_anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        admin = Account.from_key(ANVIL_DEV_KEYS[0])
        dep = deploy(w3, admin, tmp)
        policy = json.loads((POLICY_DIR / "v1.json").read_text())
        policy["attestation"]["quorum"] = 2
        (tmp / "policy.json").write_text(json.dumps(policy))
        port = free_port()
        settings = ApiSettings(
            rpc_urls=[anvil.url],
            database_url=f"sqlite:///{tmp}/fresh.db",
            deployment_file=tmp / "deployment.json",
            data_dir=tmp / "data",
            confirmations=0,
            finality="confirmations",
            api_siwe_origins=f"http://127.0.0.1:{port}",
            api_operator_policy=str(tmp / "policy.json"),
        )
        stack = Stack(
            anvil, w3, dep, settings, tmp, admin,
            validators=[Account.from_key(k) for k in ANVIL_DEV_KEYS[2:4]],
            owners=[Account.from_key(k) for k in ANVIL_DEV_KEYS[4:6]],
            payer=Account.from_key(ANVIL_DEV_KEYS[6]),
        )  # fmt: skip
        registry, dist = stack.contract("ContributionRegistry"), stack.contract("RewardDistributor")
        role = registry.functions.VALIDATOR_ROLE().call()
        content = h32("fresh-dataset")
        owner = stack.owners[0]
        for step in dataset_calls(registry, owner.address, content, 4096, 1, h32("meta"), "ipfs://fresh"):
            stack.transact(owner, step)
        for v, score in zip(stack.validators, (7000, 9000), strict=True):
            stack.transact(admin, registry.functions.grantRole(role, v.address))
            stack.transact(v, registry.functions.attest(content, score))
        stack.transact(admin, dist.functions.fundEmission(0))
        stack.seeded.update(content=content)
        with serve(create_app(settings, run_indexer=True), port) as url:
            yield stack, url


def operator_key(stack: Stack, *scopes: str) -> str:
    """`cairn apikey create` against the stack's database: the key is printed once, on stdout."""
    env = dict(os.environ, CAIRN_DATABASE_URL=stack.settings.database_url, PYTHONPATH=str(REPO_ROOT))
    args = [a for s in scopes for a in ("--scope", s)]
    done = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "apikey", "create", *args, "--name", "web-test"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def operator(url: str, key: str, epoch: int, step: str, timeout: float = 60) -> dict[str, Any]:
    """POST /v1/operator/epochs/{epoch}/{step}, again while it is 409 epoch_not_ready (the indexer
    catching up with the chain)."""
    deadline = time.monotonic() + timeout
    while True:
        req = urllib.request.Request(
            f"{url}/v1/operator/epochs/{epoch}/{step}", method="POST", headers={"X-API-Key": key}
        )
        try:
            with urllib.request.urlopen(req) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as err:
            problem = json.loads(err.read())
            if err.code != 409 or problem["code"] != "epoch_not_ready" or time.monotonic() > deadline:
                raise AssertionError(f"{step}: {err.code} {problem}") from None
        time.sleep(0.3)


def test_an_epoch_closes_through_the_operator_api_and_is_claimed_in_one_click(
    fresh: tuple[Stack, str], browser: Any
) -> None:
    """The issue's tests 3 and 4 in one flow: the signed-in contributor sees nothing to claim; the operator
    closes, publishes and finalizes epoch 0 through the API (a key from `cairn apikey create`); the page then
    shows the epoch's reward and claims it with one click, and the balance changes by the claimed amount."""
    from playwright.sync_api import expect

    stack, url = fresh
    owner = stack.owners[0]
    wallet = TestWallet(owner, stack.anvil.url, 31337)
    page, errors = open_app(browser, url, wallet, view="contribute")
    connect(page)
    sign_in(page, owner.address)
    expect(page.locator("#rewards-panel")).to_have_attribute("data-source", "me")
    expect(page.locator("#rewards-chart")).to_have_text("No epoch has a published root yet.")
    expect(page.get_by_role("button", name="Claim")).to_be_disabled()
    key = operator_key(stack, "epochs:write")
    travel_to(stack, stack.deployment.epoch.bounds(0)[1])
    closed = operator(url, key, 0, "close")
    assert closed["status"] == "computed" and closed["leaf_count"] >= 1, closed
    published = operator(url, key, 0, "publish")
    assert published["status"] == "proposed", published
    travel_to(stack, int(published["valid_at"]) + 1)
    accepted = operator(url, key, 0, "finalize")
    assert accepted["status"] == "accepted" and accepted["root"] == published["root"], accepted
    with urllib.request.urlopen(f"{url}/v1/allocations/{accepted['allocation_file']}") as resp:
        allocation = json.loads(resp.read())
    due = int({a.lower(): v for a, v in allocation["epoch_amounts"].items()}[owner.address.lower()])
    assert due > 0
    # the page, shown again, finds the accepted root once the indexer mirrored it
    token = stack.contract("RewardToken")
    before = int(token.functions.balanceOf(owner.address).call())
    deadline = time.monotonic() + 30
    while True:
        page.get_by_role("link", name="Overview").click()
        page.get_by_role("link", name="Contribute").click()
        claimable = page.locator("#rewards-claimable")
        expect(claimable).not_to_be_empty()
        if claimable.inner_text() != "0 (0 wei)" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expect(claimable).to_contain_text(f"({due} wei)")
    expect(page.locator("#rewards-chart")).to_have_attribute("data-series", f"0:{tokens_text(due)}")
    expect(page.get_by_test_id("rewards-balance")).to_have_attribute("data-wei", str(before))
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#claim-status")).to_contain_text("Claimed", timeout=60_000)
    after = int(token.functions.balanceOf(owner.address).call())
    assert after - before == due
    expect(page.get_by_test_id("rewards-balance")).to_have_attribute("data-wei", str(after))
    assert [c for c in wallet.calls if c == "eth_sendTransaction"] == ["eth_sendTransaction"]
    # the claim history (/v1/me/claims) lists it once the indexer mirrored the Claimed event
    [claimed] = stack.contract("RewardDistributor").events.Claimed().get_logs(from_block=0)
    tx = "0x" + bytes(claimed["transactionHash"]).hex()
    deadline = time.monotonic() + 30
    row = page.locator(f'#my-claims-body tr[data-tx="{tx}"]')
    while row.count() == 0 and time.monotonic() < deadline:
        page.get_by_role("link", name="Overview").click()
        page.get_by_role("link", name="Contribute").click()
        expect(page.locator("#rewards-panel")).not_to_have_attribute("aria-busy", "true")
        time.sleep(0.3)
    expect(row.locator("td").nth(0)).to_have_text(f"{tokens_text(due)} ({due} wei)")
    expect(row.locator("td").nth(2)).to_have_text("you")
    expect(row.locator("td").nth(3)).to_have_text(str(claimed["blockNumber"]))
    expect(page.locator("#rewards-claimable")).to_have_text("0 (0 wei)")
    screenshot(page, "claim-after-epoch")
    assert errors == []


def test_auditor_shows_the_cairn_audit_verdicts(fresh: tuple[Stack, str], browser: Any) -> None:
    """Before any audit the view says so; after `cairn audit` (the CLI, from the chain alone, bytecode
    recompiled) wrote its report under the server's data dir, the view shows the engine's epoch 0 verified
    and each contract's bytecode verdict, as GET /v1/audit/latest gives them."""
    from playwright.sync_api import expect
    from typer.testing import CliRunner

    from cairn.cli.app import app

    stack, url = fresh
    page, errors = open_app(browser, url, make_wallet(stack), view="auditor")
    status = page.get_by_test_id("audit-report-status")
    expect(status).to_have_text(
        "No audit report on this server yet: an auditor runs `cairn audit` with its data directory."
    )
    data_dir = str(stack.settings.data_dir)
    res = CliRunner().invoke(app, [
        "audit", "--rpc-url", stack.anvil.url, "--deployment", str(stack.settings.deployment_file),
        "--artifacts", data_dir, "--data-dir", data_dir, "--format", "json",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    with urllib.request.urlopen(f"{url}/v1/audit/latest") as resp:
        report = json.loads(resp.read())
    assert report["ok"] and [e["epoch"] for e in report["epochs"]] == [0]
    page.reload()
    expect(page.locator("body[data-loaded=true]")).to_be_attached()
    expect(status).to_have_attribute("data-verdict", "ok")
    expect(status).to_contain_text(f"Everything verifies — report of {report['generated_at']}")
    row = page.locator('#audit-report-epochs tr[data-epoch="0"]')
    expect(row.locator("td").nth(1)).to_have_text("verified")
    expect(row.locator("td").nth(2)).to_have_text("accepted")
    expect(row.locator("td").nth(5)).to_have_text("none")
    contracts = page.locator("#audit-report-contracts tr")
    expect(contracts).to_have_count(len(report["contracts"]))
    for c in report["contracts"]:
        cells = page.locator(f'#audit-report-contracts tr[data-contract="{c["name"]}"] td')
        expect(cells.nth(1)).to_have_text("verified")
        expect(cells.nth(2)).to_have_text(c["match"])
    assert {c["name"] for c in report["contracts"]} >= {"RewardDistributor", "ContributionRegistry"}
    # every row as CSV or Parquet (GET /v1/exports/...): a click downloads the server's file
    import pyarrow.parquet as pq

    with page.expect_download() as got:
        page.get_by_role("listitem").filter(has_text="claims:").get_by_role("link", name="CSV").click()
    download = got.value
    assert download.suggested_filename == "cairn-claims.csv"
    lines = Path(download.path()).read_text().splitlines()
    assert len(lines) == 2 and stack.owners[0].address.lower() in lines[1].lower(), lines  # the one claim
    allocations = page.get_by_role("listitem").filter(has_text="allocations:")
    with page.expect_download() as got:
        allocations.get_by_role("link", name="Parquet").click()
    assert got.value.suggested_filename == "cairn-allocations.parquet"
    table = pq.read_table(got.value.path())
    assert table.num_rows == report["epochs"][0]["leaves"], table
    screenshot(page, "auditor-report")
    assert errors == []


def test_agent_view_shows_balance_payments_and_channels(tmp_path: Path, browser: Any) -> None:
    """On the x402 test stack (the real app plus a priced route, tests/support/x402_stack.py): two requests
    paid with the official x402 client and settled on chain, and a payment channel opened on the
    PaymentRouter with a withdrawal requested; a second channel opened by the Python agent's channel
    plugin and three requests paid through it with vouchers (the official x402 client). The agent view shows
    the token balance, the payments with their settlement transaction, the spend per model, each channel's
    state as the chain has it and, as the gateway holds it (`GET /v1/channels`), its latest voucher's
    ceiling, charged total and paid requests; when that read fails, a readable message and the chain's
    columns still."""
    import httpx
    from playwright.sync_api import expect
    from sqlalchemy import text
    from support.api_stack import index_to
    from support.x402_stack import ECHO_MODEL, PRICE, official_client, pay, settle_all, x402_stack
    from x402 import x402Client
    from x402.http.utils import decode_payment_required_header

    from backend.api.x402 import store
    from cairn.agent.channel_client import ZERO_SALT, CairnChannelScheme, deposit, initiate_withdraw
    from cairn.core.channel import ChannelConfig, ChannelDomain, recover, signature_bytes
    from cairn.core.db import make_engine

    with start_anvil() as anvil, x402_stack(anvil, tmp_path) as stack:
        url = stack.url.removesuffix("/test/echo")
        payer = stack.payers[0]
        client = official_client(payer.key.hex(), stack.token, stack.network, 10 * PRICE)
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
            for i in range(2):
                assert pool.submit(pay, client, stack.url, {"n": i}).result().status_code == 200
        settle_all(stack)
        engine = make_engine(stack.settings.database_url)
        paid = store.payments(engine, stack.w3.eth.chain_id, payer=payer.address, status=None, limit=10)
        engine.dispose()
        assert [p["status"] for p in paid] == ["settled", "settled"]
        router = stack.contract("PaymentRouter")
        config = ChannelConfig(
            payer=payer.address.lower(), payer_authorizer="0x" + "00" * 20, receiver=router.address.lower(),
            receiver_authorizer=Account.from_key(ANVIL_DEV_KEYS[1]).address.lower(),
            token=stack.token.lower(), withdraw_delay=3600, salt=ZERO_SALT,
        )  # fmt: skip
        deposit(stack.w3, payer, config, 5 * 10**18)
        initiate_withdraw(stack.w3, payer, config, 2 * 10**18)
        channel_id = "0x" + bytes(router.functions.channelId(config.as_tuple()).call()).hex()
        [requested] = router.events.ChannelWithdrawalRequested().get_logs(from_block=0)
        # the Python agent's channel (payer = payerAuthorizer, salt 1), three requests paid with vouchers
        asked = decode_payment_required_header(httpx.post(stack.url, json={}).headers["PAYMENT-REQUIRED"])
        [terms] = [a.model_dump(by_alias=True) for a in asked.accepts if a.scheme == "batch-settlement"]
        plugin = CairnChannelScheme(payer, salt="0x" + "00" * 31 + "01")
        deposit(stack.w3, payer, plugin.channel_config(terms), 10 * PRICE)
        voucher_channel = plugin.channel_id(terms)
        engine = make_engine(stack.settings.database_url)
        index_to(
            stack.settings, stack.deployment, engine, int(stack.w3.eth.block_number)
        )  # the gateway's mirror
        channel_client = x402Client()
        channel_client.register(stack.network, plugin)
        channel_client.set_spend_controls({"allowed_assets": [
            {"network": stack.network, "asset": stack.token, "max_amount_per_payment": str(10 * PRICE)}
        ]})  # fmt: skip
        with ThreadPoolExecutor(1) as pool:
            for i in range(3):
                assert pool.submit(pay, channel_client, stack.url, {"c": i}).result().status_code == 200
        with engine.connect() as conn:
            held = conn.execute(
                text("SELECT max_claimable, signature, charged, requests FROM channel_state "
                     "WHERE channel_id = :c"), {"c": voucher_channel},
            ).one()  # fmt: skip
        served = httpx.get(f"{url}/v1/channels", params={"payer": payer.address}).json()["channels"]
        [api] = [c for c in served if c["channel_id"] == voucher_channel]
        assert api["voucher"] == {"maxClaimableAmount": held[0], "signature": held[1]}
        assert (api["charged"], api["requests"]) == (held[2], held[3]) == (str(3 * PRICE), 3)
        digest = ChannelDomain(stack.w3.eth.chain_id, router.address).voucher_digest(
            voucher_channel, int(held[0])
        )
        assert recover(digest, signature_bytes(held[1])) == payer.address.lower()
        balance = int(stack.contract("RewardToken").functions.balanceOf(payer.address).call())

        page, errors = open_app(browser, url, TestWallet(payer, anvil.url, 31337), view="agent")
        expect(page.locator("#agent-needs-wallet")).to_be_visible()
        connect(page)
        expect(page.get_by_test_id("agent-balance")).to_have_attribute("data-wei", str(balance))
        rows = page.locator("#agent-payments-body tr")
        expect(rows).to_have_count(2)
        for p in paid:
            cells = page.locator(f'#agent-payments-body tr[data-payment="{p["id"]}"] td')
            expect(cells.nth(1)).to_have_text(p["scheme"])
            expect(cells.nth(2)).to_have_text(tokens_text(int(p["amount"])))
            expect(cells.nth(4)).to_have_text("settled")
            expect(cells.nth(5)).to_have_attribute("title", p["tx_hash"])
        spend = page.locator(f'#agent-spend-body tr[data-model="{ECHO_MODEL}"] td').nth(1)
        expect(spend).to_have_text(f"{tokens_text(2 * PRICE)} ({2 * PRICE} wei)")
        chart = page.locator("#agent-spend-chart")
        expect(chart).to_have_attribute("data-series", f"{ECHO_MODEL}:{tokens_text(2 * PRICE)}")
        expect(chart.locator("canvas")).to_have_count(1)
        expect(page.get_by_test_id("agent-exposure")).to_contain_text("0 (0 wei) served but not settled yet")
        channel = page.locator(f'#agent-channels-body tr[data-channel="{channel_id}"] td')
        expect(channel.nth(1)).to_have_text(f"5 ({5 * 10**18} wei)")
        expect(channel.nth(2)).to_have_text("0 (0 wei)")
        expect(channel.nth(3)).to_have_text(f"5 ({5 * 10**18} wei)")
        available = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(requested["args"]["availableAt"])))
        expect(channel.nth(4)).to_have_text(f"requested, available {available}")
        expect(channel.nth(5)).to_have_text("no voucher yet")  # payerAuthorizer 0: never paid with vouchers
        expect(channel.nth(6)).to_have_text("0 (0 wei)")
        expect(channel.nth(7)).to_have_text("0")
        vouchers = page.locator(f'#agent-channels-body tr[data-channel="{voucher_channel}"] td')
        ceiling = api["voucher"]["maxClaimableAmount"]
        expect(vouchers.nth(5)).to_have_text(f"{tokens_text(int(ceiling))} ({ceiling} wei)")
        expect(vouchers.nth(5)).to_have_attribute("data-wei", ceiling)
        expect(vouchers.nth(5)).to_have_attribute("title", f"signature {api['voucher']['signature']}")
        expect(vouchers.nth(6)).to_have_attribute("data-wei", api["charged"])
        expect(vouchers.nth(6)).to_have_text(f"{tokens_text(3 * PRICE)} ({3 * PRICE} wei)")
        expect(vouchers.nth(7)).to_have_text("3")
        expect(page.locator("#agent-vouchers-error")).to_be_hidden()
        # its config (payerAuthorizer 0, a one-hour delay: not the page's own) is recovered from the deposit's
        # calldata, so the payer's actions are offered; finalizing waits for the chain's clock
        actions = page.locator(f'#agent-channels-body tr[data-channel="{channel_id}"]')
        expect(actions.get_by_role("button", name="Request withdrawal")).to_be_enabled()
        expect(actions.get_by_role("button", name="Finalize withdrawal")).to_be_disabled()
        screenshot(page, "agent")
        # the gateway's voucher read fails for real (its table is away): the chain's columns stay, and a
        # readable message says the vouchers could not be read; back again on the next refresh
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE channel_usage RENAME TO channel_usage_away"))
        page.get_by_role("button", name="Refresh channels").click()
        expect(page.locator("#agent-vouchers-error")).to_contain_text(
            "The gateway's vouchers for these channels could not be read: "
        )
        expect(vouchers.nth(5)).to_have_text("unavailable")
        expect(channel.nth(1)).to_have_text(f"5 ({5 * 10**18} wei)")
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE channel_usage_away RENAME TO channel_usage"))
        page.get_by_role("button", name="Refresh channels").click()
        expect(page.locator("#agent-vouchers-error")).to_be_hidden()
        expect(vouchers.nth(7)).to_have_text("3")
        engine.dispose()
        assert errors == []


def test_agent_deposits_into_a_channel_and_withdraws_it_from_the_page(tmp_path: Path, browser: Any) -> None:
    """On the agent stack (a priced model, so the gateway's 402 announces the batch-settlement terms): the
    agent view opens a payment channel from the wallet (approve, then `deposit` with the config built from the
    terms: payer = payerAuthorizer = the wallet, the gateway's receiverAuthorizer and withdrawDelay, salt 0),
    shows its balance, requests a withdrawal of all of it, offers "Finalize" only once the chain's clock
    (moved by evm_increaseTime, not the wall clock) has passed `availableAt`, and finalizes: the balance is
    0 on chain and on the page and the wallet's token balance is back where it was. A rejection in the wallet
    and a revert (a withdrawal larger than the channel holds) are readable messages."""
    from playwright.sync_api import expect
    from support.agent_stack import NAME, agent_stack

    from cairn.agent.channel_client import ZERO_SALT
    from cairn.core.channel import MIN_WITHDRAW_DELAY, ChannelConfig

    with agent_stack(tmp_path) as loop:
        w3 = loop.w3
        token = loop.dep.contract(w3, "RewardToken")
        router = loop.dep.contract(w3, "PaymentRouter")
        payer = loop.payer
        before = int(token.functions.balanceOf(payer.address).call())
        settler = Account.from_key(loop.settings.signing_key("settler", w3.eth.chain_id)).address
        config = ChannelConfig(
            payer=payer.address.lower(), payer_authorizer=payer.address.lower(),
            receiver=router.address.lower(), receiver_authorizer=settler.lower(), token=loop.token.lower(),
            withdraw_delay=MIN_WITHDRAW_DELAY, salt=ZERO_SALT,
        )  # fmt: skip
        channel_id = "0x" + bytes(router.functions.channelId(config.as_tuple()).call()).hex()
        wallet = TestWallet(payer, loop.settings.rpc_urls[0], w3.eth.chain_id)
        page, errors = open_app(browser, loop.url, wallet, view="agent")
        connect(page)
        expect(page.locator(f'#try-model option[value="{NAME}"]')).to_be_attached()
        expect(page.get_by_test_id("agent-balance")).to_have_attribute("data-wei", str(before))
        page.get_by_label("deposit (tokens)").fill("3")
        page.get_by_label("channel number").fill("0")

        wallet.reject_signatures = True
        page.get_by_role("button", name="Approve and deposit").click()
        expect(page.locator("#channel-error")).to_have_text(
            "You rejected the request in your wallet: nothing was signed or sent."
        )
        wallet.reject_signatures = False
        sent = wallet.calls.count("eth_sendTransaction")  # the refused approval

        page.get_by_role("button", name="Approve and deposit").click()
        expect(page.locator("#channel-status")).to_contain_text(
            f"Deposited 3 tokens into channel {channel_id[:8]}", timeout=60_000
        )
        expect(page.locator("#channel-error")).to_be_hidden()
        assert wallet.calls.count("eth_sendTransaction") == sent + 2  # the approval, then the deposit
        assert tuple(router.functions.channels(channel_id).call()) == (3 * 10**18, 0)
        row = page.locator(f'#agent-channels-body tr[data-channel="{channel_id}"]')
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text(f"3 ({3 * 10**18} wei)")
        expect(cells.nth(3)).to_have_text(f"3 ({3 * 10**18} wei)")
        expect(cells.nth(4)).to_have_text("none")
        expect(page.get_by_test_id("agent-balance")).to_have_attribute("data-wei", str(before - 3 * 10**18))
        assert int(token.functions.balanceOf(payer.address).call()) == before - 3 * 10**18

        amount = row.get_by_label("withdrawal amount (tokens)")
        expect(amount).to_have_value("3")
        amount.fill("4")  # more than the channel holds: the router reverts, the page says why
        row.get_by_role("button", name="Request withdrawal").click()
        expect(page.locator("#channel-error")).to_contain_text("PaymentRouterWithdrawTooLarge(")
        amount.fill("3")
        row.get_by_role("button", name="Request withdrawal").click()
        expect(cells.nth(4)).to_contain_text("requested, available ", timeout=60_000)
        expect(page.locator("#channel-error")).to_be_hidden()
        pending, requested_at = router.functions.pendingWithdrawal(channel_id).call()
        assert pending == 3 * 10**18
        available = requested_at + MIN_WITHDRAW_DELAY
        expect(row).to_have_attribute("data-available-at", str(available))
        finalize = row.get_by_role("button", name="Finalize withdrawal")
        expect(finalize).to_be_disabled()  # the chain's clock has not reached availableAt

        w3.provider.make_request("evm_increaseTime", [MIN_WITHDRAW_DELAY + 1])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert w3.eth.get_block("latest")["timestamp"] >= available
        page.get_by_role("button", name="Refresh channels").click()
        expect(finalize).to_be_enabled()
        finalize.click()
        expect(page.locator("#channel-status")).to_contain_text("finalized in block", timeout=60_000)
        expect(cells.nth(1)).to_have_text("0 (0 wei)")
        expect(cells.nth(4)).to_have_text("none")
        assert tuple(router.functions.channels(channel_id).call()) == (0, 0)
        assert int(token.functions.balanceOf(payer.address).call()) == before
        expect(page.get_by_test_id("agent-balance")).to_have_attribute("data-wei", str(before))
        screenshot(page, "agent-channel-withdrawn")
        assert errors == []


def test_agent_tries_the_model_and_pays_with_x402_from_the_wallet(tmp_path: Path, browser: Any) -> None:
    """On the agent stack (tests/support/agent_stack.py: a model trained by `cairn train` on two attested
    datasets, priced PRICE): the "try the model" box asks `POST /v1/chat/completions`, pays its 402 with an
    x402 `exact` authorization the wallet signs (eth_signTypedData_v4), and shows the answer, the datasets it
    drew on, the price paid and the PAYMENT-RESPONSE. The chain's clock runs two days ahead of wall time, so
    a validity window from the browser's clock would be refused. The payment is recorded for the wallet and
    settled: its token balance falls by the price. A rejected signature and a payer without tokens (the
    server's 402 reason) are readable messages."""
    from playwright.sync_api import expect
    from support.agent_stack import NAME, PRICE, agent_stack

    from backend.inference.training import model_id_of

    with agent_stack(tmp_path) as loop:
        w3 = loop.w3
        w3.provider.make_request("evm_increaseTime", [2 * 86400])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        token = loop.dep.contract(w3, "RewardToken")
        before = int(token.functions.balanceOf(loop.payer.address).call())
        wallet = TestWallet(loop.payer, loop.settings.rpc_urls[0], w3.eth.chain_id)
        page, errors = open_app(browser, loop.url, wallet, view="agent")
        connect(page)
        expect(page.locator(f'#try-model option[value="{NAME}"]')).to_have_attribute("data-price", str(PRICE))
        page.get_by_label("question").fill("How does the indexer detect and roll back a reorg?")

        wallet.reject_signatures = True
        page.get_by_role("button", name="Ask and pay with x402").click()
        expect(page.locator("#try-error")).to_have_text(
            "You rejected the request in your wallet: nothing was signed or sent."
        )
        expect(page.locator("#try-result")).to_be_hidden()
        wallet.reject_signatures = False

        page.get_by_role("button", name="Ask and pay with x402").click()
        expect(page.get_by_test_id("try-answer")).not_to_be_empty(timeout=60_000)
        expect(page.locator("#try-error")).to_be_hidden()
        expect(page.get_by_test_id("try-price")).to_have_attribute("data-wei", str(PRICE))
        expect(page.get_by_test_id("try-price")).to_have_text(f"{tokens_text(PRICE)} ({PRICE} wei)")
        shown = page.locator("#try-datasets li")
        expect(shown.first).to_be_attached()
        ids = [shown.nth(i).get_attribute("data-dataset") for i in range(shown.count())]
        assert ids and set(ids) <= set(loop.owners), ids
        receipt = page.get_by_test_id("try-receipt")
        expect(receipt).to_contain_text("accepted")
        response = json.loads(receipt.get_attribute("data-response") or "{}")
        assert response["success"] is True and response["network"] == loop.network
        assert response["payer"].lower() == loop.payer.address.lower()
        [typed] = [
            s["typed"]
            for s in wallet.signed
            if s.get("typed", {}).get("primaryType") == "TransferWithAuthorization"
        ]
        assert typed["domain"]["verifyingContract"].lower() == loop.token.lower()
        valid_before = int(typed["message"]["validBefore"])
        assert valid_before > time.time() + 86400  # the chain's clock (two days ahead), not the browser's

        deadline = time.monotonic() + 60
        while True:  # the API's settler settles the exact payment on chain
            with urllib.request.urlopen(f"{loop.url}/v1/payments?payer={loop.payer.address}") as r:
                [row] = json.loads(r.read())["payments"]
            if row["status"] == "settled" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert (row["scheme"], int(row["amount"]), row["model_id"]) == ("exact", PRICE, model_id_of(NAME))
        assert row["status"] == "settled" and row["tx_hash"], row
        assert int(token.functions.balanceOf(loop.payer.address).call()) == before - PRICE
        # the page re-reads the balance after the paid answer, without a reload: it falls by the price
        expect(page.get_by_test_id("agent-balance")).to_have_attribute("data-wei", str(before - PRICE))
        expect(page.locator(f'#agent-payments-body tr[data-payment="{row["id"]}"]')).to_be_attached()
        screenshot(page, "agent-try-model")
        assert errors == []
        page.context.close()

        broke = TestWallet(Account.from_key(ANVIL_DEV_KEYS[9]), loop.settings.rpc_urls[0], w3.eth.chain_id)
        page, errors = open_app(browser, loop.url, broke, view="agent")
        connect(page)
        expect(page.locator(f'#try-model option[value="{NAME}"]')).to_be_attached()
        page.get_by_role("button", name="Ask and pay with x402").click()
        expect(page.locator("#try-error")).to_contain_text(
            "The server refused the payment (invalid_exact_evm_insufficient_balance): payer"
        )
        expect(page.locator("#try-result")).to_be_hidden()
        assert errors == []


def test_a_wallet_without_gas_claims_through_the_relayer(tmp_path: Path, browser: Any) -> None:
    """A fresh account that has never held ETH has a reward under an accepted root: the contributor view
    offers the relayed claim (`POST /v1/relay/claim`) instead of the wallet transaction; after one click its
    token balance has risen by the claimed amount and its ETH balance is still 0."""
    from playwright.sync_api import expect

    from cairn.core.policy import load_policy

    reward = 2 * 10**18
    with start_anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        admin = Account.from_key(ANVIL_DEV_KEYS[0])
        dep = deploy(w3, admin, tmp_path)
        settings = ApiSettings(
            rpc_urls=[anvil.url], database_url=f"sqlite:///{tmp_path}/gasless.db",
            deployment_file=tmp_path / "deployment.json", data_dir=tmp_path / "data", confirmations=0,
            finality="confirmations",
        )  # fmt: skip
        stack = Stack(anvil, w3, dep, settings, tmp_path, admin, validators=[], owners=[], payer=admin)
        fresh = Account.create()
        assert w3.eth.get_balance(fresh.address) == 0
        dist, token = stack.contract("RewardDistributor"), stack.contract("RewardToken")
        stack.transact(admin, dist.functions.fundEmission(0))
        travel_to(stack, dep.epoch.genesis + EPOCH_LENGTH + 1)
        stack.transact(admin, dist.functions.grantRole(dist.functions.PUBLISHER_ROLE().call(), admin.address))
        tree, uri = write_allocation(stack, 0, {}, {fresh.address.lower(): reward})
        policy_hash = load_policy("v1").content_hash()
        stack.transact(admin, dist.functions.proposeRoot(tree.root, 0, policy_hash, reward, uri))
        travel_to(stack, int(w3.eth.get_block("latest")["timestamp"]) + CHALLENGE_DELAY + 1)
        stack.transact(admin, dist.functions.acceptRoot())
        stack.index()
        with serve(create_app(settings, run_indexer=True), free_port()) as url:
            wallet = TestWallet(fresh, anvil.url, 31337)
            page, errors = open_app(browser, url, wallet, view="contribute")
            connect(page)
            expect(page.locator("#rewards-claimable")).to_have_text(f"2 ({reward} wei)")
            expect(page.get_by_test_id("rewards-eth")).to_have_attribute("data-wei", "0")
            expect(page.locator("#claim-button")).to_be_hidden()
            page.get_by_role("button", name="Claim without gas (relayed)").click()
            expect(page.locator("#claim-status")).to_contain_text("Claimed 2 tokens in block", timeout=60_000)
            expect(page.locator("#claim-status")).to_contain_text("relayed (you paid no gas): balance 0 → 2.")
            assert int(token.functions.balanceOf(fresh.address).call()) == reward
            assert w3.eth.get_balance(fresh.address) == 0
            assert "eth_sendTransaction" not in wallet.calls and wallet.signed == []
            expect(page.get_by_test_id("rewards-balance")).to_have_attribute("data-wei", str(reward))
            expect(page.get_by_test_id("rewards-eth")).to_have_attribute("data-wei", "0")
            screenshot(page, "claim-relayed")
            assert errors == []
