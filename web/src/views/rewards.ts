/**
 * The connected account's rewards (in the contributor view): cumulative, claimed and claimable amounts from
 * the API, the token balance read from the chain, and a one-click claim sent from the wallet
 * (`RewardDistributor.claim(cumulativeAmount, proof)` with the proof the API serves).
 *
 * The claim uses the newest root that can be claimed now: a root waiting out its challenge delay cannot, but
 * the previous one stays claimable (IRewardDistributor), so the epochs are tried newest first.
 * Signed in (SIWE) as the connected account, everything comes from one request, `GET /v1/me/rewards`
 * (amounts, rewards per epoch, the claim proof); otherwise from the public views: the account's amounts,
 * and rewards per epoch as the differences of its cumulative amount under each epoch's live root
 * (`GET /v1/epochs/{n}/proofs/{address}`, one request per epoch).
 * A wallet without ETH for gas is offered a relayed claim instead (`POST /v1/relay/claim {account}`: the
 * server's relayer sends `claimFor`, the tokens go to the account), followed through `GET /v1/relays/{id}`.
 */
import uPlot from "uplot";
import { parseAbi, type Address } from "viem";
import { getJSON, postJSON } from "../api/client";
import { routes } from "../api/routes";
import type { Account, EpochList, MyClaims, MyRewards, RelayReceipt } from "../api/types";
import { chainDate, short, tokens, withWei } from "../lib/format";
import { $, busy, cell, el, showError } from "../ui/dom";
import { signedInAs, state } from "../state";
import { signer } from "../wallet/wallet";
import { contract, reader } from "../wallet/contracts";

const distributorAbi = parseAbi([
  "function claim(uint256 cumulativeAmount, bytes32[] proof) returns (uint256)",
  "error RewardDistributorInvalidProof()",
  "error RewardDistributorNothingToClaim(address account, uint256 cumulativeAmount, uint256 alreadyClaimed)",
  "error RewardDistributorNoRoot()",
]);
const tokenAbi = parseAbi(["function balanceOf(address account) view returns (uint256)"]);

interface ProofAnswer {
  epoch: number;
  cumulative_amount: string;
  proof: `0x${string}`[];
  claimable: string;
  claimable_now: boolean;
}


async function balance(address: Address): Promise<bigint> {
  return reader().readContract({
    address: contract("RewardToken"),
    abi: tokenAbi,
    functionName: "balanceOf",
    args: [address],
  });
}

export async function loadRewards(address: string | null): Promise<void> {
  const panel = $("rewards-panel");
  const error = $("rewards-error");
  panel.hidden = address === null;
  if (!address) return;
  showError(error, null);
  panel.setAttribute("aria-busy", "true");
  try {
    let amounts: { cumulative: string; claimed: string; claimable: string };
    let rows: { epoch: number; wei: bigint }[];
    const signedIn = signedInAs(address);
    $("my-claims").hidden = !signedIn;
    if (signedIn) {
      const [mine] = await Promise.all([getJSON<MyRewards>(routes.myRewards()), loadClaims(address)]);
      amounts = mine;
      rows = mine.epochs.map((e) => ({ epoch: e.epoch, wei: BigInt(e.amount) }));
      panel.dataset.source = "me";
    } else {
      const a = await getJSON<Account>(routes.account(address));
      amounts = a.rewards;
      rows = await perEpoch(address);
      panel.dataset.source = "public";
    }
    $("rewards-cumulative").textContent = withWei(amounts.cumulative);
    $("rewards-claimed").textContent = withWei(amounts.claimed);
    $("rewards-claimable").textContent = withWei(amounts.claimable);
    $("claim-button").toggleAttribute("disabled", BigInt(amounts.claimable) === 0n);
    drawPerEpoch(rows);
    if (state.walletChainId === state.health?.chain_id) {
      const b = await balance(address as Address);
      $("rewards-balance").textContent = withWei(b.toString());
      $("rewards-balance").dataset.wei = b.toString();
      const eth = await reader().getBalance({ address: address as Address });
      const noGas = eth === 0n;
      $("rewards-eth").textContent = withWei(eth.toString());
      $("rewards-eth").dataset.wei = eth.toString();
      $("claim-button").hidden = noGas;
      $("claim-relayed").hidden = !noGas;
      $("claim-relayed-button").toggleAttribute("disabled", BigInt(amounts.claimable) === 0n);
    } else {
      $("rewards-balance").textContent = "switch to the deployment's network to read it";
    }
  } catch (err) {
    showError(error, err);
  } finally {
    panel.removeAttribute("aria-busy");
  }
}

