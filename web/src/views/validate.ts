/**
 * Validator view: datasets to review (newest first, from the mirror), the content's location, each one's
 * current score and this validator's own, and a score (0..10000) sent from the wallet with
 * `ContributionRegistry.attest(contributionId, score)` (VALIDATOR_ROLE, checked on chain before asking).
 *
 * The connected validator's review queue (`GET /v1/validators/{address}/queue`: what it has not attested yet,
 * oldest first) comes first, with a link to the content where the content store has it.
 * Not done: relayed (gasless) attestations.
 */
import { createPublicClient, custom, keccak256, parseAbi, toHex, type Address } from "viem";
import { getJSON } from "../api/client";
import { routes } from "../api/routes";
import type { Contribution, DatasetPage, QueuePage } from "../api/types";
import { bytes, short } from "../lib/format";
import { $, cell, el, showError } from "../ui/dom";
import { describe } from "../ui/errors";
import { state } from "../state";
import { signer } from "../wallet/wallet";

const registryAbi = parseAbi([
  "function attest(bytes32 contributionId, uint16 score)",
  "function hasRole(bytes32 role, address account) view returns (bool)",
  "error ContributionRegistryInvalidScore(uint16 score)",
  "error AccessControlUnauthorizedAccount(address account, bytes32 neededRole)",
]);
const VALIDATOR_ROLE = keccak256(toHex("VALIDATOR_ROLE"));
export const MAX_SCORE = 10_000;

function registry(): Address {
  const addr = state.health?.contracts.ContributionRegistry;
  if (!addr) throw new Error("The API does not list a ContributionRegistry contract.");
  return addr as Address;
}

async function isValidator(account: Address): Promise<boolean> {
  if (!state.wallet) return false;
  const reader = createPublicClient({ transport: custom(state.wallet.provider) });
  return reader.readContract({
    address: registry(),
    abi: registryAbi,
    functionName: "hasRole",
    args: [VALIDATOR_ROLE, account],
  });
}

async function attest(contentHash: `0x${string}`, raw: string, status: HTMLElement): Promise<void> {
  if (!/^\d+$/.test(raw.trim()) || Number(raw) > MAX_SCORE) {
    throw new Error(`A score is a whole number from 0 to ${MAX_SCORE}.`);
  }
  const { account, client } = signer();
  status.textContent = "Confirm in your wallet…";
  const hash = await client.writeContract({
    account,
    chain: client.chain,
    address: registry(),
    abi: registryAbi,
    functionName: "attest",
    args: [contentHash, Number(raw)],
  });
  status.textContent = `Sent ${short(hash)}…`;
  const reader = createPublicClient({ transport: custom(state.wallet!.provider) });
  const receipt = await reader.waitForTransactionReceipt({ hash, pollingInterval: 500 });
  if (receipt.status !== "success") throw new Error(`The attestation ${hash} reverted.`);
  status.textContent = `Attested in block ${receipt.blockNumber}.`;
}

/** Wait (up to 60 s) until the mirror shows this validator's score, so the table reloads with it. */
async function untilIndexed(id: string, validator: string, score: number, status: HTMLElement): Promise<void> {
  const until = performance.now() + 60_000;
  while (performance.now() < until) {
    const c = await getJSON<Contribution>(routes.contribution(id));
    if (c.attestations.some((a) => a.validator.toLowerCase() === validator.toLowerCase() && a.score === score)) {
      return;
    }
    status.textContent = "Mined; waiting for the indexer…";
    await new Promise((r) => setTimeout(r, 700));
  }
}

