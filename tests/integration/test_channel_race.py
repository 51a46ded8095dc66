"""One channel's requests are processed one at a time across API processes: two real gateway processes
(uvicorn, the scheme's accept on one shared database) receive every voucher of one channel at the same moment.
Each voucher increment pays for exactly one request: for every voucher one process serves and the other
answers 402, and the channel's charged total equals the requests served. On SQLite (the write lock,
BEGIN IMMEDIATE) and PostgreSQL (SELECT ... FOR UPDATE)."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from support.channels import CHAT, PRICE, GatewayProcess, agent_key, build_world
from support.pg import create_database, drop_database, require_postgres

from cairn.cli.devchain import Anvil

VOUCHERS = 40
COPIES = 3  # copies of each voucher sent to each process at once


def _send_at_once(urls: list[str], header: str, http: httpx.Client) -> tuple[list[int], list[str]]:
    """COPIES copies of one PAYMENT-SIGNATURE to each URL, released together: (statuses, responses)."""
    statuses: list[int] = []
    responses: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(urls) * COPIES)

    def send(url: str) -> None:
        barrier.wait()
        r = http.post(url, json=CHAT, headers={"PAYMENT-SIGNATURE": header})
        with lock:
            statuses.append(r.status_code)
            if r.status_code == 200:
                responses.append(r.headers["PAYMENT-RESPONSE"])

    threads = [threading.Thread(target=send, args=(url,)) for url in urls for _ in range(COPIES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, responses


def _race(anvil: Anvil, tmp: Path, db_url: str | None) -> None:
    world = build_world(anvil, tmp, db_url)
    gateways: list[GatewayProcess] = []
    try:
        agent = world.open_channel(agent_key(0), 10 * VOUCHERS * PRICE)
        world.index()
        gateways = [GatewayProcess(world, tmp, f"gw{i}") for i in range(2)]
        requirement = world.requirement()
        served_total = 0
        with httpx.Client(timeout=30) as http:
            for step in range(VOUCHERS):
                header = agent.plugin.payment_header(requirement)  # ceiling (step + 1) * PRICE
                statuses, responses = _send_at_once([g.url for g in gateways], header, http)
                assert sorted(statuses) == [200] + [402] * (2 * COPIES - 1), (step, statuses)
                agent.plugin.record_response_header(responses[0])
                served_total += 1
                state = json.loads(base64.b64decode(responses[0]))["extra"]["channelState"]
                assert state["chargedCumulativeAmount"] == str((step + 1) * PRICE)
        with world.engine.connect() as conn:
            charged, requests = conn.execute(text("SELECT charged, requests FROM channel_state")).one()
        assert (int(charged), int(requests)) == (served_total * PRICE, served_total)
    finally:
        for g in gateways:
            g.stop()
        world.engine.dispose()


def test_two_processes_race_on_one_channel_sqlite(anvil: Anvil, tmp_path: Path) -> None:
    _race(anvil, tmp_path, None)


@pytest.mark.postgres
def test_two_processes_race_on_one_channel_postgres(anvil: Anvil, tmp_path: Path) -> None:
    require_postgres()
    url = create_database("cairn_channels")
    try:
        _race(anvil, tmp_path, url)
    finally:
        drop_database(url)