/** The signed-in account's claim history (`GET /v1/me/claims`, newest first): its own, relayed or paid out. */
async function loadClaims(address: string): Promise<void> {
  const mine = await getJSON<MyClaims>(routes.myClaims());
  const self = address.toLowerCase();
  $("my-claims-body").replaceChildren(
    ...mine.claims.map((c) =>
      el(
        "tr",
        { "data-tx": c.tx_hash },
        cell(withWei(c.amount)),
        cell(tokens(c.cumulative_amount), `${c.cumulative_amount} wei`),
        cell(c.caller.toLowerCase() === self ? "you" : short(c.caller), c.caller),
        cell(c.block_number),
        cell(chainDate(c.block_time)),
        cell(short(c.tx_hash), c.tx_hash),
      ),
    ),
  );
  $("my-claims-empty").hidden = mine.claims.length > 0;
}

let chart: uPlot | null = null;

/** The account's reward in each epoch with a live root: cumulative(n) - cumulative(n - 1), oldest first. */
async function perEpoch(address: string): Promise<{ epoch: number; wei: bigint }[]> {
  const list = await getJSON<EpochList>(routes.epochs());
  const epochs = list.epochs.filter((e) => e.root).map((e) => e.epoch).sort((a, b) => a - b);
  const cumulative = await Promise.all(
    epochs.map((n) =>
      getJSON<ProofAnswer>(routes.proof(n, address))
        .then((p) => BigInt(p.cumulative_amount))
        .catch(() => null),
    ),
  );
  let previous = 0n;
  return epochs.map((epoch, i) => {
    const c = cumulative[i] ?? previous; // no leaf: nothing new this epoch
    const wei = c - previous;
    previous = c;
    return { epoch, wei };
  });
}

function drawPerEpoch(rows: { epoch: number; wei: bigint }[]): void {
  const target = $("rewards-chart");
  chart?.destroy();
  chart = null;
  target.replaceChildren();
  target.dataset.series = rows.map((r) => `${r.epoch}:${tokens(r.wei.toString())}`).join(",");
  target.setAttribute(
    "aria-label",
    `Rewards per epoch: ${rows.map((r) => `epoch ${r.epoch} ${tokens(r.wei.toString())} tokens`).join(", ") || "none yet"}`,
  );
  if (!rows.length) {
    target.textContent = "No epoch has a published root yet.";
    return;
  }
  const x = rows.map((r) => r.epoch);
  const y = rows.map((r) => Number(r.wei / 10n ** 12n) / 1e6); // tokens, to 6 decimals, for drawing only
  chart = new uPlot(
    {
      width: Math.max(240, Math.min(560, target.clientWidth || 560)),
      height: 220,
      scales: { x: { time: false, range: [x[0] - 0.6, x[x.length - 1] + 0.6] }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] } },
      legend: { show: false },
      cursor: { show: false },
      series: [
        { label: "epoch" },
        { label: "tokens", stroke: "#2f6f4f", fill: "rgba(47,111,79,0.55)", paths: uPlot.paths.bars!({ size: [0.6, 60] }), points: { show: false } },
      ],
      axes: [
        { label: "epoch", splits: () => x, values: (_u, ticks) => ticks.map((t) => String(t)) },
        { label: "tokens", size: 70 },
      ],
    },
    [x, y],
    target,
  );
}

