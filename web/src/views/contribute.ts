/**
 * Contributor view: drop a file, hash it in the browser (SHA-256, streamed, with progress), sign the EIP-712
 * `RegisterDataset` typed data the API serves, relay it gaslessly (commit, then reveal), and follow it from
 * "relayed" to "indexed" to "attested"; optionally upload the file to the content store
 * (`PUT /v1/content/{hash}`) once the relayer accepted the registration (the store admits only registered or
 * relayed content). The connected account's contributions: from `GET /v1/me/contributions` (attestation
 * status with the policy's quorum) when signed in as it, else from the public account view.
 */
import type { TypedDataDefinition } from "viem";
import { ApiError, getJSON, postJSON, putBytes } from "../api/client";
import { routes } from "../api/routes";
import type {
  ContentStored,
  Contribution,
  Dataset,
  DatasetPage,
  MyContributions,
  RelayReceipt,
  Score,
  TypedData,
} from "../api/types";
import { chainClock, deadlineFrom } from "../lib/clock";
import { bytes, chainDate, duration, short } from "../lib/format";
import { sha256File } from "../lib/hash";
import { $, busy, cell, el, showError } from "../ui/dom";
import { signer } from "../wallet/wallet";
import { signedInAs, state } from "../state";

/** How long a registration signature stays valid, after the latest block's timestamp (the relayer wants at
 * least CAIRN_API_RELAY_MIN_DEADLINE_S = 600 s by default). */
export const VALIDITY_S = 3600;
const POLL_MS = 700;
const FOLLOW_TIMEOUT_MS = 180_000;
const ATTEST_WAIT_MS = 600_000;
const ATTEST_POLL_MS = 2_000;
const ZERO32 = `0x${"00".repeat(32)}`;

type Step = "hash" | "sign" | "relay" | "upload" | "reveal" | "indexed" | "attested";
type StepState = "waiting" | "active" | "done" | "failed";

let picked: { file: File; hash: `0x${string}` } | null = null;
let hashing: AbortController | null = null;
/** bumped by each new registration or file: an older registration's polling then stops */
let generation = 0;

function step(name: Step, s: StepState, text?: string): void {
  const li = $(`step-${name}`);
  li.dataset.state = s;
  if (text !== undefined) li.querySelector(".step-text")!.textContent = text;
}

