"""RPC faults between the indexer and anvil (a real fault-injecting HTTP proxy): timeouts, 429, 5xx,
"too many results" with and without a suggested range, truncated bodies, a dead failover URL.
The final database must equal the ground truth exactly."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from support.indexer_chain import attest_many_data, db_rows, emit, emitter_deployment, ground_truth, send
from support.rpc_fault_proxy import FaultProxy, Faults

from cairn.cli.devchain import Anvil
from cairn.core.deployment import load_deployment
from cairn.core.errors import ChainUnreachableError, RangeTooLargeError
from cairn.core.settings import Settings
from indexer.core import Indexer, IndexerOptions
from indexer.rpc import RpcClient, parse_suggested_range


def make_indexer(urls: list[str], db: str, dep_path: Path) -> Indexer:
    settings = Settings(rpc_urls=urls, database_url=db, deployment_file=dep_path, confirmations=2)
    options = IndexerOptions(
        poll_interval=0.02,
        finality="confirmations",
        initial_range=50,
        grow_step=50,
        rpc_timeout=0.5,
        rpc_attempts=40,
    )
    return Indexer(settings, load_deployment(dep_path), options=options)


def populate(anvil: Anvil, tmp_path: Path) -> Path:
    dep_path = tmp_path / "dep.json"
    dep = emitter_deployment(anvil.url, dep_path)
    for seed in range(1, 41):
        emit(anvil.url, dep, seed)
        if seed % 10 == 0:
            send(anvil.url, dep.contracts["IndexerEmitter0"].address, attest_many_data(seed, 20))
            anvil.rpc("anvil_mine", [seed])  # some sparse stretches
    return dep_path


FAULTS = {
    "mixed": Faults(hang=0.03, hang_seconds=0.8, http_429=0.08, http_5xx=0.08, truncate=0.08, max_results=40),
    "too-many-no-suggestion": Faults(max_results=25, suggest_range=False, http_5xx=0.05, seed=2),
    "too-many-suggested": Faults(max_results=25, suggest_range=True, truncate=0.1, seed=3),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_faults_final_db_exact(kind: str, anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    dep_path = populate(anvil, tmp_path)
    faults = Faults(**{k: v for k, v in vars(FAULTS[kind]).items() if k != "counts"})
    with FaultProxy(anvil.url, faults) as proxy:
        idx = make_indexer([proxy.url], sqlite_url, dep_path)
        idx.run_once()
        dep = load_deployment(dep_path)
        for seed in range(100, 110):  # and live blocks through the faulty proxy
            emit(anvil.url, dep, seed)
        idx.run_once()
    truth = ground_truth(anvil.url, dep, postgres=False)
    assert db_rows(idx.engine, list(truth)) == truth
    assert sum(faults.counts.values()) > 0, faults.counts
    if faults.max_results:
        assert faults.counts.get("too_many_results", 0) > 0


def test_faults_postgres_and_failover(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    dep_path = populate(anvil, tmp_path)
    dead = Faults(http_5xx=1.0)
    flaky = Faults(http_429=0.1, http_5xx=0.1, truncate=0.1, max_results=40, seed=5)
    with FaultProxy(anvil.url, dead) as dead_proxy, FaultProxy(anvil.url, flaky) as proxy:
        idx = make_indexer([dead_proxy.url, proxy.url], database_url, dep_path)
        stop = threading.Event()
        idx.run(stop, once=True)
    truth = ground_truth(anvil.url, load_deployment(dep_path), postgres=database_url.startswith("postgres"))
    assert db_rows(idx.engine, list(truth)) == truth
    assert dead.counts.get("5xx", 0) >= 1


def test_suggested_range_parsing() -> None:
    msg = "query returned more than 10000 results. Try with this block range [0x1E8480, 0x1E84FF]."
    assert parse_suggested_range(msg) == (0x1E8480, 0x1E84FF)
    alchemy = "Log response size exceeded. this block range should work: [0x10, 0x20]"
    assert parse_suggested_range(alchemy) == (16, 32)
    assert parse_suggested_range("query returned more than 10000 results") is None


def test_range_error_is_classified(anvil: Anvil, tmp_path: Path) -> None:
    dep_path = populate(anvil, tmp_path)
    with FaultProxy(anvil.url, Faults(max_results=5)) as proxy:
        client = RpcClient([proxy.url])
        dep = load_deployment(dep_path)
        addr = [c.address for c in dep.contracts.values()]
        with pytest.raises(RangeTooLargeError) as info:
            client.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": addr}])
        assert info.value.suggested is None  # "latest" has no numeric range to suggest from
        client.close()


def test_response_size_bound_splits_ranges(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    from indexer import metrics

    dep_path = populate(anvil, tmp_path)
    settings = Settings(
        rpc_urls=[anvil.url], database_url=sqlite_url, deployment_file=dep_path, confirmations=2
    )
    options = IndexerOptions(finality="confirmations", initial_range=64, max_response_bytes=12_000)
    before = metrics.RPC_ERRORS.labels("response_too_large")._value.get()
    idx = Indexer(settings, load_deployment(dep_path), options=options)
    idx.run_once()
    assert metrics.RPC_ERRORS.labels("response_too_large")._value.get() > before
    truth = ground_truth(anvil.url, load_deployment(dep_path), postgres=False)
    assert db_rows(idx.engine, list(truth)) == truth


def test_refusing_url_fails_over_at_once_and_all_refusing_is_one_error(
    anvil: Anvil, sqlite_url: str, tmp_path: Path
) -> None:
    """HTTP 401/403/404 mean a wrong URL or key: the indexer moves to the next URL without backing off, and
    when every URL refuses it stops with one error instead of retrying for minutes."""
    dep_path = populate(anvil, tmp_path)
    refusing = Faults(http_refused=401)
    with FaultProxy(anvil.url, refusing) as bad, FaultProxy(anvil.url, Faults()) as good:
        idx = make_indexer([bad.url, good.url], sqlite_url, dep_path)
        idx.run(threading.Event(), once=True)
        truth = ground_truth(anvil.url, load_deployment(dep_path), postgres=False)
        assert db_rows(idx.engine, list(truth)) == truth
        assert 1 <= refusing.counts["refused"] <= 2  # tried once (twice at most), never in a backoff loop
        with pytest.raises(ChainUnreachableError, match="every RPC URL refused the request"):
            RpcClient([bad.url, bad.url + "/"], max_attempts=50).call("eth_chainId")
