/**
 * Auditor view: every epoch with its root, policy hash and totals; the allocation file to download; the
 * Lorenz curve and Gini coefficient of the epoch's rewards, computed by the server
 * (`GET /v1/epochs/{n}/distribution`); the allocation file's tree re-hashed in the browser on demand.
 *
 * The latest `cairn audit` report (`GET /v1/audit/latest`): its verdict per epoch (recomputed from the chain's
 * events) and per contract (deployed bytecode against the recompiled sources).
 * Downloads of every row as CSV or Parquet (`GET /v1/exports/{kind}.{csv|parquet}`) are plain links in
 * index.html.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { ApiError, getJSON } from "../api/client";
import { routes } from "../api/routes";
import type { AllocationFile, AuditReport, Distribution, EpochList, EpochSummary } from "../api/types";
import { chainDate, short, tokens } from "../lib/format";
import type { Lorenz } from "../lib/lorenz";
import { checkTree } from "../lib/merkle";
import { $, cell, el, showError } from "../ui/dom";

let chart: uPlot | null = null;
let selected: number | null = null;

function chartWidth(target: HTMLElement): number {
  return Math.max(240, Math.min(640, target.clientWidth || 640));
}

function drawLorenz(target: HTMLElement, curve: Lorenz): void {
  chart?.destroy();
  target.replaceChildren();
  const opts: uPlot.Options = {
    width: chartWidth(target),
    height: 300,
    scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
    series: [
      { label: "share of recipients" },
      { label: "Lorenz curve", stroke: "#2f6f4f", width: 2, fill: "rgba(47,111,79,0.12)" },
      { label: "equal shares", stroke: "#6b7480", dash: [6, 4], width: 1 },
    ],
    axes: [
      { label: "cumulative share of recipients", values: (_u, ticks) => ticks.map((t) => `${Math.round(t * 100)}%`) },
      { label: "cumulative share of rewards", values: (_u, ticks) => ticks.map((t) => `${Math.round(t * 100)}%`) },
    ],
  };
  chart = new uPlot(opts, [curve.x, curve.y, curve.x], target);
  target.dataset.points = String(curve.x.length);
}

/** The allocation file downloaded on demand and its tree re-hashed against the root on chain. */
async function verifyTree(e: EpochSummary): Promise<void> {
  const verdict = $("audit-tree-verdict");
  const button = $<HTMLButtonElement>("audit-verify-tree");
  button.disabled = true;
  verdict.className = "muted";
  verdict.textContent = "Downloading and hashing the allocation file…";
  try {
    if (!e.allocation_uri) throw new Error(`Epoch ${e.epoch} has no published allocation yet.`);
    const file = await getJSON<AllocationFile>(routes.allocation(e.allocation_uri));
    if (selected !== e.epoch) return;
    if (file.root.toLowerCase() !== (e.root ?? "").toLowerCase()) {
      throw new Error(`The allocation file's root ${file.root} is not the root on chain (${e.root}).`);
    }
    const check = checkTree(file.tree, e.root ?? "");
    const cumulativeOk = check.total === BigInt(file.total_cumulative);
    verdict.dataset.verdict = check.ok && cumulativeOk ? "verified" : "mismatch";
    verdict.className = check.ok && cumulativeOk ? "ok" : "error";
    verdict.textContent = !check.ok
      ? `Does not verify: ${check.problem}.`
      : !cumulativeOk
        ? `Does not verify: the leaves sum to ${check.total} wei, the file says ${file.total_cumulative}.`
        : `Verified in this browser: the file's ${check.leaves} leaves (cumulative ${tokens(check.total.toString())} tokens) hash to ${check.root}, the root on chain.`;
  } catch (err) {
    verdict.dataset.verdict = "error";
    verdict.className = "error";
    verdict.textContent = err instanceof Error ? err.message : String(err);
  } finally {
    button.disabled = false;
  }
}

let currentEpoch: EpochSummary | null = null;

async function showEpoch(e: EpochSummary): Promise<void> {
  const detail = $("audit-detail");
  const error = $("audit-detail-error");
  const status = $("audit-detail-status");
  selected = e.epoch;
  currentEpoch = e;
  detail.hidden = false;
  showError(error, null);
  $("audit-detail-title").textContent = `Epoch ${e.epoch}: rewards distribution`;
  status.textContent = "Loading the distribution…";
  detail.setAttribute("aria-busy", "true");
  $("audit-recipients").textContent = "…";
  $("audit-gini").textContent = "…";
  $("audit-epoch-total").textContent = "…";
  const verdict = $("audit-tree-verdict");
  verdict.textContent = "not checked yet";
  verdict.className = "muted";
  delete verdict.dataset.verdict;
  try {
    if (!e.allocation_uri) throw new Error(`Epoch ${e.epoch} has no published allocation yet.`);
    const download = $<HTMLAnchorElement>("audit-download");
    download.href = routes.allocation(e.allocation_uri);
    download.setAttribute("download", `cairn-epoch-${e.epoch}-allocation.json`);
    const d = await getJSON<Distribution>(routes.distribution(e.epoch));
    if (selected !== e.epoch) return; // another epoch was chosen meanwhile
    if (d.root.toLowerCase() !== (e.root ?? "").toLowerCase()) {
      throw new Error(`The distribution's root ${d.root} is not the epoch's root (${e.root}).`);
    }
    const curve: Lorenz = {
      x: d.lorenz.map((p) => p[0]),
      y: d.lorenz.map((p) => p[1]),
      gini: d.gini,
      recipients: d.leaves,
      total: BigInt(d.total),
    };
    $("audit-recipients").textContent = String(d.leaves);
    const gini = $("audit-gini");
    gini.textContent = d.gini.toFixed(3);
    gini.dataset.gini = String(d.gini);
    $("audit-epoch-total").textContent = `${tokens(d.total)} (${d.total} wei)`;
    const target = $("lorenz-chart");
    target.setAttribute(
      "aria-label",
      `Lorenz curve of epoch ${e.epoch} rewards over ${d.leaves} recipients, Gini coefficient ${d.gini.toFixed(3)}`,
    );
    drawLorenz(target, curve);
    status.textContent = d.leaves ? "" : "No account received rewards in this epoch.";
  } catch (err) {
    status.textContent = "";
    showError(error, err);
  } finally {
    detail.removeAttribute("aria-busy");
  }
}

