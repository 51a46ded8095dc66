"""The auditor's pure parts: root histories (revoked and re-proposed roots), the metadata tail, compiler
releases, the standard-JSON input, the default challenge delay, the watchtower's stack command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.audit.bytecode import Compiled, ContractVerdict, _release, compare_runtime, metadata_length
from backend.audit.epochs import ACCEPTED, PENDING, REVOKED, conservation, root_history
from backend.audit.report import build_report, render_html
from cairn.cli.deploy import default_challenge_delay
from cairn.cli.stack import watchtower_args
from cairn.core.contracts import ARTIFACTS_DIR
from cairn.core.settings import Settings
from cairn.core.solc_input import build_input, input_hash


def _log(block: int, i: int, **kw: Any) -> dict[str, Any]:
    return {"block_number": block, "log_index": i, "tx_hash": "0x" + "ab" * 32, **kw}


def test_root_history_knows_revoked_reproposed_and_accepted_roots() -> None:
    r1, r2 = "0x" + "11" * 32, "0x" + "22" * 32
    prop = {"policy_hash": "0x" + "00" * 32, "total_cumulative": 5, "valid_at": 9, "uri": "allocations/x"}
    events = {
        "ev_root_proposed": [
            _log(10, 0, epoch=0, root=r1, **prop),
            _log(12, 0, epoch=0, root=r2, **prop),
            _log(20, 0, epoch=1, root=r1, **prop),
        ],
        "ev_root_revoked": [_log(11, 0, epoch=0, root=r1, guardian="0x" + "01" * 20)],
        "ev_root_accepted": [_log(20, -1, epoch=0, root=r2)],
    }
    h = root_history(events)
    assert [(r.root, r.status) for r in h[0]] == [(r1, REVOKED), (r2, ACCEPTED)]
    assert [(r.root, r.status) for r in h[1]] == [(r1, PENDING)]
    assert h[0][1].accepted_at == (20, -1)


def test_metadata_tail_and_release() -> None:
    cbor = (
        bytes.fromhex("a2646970667358221220")
        + b"\x01" * 32
        + bytes.fromhex("64736f6c6343000825")
        + b"\x00\x33"
    )
    code = b"\x60\x80" * 10 + cbor
    assert metadata_length(code) == len(cbor)
    assert metadata_length(b"\x60\x80\x00\x01") == 0  # no CBOR map there
    assert _release("0.8.37+commit.f401782d.Emscripten.clang") == _release("0.8.37+commit.f401782d")
    assert _release("0.8.37+commit.f401782d") != _release("0.8.36+commit.f401782d")


def test_standard_json_input_is_the_sources_and_their_imports() -> None:
    settings = {"optimizer": {"enabled": True, "runs": 10000}, "evmVersion": "cancun"}
    std = build_input(settings)
    units = set(std["sources"])
    assert "project/contracts/src/RewardDistributor" + ".sol" in units
    assert any(
        u.startswith("npm/@openzeppelin/contracts@") and u.endswith("/AccessControl" + ".sol") for u in units
    )
    assert not any("/test/" in u for u in units)
    assert input_hash(std) == input_hash(build_input(settings))
    assert input_hash(std) != input_hash(build_input({**settings, "evmVersion": "paris"}))


def test_default_challenge_delay_is_a_day_on_real_chains() -> None:
    assert default_challenge_delay(31337) == 600
    assert default_challenge_delay(8453) == default_challenge_delay(1) == 86_400


def test_watchtower_args_take_the_guardian_key_only_when_set(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, api_port=8000)
    assert watchtower_args(s, {}) == [
        "audit",
        "--watch",
        "--artifacts",
        str(tmp_path),
        "--metrics-port",
        "8001",
    ]
    assert watchtower_args(s, {"CAIRN_GUARDIAN_KEY": "0xkey"})[-2:] == [
        "--guardian-key-env",
        "CAIRN_GUARDIAN_KEY",
    ]


def test_empty_report_is_ok_and_renders() -> None:
    report = build_report(None, None, rpc_url="http://x", deployment="d.json")
    assert report["ok"] is True and report["epochs"] == [] and report["contracts"] == []
    assert "everything verifies" in render_html(report)


def _compiled(name: str) -> Compiled:
    art = json.loads((ARTIFACTS_DIR / f"{name}.sol" / f"{name}.json").read_text())
    refs = [
        (int(r["start"]), int(r["length"]), k) for k, rs in art["immutableReferences"].items() for r in rs
    ]
    return Compiled(
        abi=art["abi"],
        creation=bytes.fromhex(art["bytecode"][2:]),
        runtime=bytes.fromhex(art["deployedBytecode"][2:]),
        immutables=refs,
    )


def test_runtime_comparison_masks_immutables_and_tells_exact_partial_and_mismatch() -> None:
    c = _compiled("ModelRegistry")
    code = bytearray(c.runtime)
    for start, length, ident in c.immutables:  # what the constructor wrote: one value per immutable
        code[start : start + length] = int(ident).to_bytes(length, "big")
    v = ContractVerdict("ModelRegistry", "0x1")
    compare_runtime(bytes(code), c, v)
    assert v.ok and v.match == "exact"
    other_meta = bytearray(code)
    other_meta[-20] ^= 0xFF  # inside the metadata hash
    v = ContractVerdict("ModelRegistry", "0x1")
    compare_runtime(bytes(other_meta), c, v)
    assert v.ok and v.match == "partial"
    changed = bytearray(code)
    changed[10] ^= 0xFF
    v = ContractVerdict("ModelRegistry", "0x1")
    compare_runtime(bytes(changed), c, v)
    assert not v.ok and "first difference at byte 10" in v.problems[0]
    start, length, _ = c.immutables[0]
    two_values = bytearray(code)
    two_values[start + length - 1] ^= 0x01  # one reference of an immutable holds another value
    v = ContractVerdict("ModelRegistry", "0x1")
    compare_runtime(bytes(two_values), c, v)
    assert not v.ok and "different values" in v.problems[0]


def test_conservation_checks_each_with_its_own_message() -> None:
    a, b, router = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
    h1, h2 = "0x" + "01" * 32, "0x" + "02" * 32
    root = {"policy_hash": "0x" + "00" * 32, "total_cumulative": 100, "valid_at": 9, "uri": "u"}
    events: dict[str, list[dict[str, Any]]] = {
        "ev_epoch_funded": [
            _log(1, 0, epoch=0, source=0, amount=70, **{"from": "0x" + "00" * 20}),
            _log(2, 0, epoch=0, source=1, amount=40, **{"from": router}),
        ],
        "ev_emission_minted": [_log(1, 1, epoch=0, to="0x" + "dd" * 20, amount=60)],
        "ev_payment_settled": [_log(2, 1, epoch=0, amount=50, fee=5)],
        "ev_dataset_registered": [
            _log(3, 0, content_hash=h1, owner=a),
            _log(4, 0, content_hash=h1, owner=b),  # a second owner without a reclaim
            {**_log(5, 0, content_hash=h2, owner=a), "tx_hash": "0x" + "ef" * 32},
            {**_log(5, 1, content_hash=h2, owner=b), "tx_hash": "0x" + "ef" * 32},
        ],
        "ev_dataset_reclaimed": [{**_log(5, 0, content_hash=h2), "tx_hash": "0x" + "ef" * 32}],
        "ev_root_proposed": [_log(6, 0, epoch=0, root="0x" + "11" * 32, **root)],
        "ev_root_accepted": [_log(7, 0, epoch=0, root="0x" + "11" * 32)],
        "ev_claimed": [
            _log(8, 0, account=a, amount=90, cumulative_amount=90),  # its leaf says 60
            _log(9, 0, account=b, amount=40, cumulative_amount=40),
        ],
    }
    history = root_history(events)
    problems, checks = conservation(
        events,
        history,
        {0: {a: 60, b: 40}},
        emission_cap=lambda e: 65,
        router=router,
        distributor="0x" + "dd" * 20,
    )
    assert problems == [
        "epoch 0: emission 70 exceeds the on-chain schedule's cap 65",
        "epoch 0: EpochFunded emission 70 != the EmissionMinted to the pool 60",
        "epoch 0: payments minus fees 45 != revenue funded by the router 40",
        f"content hash {h1} has two owners: {a} and {b} (block 4)",
        f"Claimed by {a} of cumulative 90 at block 8 matches no entitlement: the live root (epoch 0) "
        "gives it 60",
        "total claimed 130 exceeds the total promised by the accepted root 100",
    ]
    assert len(checks) == 4


def test_watchtower_metrics_are_served_over_http() -> None:
    import httpx

    from backend.audit.watch import WatchMetrics
    from cairn.cli.devchain import free_port

    m, port = WatchMetrics(), free_port()
    m.serve(port)
    m.mismatches.inc()
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "cairn_audit_mismatches_total 1.0" in text and "cairn_audit_ok 1.0" in text