function resetSteps(): void {
  for (const name of ["sign", "relay", "upload", "reveal", "indexed", "attested"] as Step[]) {
    step(name, "waiting", "");
  }
  $("step-upload").hidden = !$<HTMLInputElement>("upload-content").checked;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function hashFile(file: File): Promise<void> {
  hashing?.abort();
  const abort = new AbortController();
  hashing = abort;
  generation += 1;
  picked = null;
  const progress = $<HTMLProgressElement>("hash-progress");
  const statusText = $("hash-status");
  const button = $<HTMLButtonElement>("register-button");
  button.disabled = true;
  showError($("register-error"), null);
  resetSteps();
  $("file-name").textContent = file.name;
  $("file-size").textContent = `${bytes(file.size)} (${file.size} bytes)`;
  $("file-hash").textContent = "…";
  $("file-details").hidden = false;
  progress.hidden = false;
  step("hash", "active", "Hashing…");
  try {
    const started = performance.now();
    const hash = await sha256File(
      file,
      ({ done, total }) => {
        const pct = total ? Math.floor((done / total) * 100) : 100;
        progress.value = pct;
        statusText.textContent = `Hashing: ${pct}% (${bytes(done)} of ${bytes(total)})`;
      },
      abort.signal,
    );
    if (hashing !== abort) return;
    picked = { file, hash };
    $("file-hash").textContent = hash;
    const seconds = (performance.now() - started) / 1000;
    statusText.textContent = `Hashed ${bytes(file.size)} in ${seconds.toFixed(1)} s.`;
    step("hash", "done", `SHA-256 ${short(hash)}`);
    const uri = $<HTMLInputElement>("dataset-uri");
    if (!uri.value) uri.placeholder = `e.g. ipfs://…, https://…/${file.name}`;
    button.disabled = false;
  } catch (err) {
    if ((err as DOMException).name === "AbortError") return;
    step("hash", "failed", "Hashing failed");
    showError($("register-error"), err);
  }
}

function parseBytes32(value: string, what: string): `0x${string}` {
  const v = value.trim();
  if (!v) return ZERO32 as `0x${string}`;
  if (!/^0x[0-9a-fA-F]{64}$/.test(v)) throw new Error(`${what} must be 0x followed by 64 hex digits (or empty).`);
  return v.toLowerCase() as `0x${string}`;
}

async function register(): Promise<void> {
  if (!picked) throw new Error("Choose a file first: its SHA-256 is the dataset's identity.");
  const { account, client } = signer();
  const licenseRaw = $<HTMLInputElement>("dataset-license").value.trim() || "0";
  if (!/^\d+$/.test(licenseRaw) || Number(licenseRaw) > 0xffffffff) {
    throw new Error("The licence id must be a whole number between 0 and 4294967295.");
  }
  const metadataHash = parseBytes32($<HTMLInputElement>("dataset-metadata").value, "The metadata hash");
  const uri = $<HTMLInputElement>("dataset-uri").value.trim();
  resetSteps();
  const gen = ++generation;
  const existing = await getJSON<Dataset>(routes.dataset(picked.hash)).catch((err) => {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  });
  if (existing) {
    throw new Error(
      `This file is already registered, by ${existing.owner} in block ${existing.block_number}: nothing to sign.`,
    );
  }
  const clock = await chainClock();
  const deadline = deadlineFrom(clock, VALIDITY_S);
  $("register-deadline").textContent =
    `The signature is valid until ${chainDate(deadline)} by the chain's clock ` +
    `(${duration(VALIDITY_S)} after block ${clock.blockNumber}).`;
  const params = new URLSearchParams({
    owner: account,
    content_hash: picked.hash,
    size: String(picked.file.size),
    license_id: licenseRaw,
    metadata_hash: metadataHash,
    uri,
    deadline: String(deadline),
  });
  const typed = await getJSON<TypedData>(routes.registerDatasetTypedData(params));
  const ds = typed.message.dataset;
  if (ds.contentHash.toLowerCase() !== picked.hash || Number(ds.size) !== picked.file.size) {
    throw new Error("The API's typed data does not describe the chosen file; nothing was signed.");
  }
  step("sign", "active", "Confirm the signature in your wallet…");
  const types = Object.fromEntries(Object.entries(typed.types).filter(([k]) => k !== "EIP712Domain"));
  let signature: `0x${string}`;
  try {
    signature = await client.signTypedData({
      account,
      domain: typed.domain,
      types,
      primaryType: typed.primaryType,
      message: typed.message,
    } as unknown as TypedDataDefinition & { account: `0x${string}` });
  } catch (err) {
    step("sign", "failed", "Not signed");
    throw err;
  }
  step("sign", "done", "Signed (EIP-712, no gas)");
  step("relay", "active", "Sending to the relayer…");
  let receipt: RelayReceipt;
  try {
    receipt = await postJSON<RelayReceipt>(routes.relayDataset(), {
      content_hash: ds.contentHash,
      size: Number(ds.size),
      license_id: Number(ds.licenseId),
      metadata_hash: ds.metadataHash,
      uri: ds.uri,
      owner: typed.message.owner,
      deadline: Number(typed.message.deadline),
      signature,
    });
  } catch (err) {
    step("relay", "failed", "Refused by the relayer");
    throw err;
  }
  if ($<HTMLInputElement>("upload-content").checked) await upload(picked.file, picked.hash);
  await follow(receipt, account, gen);
}

/** Stream the file to the content store; the server checks its SHA-256 against the registered hash. */
async function upload(file: File, hash: `0x${string}`): Promise<void> {
  step("upload", "active", `Uploading ${bytes(file.size)}…`);
  try {
    const { body } = await putBytes<ContentStored>(routes.content(hash), file);
    step("upload", "done", `${body.created ? "Stored" : "Already stored"}: ${bytes(body.size)}`);
  } catch (err) {
    step("upload", "failed", "Upload refused");
    throw err;
  }
}

/** Follow a relay from "relayed" (commit sent) to "revealed" (registration mined), "indexed" (in the API's
 * mirror) and "attested" (validators' scores). */
async function follow(first: RelayReceipt, account: string, gen: number): Promise<void> {
  const stale = (): boolean => gen !== generation;
  const until = performance.now() + FOLLOW_TIMEOUT_MS;
  let r = first;
  step("relay", "active", `Relayed: commit ${short(r.commit_tx_hash ?? r.tx_hash)}`);
  $("relay-id").textContent = r.relay_id;
  for (;;) {
    if (r.status === "reverted") {
      step(r.phase === "reveal" ? "reveal" : "relay", "failed", `Reverted: ${short(r.tx_hash)}`);
      throw new Error(`The relayed ${r.phase} transaction ${r.tx_hash} reverted on chain.`);
    }
    if (r.status === "replaced") {
      throw new Error("The relayed transaction was replaced by another one: submit the registration again.");
    }
    if (r.phase === "reveal") {
      step("relay", "done", `Committed: ${short(r.commit_tx_hash)}`);
      step("reveal", r.status === "mined" ? "done" : "active", r.status === "mined"
        ? `Registered in block ${r.block_number}: ${short(r.tx_hash)}`
        : `Revealing: ${short(r.tx_hash)}`);
      if (r.status === "mined") break;
    }
    if (performance.now() > until) throw new Error(`Still waiting for relay ${r.relay_id}; check again later.`);
    await sleep(POLL_MS);
    if (stale()) return;
    r = await getJSON<RelayReceipt>(routes.relay(r.relay_id));
  }
  step("indexed", "active", "Waiting for the indexer…");
  let indexed: Dataset | null = null;
  while (!indexed) {
    try {
      indexed = await getJSON<Dataset>(routes.dataset(r.content_hash));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
      if (performance.now() > until) throw new Error("The registration is on chain but not indexed yet; check again later.");
      await sleep(POLL_MS);
      if (stale()) return;
    }
  }
  step("indexed", "done", `Indexed (block ${indexed.block_number})`);
  await loadContributions(account);
  step("attested", "active", "Waiting for validators to attest…");
  const attestUntil = performance.now() + ATTEST_WAIT_MS;
  for (;;) {
    const c = await getJSON<Contribution>(routes.contribution(r.content_hash));
    if (c.score.validators > 0) {
      step("attested", "done", `Attested by ${c.score.validators} validator(s), median score ${c.score.median}`);
      await loadContributions(account);
      return;
    }
    if (performance.now() > attestUntil) {
      step("attested", "active", "No validator has attested yet: the list below updates when one does.");
      return;
    }
    await sleep(ATTEST_POLL_MS);
    if (stale()) return;
  }
}

const scored = (s: Score): string => (s.validators ? `${s.validators} (median ${s.median})` : "not yet");

/** Page size of `GET /v1/me/contributions` (a keyset page: "Load more" follows its `next_cursor`). */
export const CONTRIBUTIONS_PAGE = 20;
let contributionsCursor: string | null = null;
let contributionsLoad = 0; // a newer load makes an older one's answer stale

function contributionRow(d: Dataset, attested: string): HTMLTableRowElement {
  return el(
    "tr",
    { "data-content-hash": d.content_hash },
    cell(short(d.content_hash), d.content_hash),
    cell(d.uri || "—"),
    cell(bytes(d.size), `${d.size} bytes`),
    cell(d.block_number),
    cell(d.withdrawn ? "withdrawn" : attested),
  );
}

/** One page of the signed-in account's datasets (after `cursor`) with their attestation status. */
async function myContributionsPage(cursor: string | null): Promise<{ rows: HTMLTableRowElement[]; next: string | null }> {
  const params = new URLSearchParams({ limit: String(CONTRIBUTIONS_PAGE) });
  if (cursor) params.set("cursor", cursor);
  const mine = await getJSON<MyContributions>(routes.myContributions(params));
  const rows = mine.items
    .filter((c) => c.kind === "dataset")
    .map((d) => {
      const { score, quorum, quorum_met } = d.status;
      return contributionRow(
        d,
        `${scored(score)}; quorum ${quorum_met ? "met" : "not met"} (${score.validators} of ${quorum})`,
      );
    });
  return { rows, next: mine.next_cursor };
}

export async function loadContributions(address: string | null, more = false): Promise<void> {
  const body = $("my-contributions-body");
  const empty = $("my-contributions-empty");
  const error = $("my-contributions-error");
  const moreButton = $<HTMLButtonElement>("my-contributions-more");
  const mine = ++contributionsLoad;
  showError(error, null);
  if (!address) {
    body.replaceChildren();
    contributionsCursor = null;
    moreButton.hidden = true;
    empty.textContent = "Connect a wallet to see its contributions.";
    empty.hidden = false;
    return;
  }
  body.setAttribute("aria-busy", "true");
  try {
    if (signedInAs(address)) {
      const page = await myContributionsPage(more ? contributionsCursor : null);
      if (mine !== contributionsLoad) return;
      if (more) body.append(...page.rows);
      else body.replaceChildren(...page.rows);
      contributionsCursor = page.next;
      body.dataset.source = "me";
    } else {
      // not signed in as it: the public keyset pages of GET /v1/datasets?owner=, "Load more" follows them
      const params = new URLSearchParams({ owner: address, limit: String(CONTRIBUTIONS_PAGE) });
      if (more && contributionsCursor) params.set("cursor", contributionsCursor);
      const page = await getJSON<DatasetPage>(routes.datasets(params));
      const scores = await Promise.all(
        page.items.map((d) =>
          getJSON<Contribution>(routes.contribution(d.content_hash)).then((c) => c.score).catch(() => null),
        ),
      );
      if (mine !== contributionsLoad) return;
      const rows = page.items.map((d, i) => contributionRow(d, scores[i] === null ? "—" : scored(scores[i]!)));
      if (more) body.append(...rows);
      else body.replaceChildren(...rows);
      contributionsCursor = page.next_cursor;
      body.dataset.source = "public";
    }
    moreButton.hidden = contributionsCursor === null;
    empty.textContent = "No dataset registered by this account yet.";
    empty.hidden = body.children.length > 0;
  } catch (err) {
    showError(error, err);
  } finally {
    if (mine === contributionsLoad) body.removeAttribute("aria-busy");
  }
}

export function mountContribute(): void {
  const more = $<HTMLButtonElement>("my-contributions-more");
  more.addEventListener("click", () => {
    void busy(more, "Loading…", $("my-contributions-error"), () => loadContributions(state.account, true));
  });
  const input = $<HTMLInputElement>("file-input");
  const zone = $("dropzone");
  input.addEventListener("change", () => {
    const f = input.files?.[0];
    if (f) void hashFile(f);
  });
  zone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    const f = ev.dataTransfer?.files?.[0];
    if (f) void hashFile(f);
  });
  const form = $<HTMLFormElement>("register-form");
  const button = $<HTMLButtonElement>("register-button");
  const error = $("register-error");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const before = button.textContent;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.textContent = "Registering…";
    showError(error, null);
    register()
      .catch((err) => showError(error, err))
      .finally(() => {
        button.disabled = picked === null;
        button.removeAttribute("aria-busy");
        button.textContent = before;
      });
  });
}