/** The score input, the Attest button and its status for contribution `id`, in one table cell. */
function scoreControls(id: string, mine: number | null, enabled: boolean, account: string | null): HTMLElement {
  const input = el("input", {
    type: "number",
    min: "0",
    max: String(MAX_SCORE),
    step: "1",
    inputmode: "numeric",
    value: mine !== null ? String(mine) : "",
    "aria-label": `Score for dataset ${id}`,
    class: "score",
  });
  const button = el("button", { type: "button", text: "Attest", "aria-label": `Attest dataset ${id}` });
  button.disabled = !enabled;
  const status = el("span", { class: "muted small", "aria-live": "polite" });
  button.addEventListener("click", () => {
    button.disabled = true;
    attest(id as `0x${string}`, input.value, status)
      .then(() => untilIndexed(id, account!, Number(input.value), status))
      .then(() => loadValidator())
      .catch((err) => {
        status.textContent = describe(err);
        status.className = "error small";
        button.disabled = false;
      });
  });
  return el("td", { class: "attest" }, input, button, status);
}

/** The validator's queue: contributions it has not attested yet, the content link where the store has it. */
async function loadQueue(account: string | null, validator: boolean): Promise<void> {
  const section = $("queue-section");
  section.hidden = !account;
  if (!account) return;
  const page = await getJSON<QueuePage>(routes.validatorQueue(account));
  $("queue-body").replaceChildren(
    ...page.items.map((q) => {
      const content = q.content_available && q.content_url
        ? el("a", { href: q.content_url, text: "download", download: "" })
        : document.createTextNode("not in the store");
      return el(
        "tr",
        { "data-contribution-id": q.contribution_id },
        cell(short(q.contribution_id), q.contribution_id),
        cell(q.kind),
        cell(q.uri || "—"),
        cell(q.size !== null ? bytes(q.size) : q.work_units !== null ? `${q.work_units} work units` : "—"),
        cell(q.attested_by),
        el("td", {}, content),
      );
    }),
  );
  $("queue-empty").hidden = page.items.length > 0;
  $("queue-title").textContent = validator ? "Your review queue" : "Not yet attested by this account";
}

export async function loadValidator(): Promise<void> {
  const body = $("review-body");
  const error = $("review-error");
  const role = $("review-role");
  showError(error, null);
  body.setAttribute("aria-busy", "true");
  try {
    const account = state.account;
    const onChain = account !== null && state.walletChainId === state.health?.chain_id;
    const validator = onChain ? await isValidator(account) : false;
    role.textContent = !account
      ? "Connect a validator's wallet to score datasets."
      : !onChain
        ? "Switch to the deployment's network to score datasets."
        : validator
          ? `${short(account)} holds VALIDATOR_ROLE: scores are sent from this wallet.`
          : `${short(account)} does not hold VALIDATOR_ROLE on the ContributionRegistry: it cannot attest.`;
    await loadQueue(account, validator);
    const page = await getJSON<DatasetPage>(routes.datasets(new URLSearchParams({ limit: "20" })));
    const details = await Promise.all(
      page.items.map((d) => getJSON<Contribution>(routes.contribution(d.content_hash)).catch(() => null)),
    );
    body.replaceChildren(
      ...page.items.map((d, i) => {
        const c = details[i];
        const mine = c?.attestations.find((a) => account && a.validator.toLowerCase() === account.toLowerCase());
        const controls = scoreControls(d.content_hash, mine?.score ?? null, validator && !d.withdrawn, account);
        // only http(s) becomes a link: the URI is whatever the owner registered
        const link = /^https?:\/\//.test(d.uri)
          ? el("a", { href: d.uri, text: d.uri, rel: "noopener noreferrer nofollow", target: "_blank" })
          : document.createTextNode(d.uri || "—");
        const score = c ? (c.score.validators ? `${c.score.validators} (median ${c.score.median})` : "none") : "—";
        return el(
          "tr",
          { "data-content-hash": d.content_hash },
          cell(short(d.content_hash), d.content_hash),
          el("td", {}, link),
          cell(bytes(d.size), `${d.size} bytes`),
          cell(d.withdrawn ? "withdrawn" : score),
          cell(mine ? String(mine.score) : "—"),
          controls,
        );
      }),
    );
    $("review-empty").hidden = page.items.length > 0;
  } catch (err) {
    showError(error, err);
  } finally {
    body.removeAttribute("aria-busy");
  }
}
