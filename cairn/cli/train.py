"""`cairn train`: train the embedded model from the eligible datasets' stored content and register its
training manifest on chain (backend.inference.training). Idempotent: the same content gives the same
artefact, and one artefact is registered once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from backend import migrations
from backend.inference.training import DEFAULT_MODEL_NAME, train
from cairn.core.chain import connect
from cairn.core.content import ContentStore
from cairn.core.db import make_engine
from cairn.core.deployment import load_deployment
from cairn.core.policy import load_policy
from cairn.core.settings import load_settings

out = Console()


def train_command(
    name: Annotated[str, typer.Option("--name", help="Model name; its id is keccak256(name)")] = (
        DEFAULT_MODEL_NAME
    ),
    policy: Annotated[str, typer.Option("--policy", help="Policy version or JSON file (quorum rule)")] = "v1",
    database_url: Annotated[str | None, typer.Option("--database-url", help="CAIRN_DATABASE_URL")] = None,
    rpc_url: Annotated[str | None, typer.Option("--rpc-url", help="CAIRN_RPC_URLS")] = None,
    deployment: Annotated[Path | None, typer.Option("--deployment", help="CAIRN_DEPLOYMENT_FILE")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Train the embedded model on the datasets that meet the policy's quorum; register its manifest."""
    settings = load_settings(database_url=database_url, rpc_urls=rpc_url, deployment_file=deployment)
    dep = load_deployment(settings.deployment_file)
    w3 = connect(settings.rpc_urls[0])
    dep.require_chain(int(w3.eth.chain_id), settings.rpc_urls[0])
    engine = make_engine(settings.database_url)
    try:
        migrations.upgrade(engine)
        report = train(
            engine=engine,
            w3=w3,
            deployment=dep,
            policy=load_policy(policy),
            store=ContentStore(settings.content_dir, max_bytes=settings.content_max_bytes),
            trainer_key=settings.signing_key("trainer", dep.chain_id),
            name=name,
        )
    finally:
        engine.dispose()
    if as_json:
        body = {
            "name": report.name, "model_id": report.model_id, "artefact": report.artefact,
            "artefact_size": report.artefact_size, "version": report.version, "tx_hash": report.tx_hash,
            "end_block": report.end_block, "datasets": report.datasets,
            "skipped": [{"content_hash": s.content_hash, "reason": s.reason} for s in report.skipped],
            "train_seconds": round(report.train_seconds, 4),
        }  # fmt: skip
        typer.echo(json.dumps(body, indent=2))
        return
    out.print(
        f"model {report.name} ({report.model_id}) version {report.version}: artefact {report.artefact} "
        f"({report.artefact_size} bytes), trained in {report.train_seconds:.2f} s on {len(report.datasets)} "
        f"datasets (mirror at block {report.end_block}); manifest tx {report.tx_hash}",
        highlight=False,
    )
    for d in report.datasets:
        out.print(f"  {d['id']}  tokens={d['tokens']}  weight={d['weight']}", highlight=False)
    for s in report.skipped:
        out.print(f"  skipped {s.content_hash}: {s.reason}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
