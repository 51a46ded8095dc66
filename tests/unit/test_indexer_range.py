"""Adaptive eth_getLogs range: double over empty ranges, grow additively (at most x2) after successes, cap by
the observed event density, and grow back only slowly past a provider's limit."""

from __future__ import annotations

from pathlib import Path

from cairn.core.deployment import ContractInfo, Deployment, EpochConfig
from cairn.core.settings import Settings
from indexer.backfill import Backfill
from indexer.core import Indexer, IndexerOptions


def make(tmp_path: Path, **opts: int) -> Backfill:
    dep = Deployment(
        chain_id=31337, start_block=0, deployer="0x" + "00" * 20, deployed_at="t",
        epoch=EpochConfig(genesis=0, length=10),
        contracts={"C": ContractInfo(address="0x" + "11" * 20, block=0, abi=[])},
    )  # fmt: skip
    settings = Settings(rpc_urls=["http://127.0.0.1:1"], database_url=f"sqlite:///{tmp_path}/r.db")
    return Indexer(settings, dep, options=IndexerOptions(**opts)).backfill  # type: ignore[arg-type]


def test_sparse_blocks_double_then_density_caps(tmp_path: Path) -> None:
    idx = make(tmp_path, initial_range=1, grow_step=1000, target_events=10_000, max_range=100_000)
    sizes = []
    for _ in range(10):
        size = idx.range
        idx._grow(size, 0)
        sizes.append(idx.range)
    assert sizes == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    idx._grow(1024, 100)  # 0.1 event per block: additive growth, at most x2
    assert idx.range == 2024
    idx._grow(2024, 40_480)  # 20 events per block: 10k events need 500 blocks
    assert idx.range == 500
    idx._grow(500, 5_000)  # half the target: grow additively, capped by density (1000 blocks)
    assert idx.range == 1000


def test_provider_limit_lowers_the_ceiling(tmp_path: Path) -> None:
    idx = make(tmp_path, initial_range=100, grow_step=1000, max_range=100_000)
    idx.range = 50
    idx._ceiling = 50  # what _get_logs sets after "too many results"
    idx._grow(50, 10)
    assert idx.range == 50  # not above the ceiling
    for _ in range(20):
        idx._grow(idx.range, 10)
    assert 50 < idx.range < 500  # +10% per success, not x2
