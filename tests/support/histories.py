"""Random event histories for the rewards engine's property tests.

A Hypothesis strategy draws the ev_* rows of datasets (single and batch), compute jobs, attestations,
withdrawals, manifests, payments and funding around epoch `EPOCH`, and a policy varied in quorum, minimum
score and caps."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from backend.rewards.allocation import EVENT_TABLES
from backend.rewards.events import DATASET_BATCH
from cairn.core.policy import Policy, load_policy, parse_policy

EPOCH = 5
ACCOUNTS = [f"0x{0x1000 + i:040x}" for i in range(6)]
VALIDATORS = [f"0x{0xA000 + i:040x}" for i in range(7)]
MODELS = [f"0x{0xE000 + i:064x}" for i in range(3)]
DATASETS = [f"0x{0xD000 + i:064x}" for i in range(8)]
COMPUTE = [f"0x{0xC000 + i:064x}" for i in range(5)]
UNKNOWN = f"0x{0xBAD:064x}"
BATCH = DATASET_BATCH.table


def base_row(block: int) -> dict[str, Any]:
    return {
        "block_number": block,
        "log_index": 0,
        "block_hash": "0x" + "00" * 32,
        "tx_hash": "0x" + "11" * 32,
        "contract": "0x" + "22" * 20,
        "block_time": 1_700_000_000 + block,
    }


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, list[dict[str, Any]]], int, Policy]:
    blocks = st.integers(1, 40)
    ev: dict[str, list[dict[str, Any]]] = {t: [] for t in [*EVENT_TABLES, BATCH]}
    n_data = draw(st.integers(0, len(DATASETS)))
    # the last datasets are registered in up to two batches (one log each, shared owner, licence, location)
    n_single = draw(st.integers(0, n_data))
    batched = DATASETS[n_single:n_data]
    cut = draw(st.integers(0, len(batched)))
    for items in (batched[:cut], batched[cut:]):
        if items:
            ev[BATCH].append(
                {
                    **base_row(draw(blocks)),
                    "owner": draw(st.sampled_from(ACCOUNTS)),
                    "license_id": 2,
                    "metadata_hash": "0x" + "77" * 32,
                    "uri": "ipfs://batch",
                    "content_hashes": list(items),
                    "sizes": [draw(st.integers(0, 2**64 - 1)) for _ in items],
                }
            )
    for cid in DATASETS[:n_single]:
        ev["ev_dataset_registered"].append(
            {
                **base_row(draw(blocks)),
                "content_hash": cid,
                "owner": draw(st.sampled_from(ACCOUNTS)),
                "size": draw(st.integers(0, 2**64 - 1)),
                "license_id": 1,
                "metadata_hash": "0x" + "33" * 32,
                "uri": "ipfs://x",
            }
        )
    n_comp = draw(st.integers(0, len(COMPUTE)))
    for cid in COMPUTE[:n_comp]:
        ev["ev_compute_registered"].append(
            {
                **base_row(draw(blocks)),
                "contribution_id": cid,
                "provider": draw(st.sampled_from(ACCOUNTS)),
                "model_id": draw(st.sampled_from(MODELS)),
                "job_id": "0x" + "44" * 32,
                "work_units": draw(st.integers(0, 2**64 - 1)),
                "result_hash": "0x" + "55" * 32,
            }
        )
    cids = DATASETS[:n_data] + COMPUTE[:n_comp] + [UNKNOWN]
    scores = st.one_of(st.integers(0, 10_000), st.integers(4_000, 10_000), st.sampled_from([5_000, 7_000]))
    for cid in cids:
        for validator in draw(st.lists(st.sampled_from(VALIDATORS), max_size=9)):
            ev["ev_attested"].append(
                {
                    **base_row(draw(blocks)),
                    "contribution_id": cid,
                    "validator": validator,
                    "score": draw(scores),
                }
            )
    for cid in draw(st.lists(st.sampled_from(cids), max_size=3, unique=True)):
        ev["ev_contribution_withdrawn"].append(
            {**base_row(draw(blocks)), "contribution_id": cid, "owner": ACCOUNTS[0]}
        )
    for _ in range(draw(st.integers(0, 5))):
        ids = draw(st.lists(st.sampled_from([*DATASETS, UNKNOWN]), max_size=5))
        ev["ev_model_manifest_registered"].append(
            {
                **base_row(draw(blocks)),
                "model_id": draw(st.sampled_from(MODELS)),
                "version": draw(st.integers(1, 3)),
                "trainer": ACCOUNTS[1],
                "dataset_ids": ids,
                "weights": [draw(st.integers(0, 2**32 - 1)) for _ in ids],
            }
        )
    amounts = st.one_of(st.integers(0, 10**6), st.integers(0, 10**27))
    for _ in range(draw(st.integers(0, 6))):
        amount = draw(amounts)
        ev["ev_payment_settled"].append(
            {
                **base_row(draw(blocks)),
                "payer": ACCOUNTS[2],
                "model_id": draw(st.sampled_from([*MODELS, UNKNOWN])),
                "epoch": draw(st.sampled_from([4, 5, 5, 6])),
                "amount": amount,
                "fee": draw(st.integers(0, amount)),
                "request_hash": "0x" + "66" * 32,
                "request_count": 1,
            }
        )
    for _ in range(draw(st.integers(0, 4))):
        ev["ev_epoch_funded"].append(
            {
                **base_row(draw(blocks)),
                "epoch": draw(st.sampled_from([4, 5, 5, 6])),
                "from": "0x" + "00" * 20,
                "amount": draw(amounts),
                "source": draw(st.sampled_from([0, 0, 1])),
            }
        )
    # unique (block_number, log_index): number the events of each block in a random order
    everything = [r for rows in ev.values() for r in rows]
    random.Random(draw(st.integers(0, 2**32))).shuffle(everything)
    counters: dict[int, int] = {}
    for r in everything:
        r["log_index"] = counters.get(r["block_number"], 0)
        counters[r["block_number"]] = r["log_index"] + 1
    raw = load_policy("v1").model_dump(mode="json")
    raw["attestation"]["quorum"] = draw(st.integers(1, 6))
    raw["attestation"]["min_score"] = draw(st.sampled_from([0, 5000, 9000]))
    raw["account_cap_bps"] = draw(st.sampled_from([10_000, 3_000, 1_000]))
    raw["cap_excess"] = draw(st.sampled_from(["redistribute", "treasury"]))
    return ev, draw(st.one_of(st.integers(0, 41), st.integers(30, 41))), parse_policy(raw)
