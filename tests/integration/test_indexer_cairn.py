"""The indexer on the real Cairn contracts (ContributionRegistry, ModelRegistry): every event of the
deployment ABIs gets its table, the mirror equals the ground truth, and the backend views read right."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import inspect, text
from support.cairn_chain import (
    attest,
    deploy_cairn,
    manifest,
    register_computes,
    register_dataset_batch,
    register_datasets,
    withdraw,
)
from support.indexer_chain import db_rows, ground_truth

from cairn.cli.devchain import Anvil
from cairn.core.deployment import load_deployment
from cairn.core.settings import Settings
from indexer.core import Indexer, IndexerOptions


def test_real_cairn_events_mirrored_exactly(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    dep_path = tmp_path / "deployment.json"
    dep = deploy_cairn(anvil.url, dep_path)
    datasets = register_datasets(anvil.url, dep, 0, 12)
    computes = register_computes(anvil.url, dep, 0, 8)
    batch = register_dataset_batch(anvil.url, dep, 0, 5)
    withdraw(anvil.url, dep, batch[3])
    attest(anvil.url, dep, datasets + computes, [(37 * i) % 10001 for i in range(20)])
    attest(anvil.url, dep, datasets[:5], [10000, 1, 2, 3, 4])  # later attestations replace earlier ones
    withdraw(anvil.url, dep, datasets[11])
    manifest(anvil.url, dep, b"\x01" * 32, datasets[:3], [5, 3, 2])
    manifest(anvil.url, dep, b"\x01" * 32, datasets[:4], [4, 3, 2, 1])
    manifest(anvil.url, dep, b"\x02" * 32, datasets[4:6], [1, 1])
    settings = Settings(rpc_urls=[anvil.url], database_url=database_url, deployment_file=dep_path)
    idx = Indexer(settings, load_deployment(dep_path), options=IndexerOptions(poll_interval=0.05))
    idx.run_once()
    postgres = database_url.startswith("postgres")
    truth = ground_truth(anvil.url, dep, postgres=postgres)
    assert db_rows(idx.engine, list(truth)) == truth
    # coverage: one table per event of every ABI in the deployment file
    abi_events = {e["name"] for c in dep.contracts.values() for e in c.abi if e.get("type") == "event"}
    tables = set(inspect(idx.engine).get_table_names())
    from cairn.core.events import snake_case

    assert {f"ev_{snake_case(n)}" for n in abi_events} <= tables
    assert {"DatasetRegistered", "ComputeRegistered", "Attested", "ModelManifestRegistered"} <= abi_events
    with idx.engine.connect() as conn:
        rows = conn.execute(text("SELECT contribution_id, kind, withdrawn FROM v_contributions")).all()
        assert len(rows) == 25
        withdrawn = sorted(["0x" + datasets[11].hex(), "0x" + batch[3].hex()])
        assert sorted(r[0] for r in rows if r[2]) == withdrawn
        # a batch is one log but one v_datasets row per item, with the shared fields on each
        items = conn.execute(
            text(
                "SELECT content_hash, size, license_id, uri, item_index FROM v_datasets "
                "WHERE uri = 'ipfs://bafybatch' ORDER BY item_index"
            )
        ).all()
        assert [(r[0], int(r[1]), int(r[2]), r[4]) for r in items] == [
            ("0x" + h.hex(), 5000 + i, 9, i) for i, h in enumerate(batch)
        ]
        assert conn.execute(text("SELECT COUNT(*) FROM v_datasets")).scalar() == 17
        latest = dict(
            conn.execute(
                text("SELECT contribution_id, score FROM v_attestations_latest WHERE contribution_id = :c"),
                {"c": "0x" + datasets[0].hex()},
            ).all()
        )
        assert latest == {"0x" + datasets[0].hex(): 10000}
        manifests = conn.execute(
            text("SELECT model_id, version, dataset_ids, weights FROM v_manifests_latest ORDER BY model_id")
        ).all()
        assert [(m[0][-2:], m[1]) for m in manifests] == [("01", 2), ("02", 1)]
        # the latest manifest of model 01, in the order the contract stores it: ascending dataset id, each
        # weight staying with its dataset (the helper sorts the pairs before registering)
        pairs = sorted(zip(datasets[:4], [4, 3, 2, 1], strict=True))
        assert json.loads(manifests[0][2]) == ["0x" + d.hex() for d, _ in pairs]
        assert json.loads(manifests[0][3]) == [str(w) for _, w in pairs]
        roles = conn.execute(text("SELECT COUNT(*) FROM ev_role_granted")).scalar()
        assert roles is not None and roles >= 4
