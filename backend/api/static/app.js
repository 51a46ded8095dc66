// Cairn dashboard: plain fetch + DOM (textContent only: URIs and names come from the chain, never trust them).
"use strict";

const $ = (id) => document.getElementById(id);
// wei (decimal string) -> token units with 18 decimals, exact (BigInt), trailing zeros trimmed.
function tokens(wei) {
  if (wei === null || wei === undefined) return "—";
  const v = BigInt(wei);
  const unit = 10n ** 18n;
  const frac = (v % unit).toString().padStart(18, "0").replace(/0+$/, "");
  return frac ? `${v / unit}.${frac}` : `${v / unit}`;
}
const withWei = (wei) => `${tokens(wei)} (${wei} wei)`;
const short = (h) => (h && h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-6)}` : h ?? "—");

async function getJSON(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.detail || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

function cell(text, title) {
  const td = document.createElement("td");
  td.textContent = text;
  if (title) td.title = title;
  return td;
}

function row(cells) {
  const tr = document.createElement("tr");
  cells.forEach((c) => tr.appendChild(c));
  return tr;
}

async function loadHealth() {
  const list = $("health-list");
  try {
    const h = await getJSON("/health");
    const items = [
      ["status", h.status, "health-status"],
      ["chain id", h.chain_id],
      ["latest block", h.latest_block],
      ["indexed block", h.latest_indexed_block ?? "not yet"],
      ["indexer lag", h.indexer_lag ?? "—", "health-lag"],
      ["database", h.database],
    ];
    for (const [name, addr] of Object.entries(h.contracts)) items.push([name, addr]);
    list.replaceChildren();
    for (const [k, v, testid] of items) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = String(v);
      if (testid) dd.dataset.testid = testid;
      list.append(dt, dd);
    }
    $("version").textContent = `v${h.version}`;
  } catch (e) {
    list.replaceChildren();
    const dd = document.createElement("dd");
    dd.dataset.testid = "health-status";
    dd.className = "error";
    dd.textContent = `unavailable: ${e.message}`;
    list.append(dd);
  }
}

async function loadEpochs() {
  const body = $("epochs-body");
  const data = await getJSON("/v1/epochs");
  body.replaceChildren(
    ...data.epochs.slice(0, 10).map((e) =>
      row([
        cell(e.epoch),
        cell(e.status),
        cell(short(e.root), e.root || ""),
        cell(tokens(e.pool), `${e.pool} wei`),
        cell(tokens(e.total_cumulative), e.total_cumulative ? `${e.total_cumulative} wei` : ""),
      ])
    )
  );
  $("epochs-empty").hidden = data.epochs.length > 0;
}

let datasetsCursor = null;
async function loadDatasets(more = false) {
  const params = new URLSearchParams({ limit: "20" });
  if (more && datasetsCursor) params.set("cursor", datasetsCursor);
  const data = await getJSON(`/v1/datasets?${params}`);
  const rows = data.items.map((d) =>
    row([
      cell(short(d.content_hash), d.content_hash),
      cell(short(d.owner), d.owner),
      cell(d.size),
      cell(d.uri),
      cell(d.block_number),
    ])
  );
  if (more) $("datasets-body").append(...rows);
  else $("datasets-body").replaceChildren(...rows);
  datasetsCursor = data.next_cursor;
  $("datasets-more").hidden = !datasetsCursor;
  $("datasets-empty").hidden = $("datasets-body").children.length > 0;
}

async function lookup(address) {
  const error = $("lookup-error");
  const result = $("lookup-result");
  error.hidden = true;
  try {
    const a = await getJSON(`/v1/accounts/${encodeURIComponent(address)}`);
    $("acct-cumulative").textContent = withWei(a.rewards.cumulative);
    $("acct-claimed").textContent = withWei(a.rewards.claimed);
    $("acct-claimable").textContent =
      withWei(a.rewards.claimable) + (a.rewards.epoch !== null && !a.rewards.claimable_now ? " — root pending" : "");
    $("acct-root").textContent = a.rewards.epoch === null ? "no published root" : `${a.rewards.epoch} / ${a.rewards.root}`;
    $("acct-count").textContent = String(a.dataset_count + a.compute_count);
    const items = [...a.datasets, ...a.compute].map((c) => {
      const li = document.createElement("li");
      const id = c.content_hash || c.contribution_id;
      li.textContent = `${c.kind} ${id}${c.uri ? " " + c.uri : ""}${c.withdrawn ? " (withdrawn)" : ""}`;
      return li;
    });
    $("acct-contributions").replaceChildren(...items);
    const proof = $("acct-proof");
    proof.textContent = "no proof";
    if (a.rewards.epoch !== null) {
      const p = await getJSON(`/v1/epochs/${a.rewards.epoch}/proofs/${encodeURIComponent(a.address)}`);
      proof.textContent = JSON.stringify(p.claim, null, 2);
    }
    result.hidden = false;
  } catch (e) {
    result.hidden = true;
    error.textContent = e.message;
    error.hidden = false;
  }
}

$("lookup-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  lookup($("lookup-address").value.trim());
});
$("datasets-more").addEventListener("click", () => loadDatasets(true));

async function refresh() {
  await Promise.allSettled([loadHealth(), loadEpochs(), loadDatasets()]);
  document.body.dataset.loaded = "true";
}
refresh();
setInterval(loadHealth, 10000);
