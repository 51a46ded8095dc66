/** Overview: the API's health, the latest epochs and datasets, and an address lookup (read-only, no wallet). */
import { getJSON } from "../api/client";
import { routes } from "../api/routes";
import type { Account, DatasetPage, EpochList, Health, Proof } from "../api/types";
import { short, tokens, withWei } from "../lib/format";
import { $, cell, el } from "../ui/dom";
import { describe } from "../ui/errors";
import { update } from "../state";

export async function loadHealth(): Promise<Health | null> {
  const list = $("health-list");
  try {
    const h = await getJSON<Health>(routes.health());
    update({ health: h });
    const items: [string, string | number, string?][] = [
      ["status", h.status, "health-status"],
      ["chain id", h.chain_id],
      ["latest block", h.latest_block],
      ["indexed block", h.latest_indexed_block ?? "not yet"],
      ["indexer lag", h.indexer_lag ?? "—", "health-lag"],
      ["database", h.database],
    ];
    for (const [name, addr] of Object.entries(h.contracts)) items.push([name, addr]);
    list.replaceChildren(
      ...items.flatMap(([k, v, testid]) => [el("dt", { text: k }), el("dd", { text: String(v), "data-testid": testid })]),
    );
    $("version").textContent = `v${h.version}`;
    return h;
  } catch (e) {
    list.replaceChildren(el("dd", { "data-testid": "health-status", class: "error", text: `unavailable: ${describe(e)}` }));
    return null;
  }
}

async function loadEpochs(): Promise<void> {
  const body = $("epochs-body");
  try {
    const data = await getJSON<EpochList>(routes.epochs());
    body.replaceChildren(
      ...data.epochs.slice(0, 10).map((e) =>
        el(
          "tr",
          {},
          cell(e.epoch),
          cell(e.status),
          cell(short(e.root), e.root ?? ""),
          cell(tokens(e.pool), `${e.pool} wei`),
          cell(tokens(e.total_cumulative), e.total_cumulative ? `${e.total_cumulative} wei` : ""),
        ),
      ),
    );
    $("epochs-empty").hidden = data.epochs.length > 0;
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "error", text: describe(e) })));
  }
}

let datasetsCursor: string | null = null;

async function loadDatasets(more = false): Promise<void> {
  const params = new URLSearchParams({ limit: "20" });
  if (more && datasetsCursor) params.set("cursor", datasetsCursor);
  const body = $("datasets-body");
  try {
    const data = await getJSON<DatasetPage>(routes.datasets(params));
    const rows = data.items.map((d) =>
      el(
        "tr",
        {},
        cell(short(d.content_hash), d.content_hash),
        cell(short(d.owner), d.owner),
        cell(d.size),
        cell(d.uri),
        cell(d.block_number),
      ),
    );
    if (more) body.append(...rows);
    else body.replaceChildren(...rows);
    datasetsCursor = data.next_cursor;
    $("datasets-more").hidden = !datasetsCursor;
    $("datasets-empty").hidden = body.children.length > 0;
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "error", text: describe(e) })));
  }
}

async function lookup(address: string): Promise<void> {
  const error = $("lookup-error");
  const result = $("lookup-result");
  error.hidden = true;
  try {
    const a = await getJSON<Account>(routes.account(address));
    $("acct-cumulative").textContent = withWei(a.rewards.cumulative);
    $("acct-claimed").textContent = withWei(a.rewards.claimed);
    $("acct-claimable").textContent =
      withWei(a.rewards.claimable) + (a.rewards.epoch !== null && !a.rewards.claimable_now ? " — root pending" : "");
    $("acct-root").textContent =
      a.rewards.epoch === null ? "no published root" : `${a.rewards.epoch} / ${a.rewards.root}`;
    $("acct-count").textContent = String(a.dataset_count + a.compute_count);
    $("acct-contributions").replaceChildren(
      ...[...a.datasets, ...a.compute].map((c) => {
        const id = c.kind === "dataset" ? c.content_hash : c.contribution_id;
        const uri = c.kind === "dataset" && c.uri ? ` ${c.uri}` : "";
        return el("li", { text: `${c.kind} ${id}${uri}${c.withdrawn ? " (withdrawn)" : ""}` });
      }),
    );
    const proof = $("acct-proof");
    proof.textContent = "no proof";
    if (a.rewards.epoch !== null) {
      const p = await getJSON<Proof>(routes.proof(a.rewards.epoch, a.address));
      proof.textContent = JSON.stringify(p.claim, null, 2);
    }
    result.hidden = false;
  } catch (e) {
    result.hidden = true;
    error.textContent = describe(e);
    error.hidden = false;
  }
}

export function mountOverview(): { refresh: () => Promise<void> } {
  $("lookup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void lookup($<HTMLInputElement>("lookup-address").value.trim());
  });
  $("datasets-more").addEventListener("click", () => void loadDatasets(true));
  return {
    refresh: async () => {
      await Promise.allSettled([loadEpochs(), loadDatasets()]);
    },
  };
}
