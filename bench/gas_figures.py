"""The benchmark figures of `make bench` (bench/results.json, the README's table) derived from the exact
scenario gas: per item where the name says so, and the register-to-reward lifecycle.

* `gas_register_dataset`: every step a direct registration needs: one `commit` of one commitment plus the
  `registerDataset` reveal (the owner's second registration: steady state);
* `gas_register_dataset_batch_per_item`: one `commit` plus the `registerDatasetBatch` reveal of 100 (shared
  licence, metadata and location; one event), divided by 100; `gas_register_dataset_list_per_item`: one
  `commit` plus `registerDatasets` of 100 datasets each with its own fields and event, divided by 100;
* `gas_attest`: one `attest`; `gas_attest_batch_per_item`: the first validator's `attestBatch` of 100 / 100;
* `gas_publish_root`: `proposeRoot` of epoch 1 (steady state); `gas_publish_root_first`: the very first
  proposal; `gas_accept_root`: `acceptRoot`;
* `gas_claim_first` / `gas_claim_next`: an account's first claim and its claim of the next root (100,000-leaf
  tree); `gas_claim_relayed_batch10_per_user` / `..._first_per_user`: `claimForBatch` of 10, per account;
* `gas_payment_exact`: one `settleExact`; `gas_payment_exact_batch10_per_payment`: `settleExactBatch` of 10
  per payment; `gas_payment_voucher_per_request` (`_batch10`): a channel `claim` of 1,000 requests
  (10 channels), per request;
* `gas_contribution_lifecycle`: per contribution, registration in a batch of 100 + quorum (3 validators)
  attestations in batches of 100 + root proposal over 100 + one first claim counted in full (the worst case);
  `gas_contribution_lifecycle_owner_batch`: the same with the claim amortised over the owner's batch of 100;
* `gas_tree_leaves`: the leaf count of the claims' tree (not gas).
"""

from __future__ import annotations

from collections.abc import Callable

from bench import gas_scenarios as s


def figures(gas: dict[str, int]) -> dict[str, float]:
    per_request = s.REQUESTS_PER_CLAIM
    out = {
        "gas_register_dataset": gas[s.COMMIT] + gas[s.REGISTER_DATASET],
        "gas_register_dataset_list_per_item": (gas[s.COMMIT] + gas[s.REGISTER_DATASETS]) / s.BATCH,
        "gas_register_dataset_batch_per_item": (gas[s.COMMIT] + gas[s.REGISTER_DATASET_BATCH]) / s.BATCH,
        "gas_attest": gas[s.ATTEST],
        "gas_attest_batch_per_item": gas[s.ATTEST_BATCH[0]] / s.BATCH,
        "gas_publish_root_first": gas[s.PROPOSE_ROOT_FIRST],
        "gas_accept_root": gas[s.ACCEPT_ROOT],
        "gas_publish_root": gas[s.PROPOSE_ROOT],
        "gas_claim_first": gas[s.CLAIM_FIRST],
        "gas_claim_next": gas[s.CLAIM_NEXT],
        "gas_claim_relayed_batch10_first_per_user": gas[s.CLAIM_FOR_BATCH_FIRST] / s.RELAYED,
        "gas_claim_relayed_batch10_per_user": gas[s.CLAIM_FOR_BATCH] / s.RELAYED,
        "gas_payment_exact": gas[s.SETTLE_EXACT],
        "gas_payment_exact_batch10_per_payment": gas[s.SETTLE_EXACT_BATCH] / s.RELAYED,
        "gas_payment_voucher_per_request": gas[s.VOUCHER_CLAIM] / per_request,
        "gas_payment_voucher_per_request_batch10": gas[s.VOUCHER_CLAIM_BATCH] / (s.RELAYED * per_request),
        "gas_tree_leaves": s.TREE_SIZE,
    }
    base = (
        out["gas_register_dataset_batch_per_item"]
        + sum(gas[name] for name in s.ATTEST_BATCH) / s.BATCH
        + out["gas_publish_root"] / s.BATCH
    )
    out["gas_contribution_lifecycle"] = base + out["gas_claim_first"]
    out["gas_contribution_lifecycle_owner_batch"] = base + out["gas_claim_first"] / s.BATCH
    return {k: round(float(v), 1) for k, v in sorted(out.items())}


def run(log: Callable[[str], None] = lambda m: print(f"   {m}", flush=True)) -> dict[str, float]:
    """`make bench`'s entry (bench/__main__.py): measure, then the figures."""
    return figures(s.measure(log=log))
