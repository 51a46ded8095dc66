"""Audit reports: one JSON document (for machines and the API), a Rich terminal table and a standalone HTML
page, each with a verdict per epoch and per contract. `ok` is true only if everything verified.

The auditor writes the latest report to `<data_dir>/audit/latest.json` (and `latest.html`); the API serves
the JSON at `GET /v1/audit/latest` for the dashboard (`read_latest`).
"""

from __future__ import annotations

import html
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from backend.audit.bytecode import BytecodeReport
from backend.audit.epochs import ChainAudit

FORMAT = "cairn-audit-v1"
SUBDIR = Path("audit")
LATEST = "latest.json"


def build_report(
    chain: ChainAudit | None, bytecode: BytecodeReport | None, *, rpc_url: str, deployment: str
) -> dict[str, Any]:
    epochs = [
        {
            "epoch": v.epoch,
            "ok": v.ok,
            "status": v.status,
            "root": v.root,
            "total": _s(v.total),
            "recomputed_root": v.recomputed_root,
            "recomputed_total": _s(v.recomputed_total),
            "policy_hash": v.policy_hash,
            "end_block": v.end_block,
            "allocation": v.allocation,
            "leaves": v.leaves,
            "problems": v.problems,
            "notes": v.notes,
            "roots": [{**asdict(r), "total": str(r.total)} for r in v.roots],
        }
        for v in (chain.epochs if chain else [])
    ]
    contracts = [asdict(c) for c in (bytecode.contracts if bytecode else [])]
    ok = (chain is None or chain.ok) and (bytecode is None or bytecode.ok)
    return {
        "format": FORMAT,
        "ok": ok,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rpc_url": rpc_url,
        "deployment": deployment,
        "chain_id": chain.chain_id if chain else None,
        "head_block": chain.head_block if chain else None,
        "epochs": epochs,
        "conservation": {
            "ok": True if chain is None else not chain.conservation,
            "problems": chain.conservation if chain else [],
            "checks": chain.checks if chain else [],
        },
        "contracts": contracts,
        "bytecode": None
        if bytecode is None
        else {
            "ok": bytecode.ok,
            "input_hash": bytecode.input_hash,
            "compiler": bytecode.compiler,
            "seconds": round(bytecode.seconds, 3),
            "problems": bytecode.problems,
        },
        "seconds": {"chain": round(chain.seconds, 3) if chain else None},
    }


def _s(v: int | None) -> str | None:
    return None if v is None else str(v)


def problems(report: dict[str, Any]) -> list[str]:
    """Every failure message of a report, in order (epochs, conservation, bytecode, contracts)."""
    out = [p for e in report["epochs"] for p in e["problems"]]
    out += report["conservation"]["problems"]
    if report["bytecode"]:
        out += report["bytecode"]["problems"]
    out += [p for c in report["contracts"] for p in c["problems"]]
    return out


def print_table(report: dict[str, Any], console: Console) -> None:
    if report["epochs"]:
        t = Table(title=f"epochs (chain {report['chain_id']}, head {report['head_block']})")
        for col in ("epoch", "verdict", "status", "root", "total", "leaves", "policy"):
            t.add_column(col)
        for e in report["epochs"]:
            t.add_row(
                str(e["epoch"]),
                "[green]ok[/green]" if e["ok"] else "[red]FAIL[/red]",
                e["status"],
                (e["root"] or "-")[:18],
                e["total"] or "-",
                str(e["leaves"]),
                (e["policy_hash"] or "-")[:12],
            )
        console.print(t)
    if report["contracts"]:
        t = Table(title="contracts (bytecode)")
        for col in ("contract", "verdict", "match", "address"):
            t.add_column(col)
        for c in report["contracts"]:
            t.add_row(
                c["name"], "[green]ok[/green]" if c["ok"] else "[red]FAIL[/red]", c["match"], c["address"]
            )
        console.print(t)
    for line in report["conservation"]["checks"]:
        console.print(f"checked: {line}", highlight=False, soft_wrap=True)
    for p in problems(report):
        console.print(f"[red]FAIL[/red] {p}", highlight=False, soft_wrap=True)
    console.print("[green]everything verifies[/green]" if report["ok"] else "[red]the audit failed[/red]")


def render_html(report: dict[str, Any]) -> str:
    """A standalone page (no scripts, no external resources)."""

    def esc(v: Any) -> str:
        return html.escape("-" if v is None else str(v))

    def verdict(ok: bool) -> str:
        return '<td class="ok">ok</td>' if ok else '<td class="fail">FAIL</td>'

    rows_e = "".join(
        f"<tr><td>{esc(e['epoch'])}</td>{verdict(e['ok'])}<td>{esc(e['status'])}</td><td><code>{esc(e['root'])}"
        f"</code></td><td>{esc(e['total'])}</td><td>{esc(e['leaves'])}</td><td>"
        + "<br>".join(esc(p) for p in e["problems"] + e["notes"])
        + "</td></tr>"
        for e in report["epochs"]
    )
    rows_c = "".join(
        f"<tr><td>{esc(c['name'])}</td>{verdict(c['ok'])}<td>{esc(c['match'])}</td><td><code>{esc(c['address'])}"
        "</code></td><td>" + "<br>".join(esc(p) for p in c["problems"] + c["notes"]) + "</td></tr>"
        for c in report["contracts"]
    )
    cons = "".join(f"<li>{esc(x)}</li>" for x in report["conservation"]["checks"])
    fails = "".join(f"<li class=fail>{esc(x)}</li>" for x in problems(report))
    title = "Cairn audit: " + ("everything verifies" if report["ok"] else "FAILED")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}}.ok{{color:#060}}
.fail{{color:#b00;font-weight:bold}}code{{font-size:.85em}}</style></head><body>
<h1 class="{"ok" if report["ok"] else "fail"}">{esc(title)}</h1>
<p>chain {esc(report["chain_id"])}, head block {esc(report["head_block"])},
generated {esc(report["generated_at"])},
deployment <code>{esc(report["deployment"])}</code></p>
<h2>Epochs</h2><table><tr><th>epoch</th><th>verdict</th><th>status</th><th>root</th><th>total</th><th>leaves</th>
<th>details</th></tr>{rows_e}</table>
<h2>Contracts</h2><table><tr><th>contract</th><th>verdict</th><th>match</th><th>address</th><th>details</th></tr>
{rows_c}</table>
<h2>Conservation</h2><ul>{cons}</ul>
<h2>Failures</h2><ul>{fails or "<li>none</li>"}</ul>
</body></html>
"""


def write_latest(data_dir: Path, report: dict[str, Any]) -> Path:
    """Write `<data_dir>/audit/latest.json` and `latest.html` atomically; returns the JSON path."""
    folder = Path(data_dir) / SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in (
        (LATEST, orjson.dumps(report, option=orjson.OPT_INDENT_2)),
        ("latest.html", render_html(report).encode()),
    ):
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(blob)
        tmp.replace(folder / name)
    return folder / LATEST


def read_latest(data_dir: Path) -> dict[str, Any] | None:
    path = Path(data_dir) / SUBDIR / LATEST
    try:
        doc: dict[str, Any] = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return doc
