/**
 * Agent view: the connected account as a paying agent. Its RewardToken balance (read from the chain), its
 * x402 payments from `GET /v1/payments?payer=` (status, settlement transaction, the server's unsettled
 * exposure for it) with the spend per model, and its payment channels on the PaymentRouter: found from the
 * router's `ChannelDeposited` logs for this payer and read with `channels(id)` (balance, claimed by the
 * gateway, unclaimed), with a pending withdrawal from `ChannelWithdrawalRequested`.
 * Not done: deposits and withdrawals from the page, and a "try the model" box (the server's
 * /v1/chat/completions is not behind an x402 payment yet).
 */
import { createPublicClient, custom, parseAbi, parseAbiItem, type Address, type Hex } from "viem";
import { getJSON } from "../api/client";
import { routes } from "../api/routes";
import type { PaymentList } from "../api/types";
import { chainDate, short, tokens, withWei } from "../lib/format";
import { $, cell, el, showError } from "../ui/dom";
import { state } from "../state";

const tokenAbi = parseAbi(["function balanceOf(address account) view returns (uint256)"]);
const routerAbi = parseAbi([
  "struct Channel { uint128 balance; uint128 totalClaimed; }",
  "function channels(bytes32 channelId) view returns (Channel)",
]);
const deposited = parseAbiItem(
  "event ChannelDeposited(bytes32 indexed channelId, address indexed payer, uint256 amount)",
);
const withdrawalRequested = parseAbiItem(
  "event ChannelWithdrawalRequested(bytes32 indexed channelId, address indexed payer, uint64 availableAt)",
);

function contract(name: string): Address {
  const addr = state.health?.contracts[name];
  if (!addr) throw new Error(`The API does not list a ${name} contract.`);
  return addr as Address;
}

function reader() {
  if (!state.wallet) throw new Error("Connect a wallet first.");
  return createPublicClient({ transport: custom(state.wallet.provider) });
}

async function loadPayments(address: string): Promise<void> {
  const body = $("agent-payments-body");
  const list = await getJSON<PaymentList>(routes.payments(address));
  body.replaceChildren(
    ...list.payments.map((p) =>
      el(
        "tr",
        { "data-payment": String(p.id) },
        cell(p.id),
        cell(p.scheme),
        cell(tokens(p.amount), `${p.amount} wei`),
        cell(short(p.model_id), p.model_id),
        cell(p.status),
        cell(p.tx_hash ? short(p.tx_hash) : (p.reason ?? "—"), p.tx_hash ?? ""),
        cell(chainDate(p.created_at)),
      ),
    ),
  );
  $("agent-payments-empty").hidden = list.payments.length > 0;
  const perModel = new Map<string, bigint>();
  for (const p of list.payments) {
    if (p.status === "failed") continue;
    perModel.set(p.model_id, (perModel.get(p.model_id) ?? 0n) + BigInt(p.amount));
  }
  $("agent-spend-body").replaceChildren(
    ...[...perModel].map(([model, wei]) =>
      el("tr", { "data-model": model }, cell(short(model), model), cell(withWei(wei.toString()))),
    ),
  );
  const e = list.exposure;
  $("agent-exposure").textContent = e
    ? `${withWei(e.unsettled)} served but not settled yet (limit ${tokens(e.limit)})` +
      (e.failed ? `; ${e.failed} failed settlement(s) of ${tokens(e.failed_amount)} tokens` : "") +
      (e.refused ? ": the server refuses new payments from this account until they settle." : ".")
    : "—";
}

async function loadChannels(address: Address): Promise<void> {
  const client = reader();
  const router = contract("PaymentRouter");
  const [deposits, requests] = await Promise.all([
    client.getLogs({ address: router, event: deposited, args: { payer: address }, fromBlock: "earliest" }),
    client.getLogs({ address: router, event: withdrawalRequested, args: { payer: address }, fromBlock: "earliest" }),
  ]);
  const ids = [...new Set(deposits.map((l) => l.args.channelId as Hex))];
  const pending = new Map<string, bigint>();
  for (const r of requests) pending.set(r.args.channelId as Hex, r.args.availableAt as bigint);
  const channels = await Promise.all(
    ids.map((id) => client.readContract({ address: router, abi: routerAbi, functionName: "channels", args: [id] })),
  );
  $("agent-channels-body").replaceChildren(
    ...ids.map((id, i) => {
      const c = channels[i];
      const unclaimed = c.balance - c.totalClaimed;
      const at = pending.get(id);
      return el(
        "tr",
        { "data-channel": id },
        cell(short(id), id),
        cell(withWei(c.balance.toString())),
        cell(withWei(c.totalClaimed.toString())),
        cell(withWei(unclaimed.toString())),
        cell(at !== undefined ? `requested, available ${chainDate(Number(at))}` : "none"),
      );
    }),
  );
  $("agent-channels-empty").hidden = ids.length > 0;
}

export async function loadAgent(): Promise<void> {
  const address = state.account;
  const panel = $("agent-panel");
  const error = $("agent-error");
  panel.hidden = address === null;
  $("agent-needs-wallet").hidden = address !== null;
  if (!address) return;
  showError(error, null);
  panel.setAttribute("aria-busy", "true");
  try {
    await loadPayments(address);
    if (state.walletChainId === state.health?.chain_id) {
      const b = await reader().readContract({
        address: contract("RewardToken"), abi: tokenAbi, functionName: "balanceOf", args: [address],
      });
      $("agent-balance").textContent = withWei(b.toString());
      $("agent-balance").dataset.wei = b.toString();
      await loadChannels(address);
    } else {
      $("agent-balance").textContent = "switch to the deployment's network to read it";
    }
  } catch (err) {
    showError(error, err);
  } finally {
    panel.removeAttribute("aria-busy");
  }
}
