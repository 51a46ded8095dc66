"""The overview view of the web app (the read-only dashboard) in a real browser (Debian chromium via
Playwright) against real uvicorn, anvil and mirror."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.api_stack import Stack, shared_stack
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.uvicorn_thread import serve

from backend.api.app import create_app


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Stack, str]]:
    """The shared seeded SQLite stack, served by uvicorn on a free port."""
    stack = shared_stack(request, "sqlite")
    with serve(create_app(stack.settings)) as url:
        yield stack, url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("chromium missing: run scripts/ensure-chromium.sh (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_shows_health_datasets_and_account(served: tuple[Stack, str], browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    stack, url = served
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    expect(page.locator("body[data-loaded=true]")).to_be_attached()
    expect(page.get_by_test_id("health-status")).to_have_text("ok")
    expect(page.get_by_test_id("health-lag")).to_have_text("0")
    expect(page.locator("#health-list")).to_contain_text("31337")
    # datasets: newest first, uri shown as text
    rows = page.locator("#datasets-body tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("ipfs://d2")
    epochs = page.locator("#epochs-body tr")
    expect(epochs).to_have_count(2)
    expect(epochs.first).to_contain_text("pending")
    expect(epochs.nth(1)).to_contain_text("accepted")
    expect(epochs.first.locator("td").nth(4)).to_have_text("6")  # 6e18 wei total cumulative
    expect(page.locator("#epochs-empty")).to_be_hidden()
    # address lookup: contributions and rewards of owner 0
    page.fill("#lookup-address", stack.owners[0].address)
    page.click("#lookup-form button")
    expect(page.locator("#lookup-result")).to_be_visible()
    expect(page.locator("#acct-count")).to_have_text("2")
    expect(page.locator("#acct-contributions li")).to_have_count(2)
    expect(page.locator("#acct-contributions")).to_contain_text("(withdrawn)")
    expect(page.locator("#acct-cumulative")).to_have_text(f"5 ({5 * 10**18} wei)")
    expect(page.locator("#acct-claimed")).to_have_text(f"3 ({3 * 10**18} wei)")
    expect(page.locator("#acct-claimable")).to_have_text(f"2 ({2 * 10**18} wei) — root pending")
    expect(page.locator("#acct-root")).to_contain_text(stack.seeded["tree1"].root)
    _, proof = stack.seeded["tree1"].proof_for(stack.owners[0].address)
    expect(page.locator("#acct-proof")).to_contain_text('"cumulativeAmount": "5000000000000000000"')
    expect(page.locator("#acct-proof")).to_contain_text(proof[0])
    # a bad address shows the API's specific message
    page.fill("#lookup-address", "0x1234")
    page.click("#lookup-form button")
    expect(page.locator("#lookup-error")).to_have_text(
        "address must be 20 bytes (42 characters with 0x), got 6 characters"
    )
    expect(page.locator("#lookup-result")).to_be_hidden()
    assert errors == []
    page.close()