/** The newest proof that can be claimed now and pays something, or null. */
async function claimableProof(address: string): Promise<ProofAnswer | null> {
  if (signedInAs(address)) {
    const mine = await getJSON<MyRewards>(routes.myRewards());
    return mine.claim && mine.claim.claimable_now && BigInt(mine.claim.claimable) > 0n ? mine.claim : null;
  }
  const list = await getJSON<EpochList>(routes.epochs());
  for (const e of list.epochs) {
    if (!e.root || !["accepted", "claimable", "pending"].includes(e.status)) continue;
    try {
      const p = await getJSON<ProofAnswer>(routes.proof(e.epoch, address));
      if (p.claimable_now && BigInt(p.claimable) > 0n) return p;
    } catch {
      continue; // no leaf for this account in that epoch, or its file is not on this server
    }
  }
  return null;
}

async function claim(): Promise<void> {
  const { account, client } = signer();
  const status = $("claim-status");
  status.textContent = "Finding the proof…";
  const p = await claimableProof(account);
  if (!p) {
    status.textContent = "";
    throw new Error("Nothing can be claimed now: the newest root is still in its challenge delay.");
  }
  const before = await balance(account);
  status.textContent = `Confirm the claim of ${tokens(p.claimable)} tokens (epoch ${p.epoch}) in your wallet…`;
  const hash = await client.writeContract({
    account,
    chain: client.chain,
    address: contract("RewardDistributor"),
    abi: distributorAbi,
    functionName: "claim",
    args: [BigInt(p.cumulative_amount), p.proof],
  });
  status.textContent = `Claim sent: ${short(hash)}; waiting for it to be mined…`;
  const receipt = await reader().waitForTransactionReceipt({ hash, pollingInterval: 500 });
  if (receipt.status !== "success") throw new Error(`The claim transaction ${hash} reverted.`);
  const after = await balance(account);
  status.textContent =
    `Claimed ${tokens((after - before).toString())} tokens in block ${receipt.blockNumber}: ` +
    `balance ${tokens(before.toString())} → ${tokens(after.toString())}.`;
}

const RELAY_WAIT_MS = 120_000;

/** The relayer claims for the account (`claimFor`): no gas, no signature; followed until it is mined. */
async function claimRelayed(): Promise<void> {
  const account = state.account;
  if (!account) throw new Error("Connect a wallet first.");
  const status = $("claim-status");
  const before = await balance(account as Address);
  status.textContent = "Asking the relayer to claim for you…";
  let r = await postJSON<RelayReceipt>(routes.relayClaim(), { account });
  const until = performance.now() + RELAY_WAIT_MS;
  while (r.status === "pending") {
    status.textContent = `Relayed: ${short(r.tx_hash)}; waiting for it to be mined…`;
    if (performance.now() > until) throw new Error(`Still waiting for relay ${r.relay_id}; check again later.`);
    await new Promise((done) => setTimeout(done, 500));
    r = await getJSON<RelayReceipt>(routes.relay(r.relay_id));
  }
  if (r.status !== "mined") {
    throw new Error(`The relayed claim ${short(r.tx_hash)} is ${r.status}${r.failure ? `: ${r.failure}` : ""}.`);
  }
  const after = await balance(account as Address);
  status.textContent =
    `Claimed ${tokens((after - before).toString())} tokens in block ${r.block_number}, relayed (you paid no gas): ` +
    `balance ${tokens(before.toString())} → ${tokens(after.toString())}.`;
}

export function mountRewards(): void {
  const relayed = $<HTMLButtonElement>("claim-relayed-button");
  relayed.addEventListener("click", () => {
    void busy(relayed, "Claiming…", $("rewards-error"), async () => {
      await claimRelayed();
      return true;
    }).then((claimed) => {
      if (claimed && state.account) void loadRewards(state.account);
    });
  });
  const button = $<HTMLButtonElement>("claim-button");
  button.addEventListener("click", () => {
    void busy(button, "Claiming…", $("rewards-error"), async () => {
      await claim();
      return true;
    }).then((claimed) => {
      if (claimed && state.account) void loadRewards(state.account); // after busy() re-enabled the button
    });
  });
}