const verdictCell = (ok: boolean): HTMLElement =>
  el("td", { class: ok ? "ok" : "error", "data-verdict": ok ? "ok" : "fail", text: ok ? "verified" : "FAILED" });

/** The latest `cairn audit` report, or the reason there is none. */
async function loadAuditReport(): Promise<void> {
  const status = $("audit-report-status");
  const epochs = $("audit-report-epochs");
  const contracts = $("audit-report-contracts");
  let report: AuditReport;
  try {
    report = await getJSON<AuditReport>(routes.auditLatest());
  } catch (err) {
    epochs.replaceChildren();
    contracts.replaceChildren();
    status.dataset.verdict = "none";
    status.className = err instanceof ApiError && err.status === 404 ? "muted" : "error";
    status.textContent =
      err instanceof ApiError && err.status === 404
        ? "No audit report on this server yet: an auditor runs `cairn audit` with its data directory."
        : `The audit report could not be read: ${err instanceof Error ? err.message : String(err)}`;
    return;
  }
  status.dataset.verdict = report.ok ? "ok" : "fail";
  status.className = report.ok ? "ok" : "error";
  const problems = report.epochs.reduce((n, e) => n + e.problems.length, 0) + report.conservation.problems.length
    + report.contracts.reduce((n, c) => n + c.problems.length, 0);
  status.textContent =
    (report.ok ? "Everything verifies" : `The audit failed (${problems} problem(s))`) +
    ` — report of ${report.generated_at}` + (report.head_block !== null ? ` at block ${report.head_block}.` : ".");
  epochs.replaceChildren(
    ...report.epochs.map((e) =>
      el(
        "tr",
        { "data-epoch": String(e.epoch) },
        cell(e.epoch),
        verdictCell(e.ok),
        cell(e.status),
        cell(short(e.root), e.root ?? ""),
        cell(e.leaves ?? "—"),
        cell(e.problems.join(" ") || "none"),
      ),
    ),
  );
  contracts.replaceChildren(
    ...report.contracts.map((c) =>
      el(
        "tr",
        { "data-contract": c.name },
        cell(c.name),
        verdictCell(c.ok),
        cell(c.match),
        cell(short(c.address), c.address),
      ),
    ),
  );
}

export async function loadAuditor(): Promise<void> {
  void loadAuditReport();
  const body = $("audit-epochs-body");
  const error = $("audit-error");
  showError(error, null);
  body.setAttribute("aria-busy", "true");
  try {
    const data = await getJSON<EpochList>(routes.epochs());
    $("audit-current-epoch").textContent = String(data.current_epoch);
    body.replaceChildren(
      ...data.epochs.map((e) => {
        const button = el("button", { type: "button", text: "Lorenz curve", "aria-label": `Lorenz curve of epoch ${e.epoch}` });
        button.disabled = !e.allocation_uri;
        button.addEventListener("click", () => void showEpoch(e));
        const policy = e.policy_hash
          ? el("td", {}, el("a", { href: routes.policy(e.policy_hash), title: e.policy_hash, text: short(e.policy_hash) }))
          : cell("—");
        const file = e.allocation_uri
          ? el("td", {}, el("a", { href: routes.allocation(e.allocation_uri), download: `cairn-epoch-${e.epoch}-allocation.json`, text: "JSON" }))
          : cell("—");
        return el(
          "tr",
          { "data-epoch": String(e.epoch) },
          cell(e.epoch),
          cell(e.status),
          cell(short(e.root), e.root ?? ""),
          policy,
          cell(tokens(e.pool), `${e.pool} wei`),
          cell(tokens(e.total_cumulative), e.total_cumulative ? `${e.total_cumulative} wei` : ""),
          cell(e.valid_at !== null ? chainDate(e.valid_at) : "—"),
          file,
          el("td", {}, button),
        );
      }),
    );
    $("audit-empty").hidden = data.epochs.length > 0;
    const first = data.epochs.find((e) => e.allocation_uri);
    if (selected === null && first) await showEpoch(first);
  } catch (err) {
    showError(error, err);
  } finally {
    body.removeAttribute("aria-busy");
  }
}

export function mountAuditor(): void {
  $("audit-verify-tree").addEventListener("click", () => {
    if (currentEpoch) void verifyTree(currentEpoch);
  });
  window.addEventListener("resize", () => {
    const target = document.getElementById("lorenz-chart");
    if (chart && target) chart.setSize({ width: chartWidth(target), height: 300 });
  });
}
