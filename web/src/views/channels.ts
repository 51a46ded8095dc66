/**
 * The connected account's payment channels on the PaymentRouter (x402 `batch-settlement`), with the payer's
 * actions sent from the wallet: deposit (open a channel or top one up: an ERC-20 `approve` of the amount to
 * the router when its allowance is short, then `deposit(config, amount)`), request a withdrawal
 * (`initiateWithdraw(config, amount)`) and finalize it (`finalizeWithdraw(config)`) once `availableAt` has
 * passed on the chain's clock (`GET /health`, lib/clock.ts; never the browser's clock). Each action refreshes
 * the table (balance, claimed, unclaimed, pending withdrawal) and the token balance.
 *
 * Channels are found from the router's `ChannelDeposited` logs for the account and read with `channels(id)`
 * and `pendingWithdrawal(id)` (a withdrawal is pending while its `requestedAt` is not 0; it becomes
 * available at `requestedAt + withdrawDelay`).
 *
 * How the page knows a channel's ChannelConfig (every router call takes the whole config; the id is its
 * EIP-712 hash):
 * - a channel the page opens has a deterministic config: payer = payerAuthorizer = the wallet's account (the
 *   gateway accepts only an EOA payerAuthorizer: backend/api/x402/channel.py `verify`), receiver = the
 *   requirement's `payTo` (the router), token = its `asset`, receiverAuthorizer and withdrawDelay from the
 *   `extra` of the `batch-settlement` requirement the gateway announces in the 402 of
 *   `POST /v1/chat/completions` (asked, unpaid, for a priced model), and salt = the "channel number" as a
 *   32-byte big-endian word. Number 0 is the zero salt, the default channel of the Python agent
 *   (cairn/agent/channel_client.py), so both open the same channel for one account.
 * - a listed channel (opened by this page, the Python agent or any other client) has its config recovered
 *   from the calldata of its first deposit transaction (`deposit` or `depositWithAuthorization` sent straight
 *   to the router) and checked against its id with `channelId(config)`. A channel whose deposits all came
 *   through another contract has no recoverable config: it is listed without actions.
 */
import {
  decodeFunctionData, pad, parseAbi, parseAbiItem, parseUnits, toHex,
  type Address, type Hex,
} from "viem";
import { ApiError, getJSON } from "../api/client";
import { routes } from "../api/routes";
import type { ChannelPage, ServedChannel } from "../api/types";
import { chainClock } from "../lib/clock";
import { chainDate, short, tokens, withWei } from "../lib/format";
import { decodeHeader, type PaymentRequired, type PaymentRequirement } from "../lib/x402";
import { state } from "../state";
import { $, busy, cell, el, showError } from "../ui/dom";
import { describe } from "../ui/errors";
import { signer } from "../wallet/wallet";
import { contract, reader } from "../wallet/contracts";

const SCHEME = "batch-settlement";

const tokenAbi = parseAbi([
  "function allowance(address owner, address spender) view returns (uint256)",
  "function approve(address spender, uint256 value) returns (bool)",
]);
const routerAbi = parseAbi([
  "struct Channel { uint128 balance; uint128 totalClaimed; }",
  "struct ChannelConfig { address payer; address payerAuthorizer; address receiver; address receiverAuthorizer; address token; uint40 withdrawDelay; bytes32 salt; }",
  "function channels(bytes32 channelId) view returns (Channel)",
  "function pendingWithdrawal(bytes32 channelId) view returns (uint128, uint64)",
  "function channelId(ChannelConfig config) view returns (bytes32)",
  "function deposit(ChannelConfig config, uint128 amount) returns (bytes32)",
  "function depositWithAuthorization(ChannelConfig config, uint128 amount, uint256 validAfter, uint256 validBefore, bytes32 authSalt, uint8 v, bytes32 r, bytes32 s) returns (bytes32)",
  "function initiateWithdraw(ChannelConfig config, uint128 amount)",
  "function finalizeWithdraw(ChannelConfig config)",
  "error PaymentRouterZeroValue()",
  "error PaymentRouterInvalidChannel()",
  "error PaymentRouterInvalidWithdrawDelay(uint40 withdrawDelay)",
  "error PaymentRouterNotPayer(bytes32 channelId)",
  "error PaymentRouterWithdrawTooLarge(bytes32 channelId, uint256 amount, uint256 available)",
  "error PaymentRouterNoWithdrawal(bytes32 channelId)",
  "error PaymentRouterWithdrawNotReady(bytes32 channelId, uint64 availableAt)",
  "error EnforcedPause()",
  "error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)",
  "error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)",
]);
const deposited = parseAbiItem(
  "event ChannelDeposited(bytes32 indexed channelId, address indexed payer, uint256 amount)",
);
const withdrawalRequested = parseAbiItem(
  "event ChannelWithdrawalRequested(bytes32 indexed channelId, address indexed payer, uint64 availableAt)",
);

export interface ChannelConfig {
  payer: Address;
  payerAuthorizer: Address;
  receiver: Address;
  receiverAuthorizer: Address;
  token: Address;
  withdrawDelay: number;
  salt: Hex;
}

/** Recovered configs by channel id (ids are per router and chain: a hash over its EIP-712 domain). */
const configs = new Map<string, ChannelConfig>();


/** A decimal amount of tokens (18 decimals) typed in a field, as wei; a readable error otherwise. */
function parseTokens(text: string, what: string): bigint {
  const t = text.trim();
  if (!/^\d+(\.\d{1,18})?$/.test(t)) throw new Error(`The ${what} must be a number of tokens, e.g. 1.5.`);
  const wei = parseUnits(t, 18);
  if (wei === 0n) throw new Error(`The ${what} must be more than 0.`);
  return wei;
}

/** The gateway's channel terms: the `batch-settlement` requirement of the 402 that
 * `POST /v1/chat/completions` answers (unpaid) for a priced model (the one chosen in "Try the model", or
 * the first priced one). */
async function channelTerms(): Promise<PaymentRequirement> {
  const select = $("try-model") as HTMLSelectElement;
  const options = [...select.options].filter((o) => BigInt(o.dataset.price ?? "0") > 0n);
  const priced = options.find((o) => o.value === select.value) ?? options[0];
  if (!priced) {
    throw new Error("This server serves no priced model, so it announces no channel terms to deposit against.");
  }
  const res = await fetch(routes.chatCompletions(), {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, application/problem+json" },
    body: JSON.stringify({ model: priced.value, messages: [{ role: "user", content: "channel terms" }] }),
  });
  const header = res.headers.get("PAYMENT-REQUIRED");
  if (res.status !== 402 || !header) {
    throw new ApiError(
      `Asking for the channel terms, the server answered ${res.status} instead of 402 Payment Required.`,
      res.status, `http_${res.status}`, routes.chatCompletions(),
    );
  }
  const asked = decodeHeader<PaymentRequired>(header);
  const network = `eip155:${state.health?.chain_id}`;
  const req = asked.accepts.find((a) => a.scheme === SCHEME && a.network === network);
  if (!req) throw new Error("This server does not offer payment channels (no batch-settlement in its 402).");
  return req;
}

/** The page's deterministic config for channel number `n` of `account` under the gateway's terms. */
function configFor(account: Address, terms: PaymentRequirement, n: bigint): ChannelConfig {
  const extra = terms.extra ?? {};
  const authorizer = extra.receiverAuthorizer;
  const delay = Number(extra.withdrawDelay);
  if (typeof authorizer !== "string" || !Number.isInteger(delay)) {
    throw new Error("The server's batch-settlement terms name no receiverAuthorizer or withdrawDelay.");
  }
  const router = contract("PaymentRouter");
  const token = contract("RewardToken");
  if (terms.payTo.toLowerCase() !== router.toLowerCase() || terms.asset.toLowerCase() !== token.toLowerCase()) {
    throw new Error("The server's channel terms name another router or token than its deployment.");
  }
  return {
    payer: account, payerAuthorizer: account, receiver: router, receiverAuthorizer: authorizer as Address,
    token, withdrawDelay: delay, salt: pad(toHex(n), { size: 32 }),
  };
}

async function idOf(config: ChannelConfig): Promise<Hex> {
  return reader().readContract({
    address: contract("PaymentRouter"), abi: routerAbi, functionName: "channelId", args: [config],
  });
}

/** The config of channel `id` from the calldata of its deposit transaction `hash` (checked against the id),
 * or null when that transaction did not call the router directly. */
async function recoverConfig(id: Hex, hash: Hex): Promise<ChannelConfig | null> {
  const known = configs.get(id);
  if (known) return known;
  const tx = await reader().getTransaction({ hash });
  if (!tx.to || tx.to.toLowerCase() !== contract("PaymentRouter").toLowerCase()) return null;
  let config: ChannelConfig;
  try {
    const call = decodeFunctionData({ abi: routerAbi, data: tx.input });
    if (call.functionName !== "deposit" && call.functionName !== "depositWithAuthorization") return null;
    config = call.args[0] as ChannelConfig;
  } catch {
    return null;
  }
  if ((await idOf(config)).toLowerCase() !== id.toLowerCase()) return null;
  configs.set(id, config);
  return config;
}

async function mined(hash: Hex, what: string): Promise<bigint> {
  $("channel-status").textContent = `${what} sent: ${short(hash)}; waiting for it to be mined…`;
  const receipt = await reader().waitForTransactionReceipt({ hash, pollingInterval: 500 });
  if (receipt.status !== "success") throw new Error(`The ${what} transaction ${hash} reverted.`);
  return receipt.blockNumber;
}

async function depositFromForm(): Promise<void> {
  const { account, client } = signer();
  const amount = parseTokens(($("channel-deposit-amount") as HTMLInputElement).value, "deposit");
  const raw = ($("channel-deposit-number") as HTMLInputElement).value.trim();
  if (!/^\d+$/.test(raw)) throw new Error("The channel number must be a whole number (0, 1, 2…).");
  const status = $("channel-status");
  status.textContent = "Reading the server's channel terms…";
  const config = configFor(account, await channelTerms(), BigInt(raw));
  const router = contract("PaymentRouter");
  const token = contract("RewardToken");
  const allowance = await reader().readContract({
    address: token, abi: tokenAbi, functionName: "allowance", args: [account, router],
  });
  if (allowance < amount) {
    status.textContent = `Approve ${tokens(amount.toString())} tokens to the PaymentRouter in your wallet…`;
    const approval = await client.writeContract({
      account, chain: client.chain, address: token, abi: tokenAbi, functionName: "approve", args: [router, amount],
    });
    await mined(approval, "Approval");
  }
  status.textContent = `Confirm the deposit of ${tokens(amount.toString())} tokens in your wallet…`;
  const hash = await client.writeContract({
    account, chain: client.chain, address: router, abi: routerAbi, functionName: "deposit", args: [config, amount],
  });
  const block = await mined(hash, "Deposit");
  const id = await idOf(config);
  configs.set(id, config);
  status.textContent = `Deposited ${tokens(amount.toString())} tokens into channel ${short(id)} in block ${block}.`;
}

async function requestWithdrawal(id: Hex, config: ChannelConfig, input: HTMLInputElement): Promise<void> {
  const { account, client } = signer();
  const amount = parseTokens(input.value, "withdrawal amount");
  $("channel-status").textContent = `Confirm the withdrawal request of ${tokens(amount.toString())} tokens in your wallet…`;
  const hash = await client.writeContract({
    account, chain: client.chain, address: contract("PaymentRouter"), abi: routerAbi,
    functionName: "initiateWithdraw", args: [config, amount],
  });
  const block = await mined(hash, "Withdrawal request");
  $("channel-status").textContent =
    `Withdrawal of ${tokens(amount.toString())} tokens from channel ${short(id)} requested in block ${block}: ` +
    `it can be finalized after ${config.withdrawDelay} s of chain time.`;
}

async function finalizeWithdrawal(id: Hex, config: ChannelConfig): Promise<void> {
  const { account, client } = signer();
  $("channel-status").textContent = "Confirm the withdrawal in your wallet…";
  const hash = await client.writeContract({
    account, chain: client.chain, address: contract("PaymentRouter"), abi: routerAbi,
    functionName: "finalizeWithdraw", args: [config],
  });
  const block = await mined(hash, "Withdrawal");
  $("channel-status").textContent = `Withdrawal from channel ${short(id)} finalized in block ${block}.`;
}

let onChanged: () => Promise<void> = async () => undefined;

/** Run a channel action from `button`: busy state, a readable error, then the table and balance re-read. */
function act(button: HTMLButtonElement, label: string, work: () => Promise<void>): void {
  void busy(button, label, $("channel-error"), async () => {
    try {
      await work();
    } catch (err) {
      $("channel-status").textContent = "";
      throw err;
    }
    return true;
  }).then((done) => {
    if (done) void onChanged().catch((err) => showError($("channel-error"), err));
  });
}

/** Every channel of `payer` the gateway has served (`GET /v1/channels`, all keyset pages), by channel id. */
async function servedChannels(payer: Address): Promise<Map<string, ServedChannel>> {
  const out = new Map<string, ServedChannel>();
  let cursor: string | null = null;
  do {
    const params = new URLSearchParams({ payer, limit: "100" });
    if (cursor) params.set("cursor", cursor);
    const page: ChannelPage = await getJSON<ChannelPage>(routes.channels(params));
    for (const c of page.channels) out.set(c.channel_id.toLowerCase(), c);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

/** The voucher columns of one channel: latest voucher's ceiling, charged total, paid requests. */
function voucherCells(served: Map<string, ServedChannel> | null, id: Hex): HTMLElement[] {
  if (served === null) return [cell("unavailable"), cell("unavailable"), cell("unavailable")];
  const c = served.get(id.toLowerCase());
  if (!c || !c.voucher) return [cell("no voucher yet"), cell(withWei("0")), cell("0")];
  const ceiling = cell(withWei(c.voucher.maxClaimableAmount), `signature ${c.voucher.signature}`);
  ceiling.dataset.wei = c.voucher.maxClaimableAmount;
  const charged = cell(withWei(c.charged));
  charged.dataset.wei = c.charged;
  return [ceiling, charged, cell(String(c.requests))];
}

export async function loadChannels(address: Address): Promise<void> {
  const client = reader();
  const router = contract("PaymentRouter");
  // the deployment's first block (GET /health), not "earliest": no scan of the chain before the contracts
  const fromBlock = BigInt(state.health?.start_block ?? 0);
  const vouchersError = $("agent-vouchers-error");
  const [deposits, requests, clock, served] = await Promise.all([
    client.getLogs({ address: router, event: deposited, args: { payer: address }, fromBlock }),
    client.getLogs({ address: router, event: withdrawalRequested, args: { payer: address }, fromBlock }),
    chainClock(),
    servedChannels(address).then(
      (found) => {
        showError(vouchersError, null);
        return found;
      },
      (err: unknown) => {
        vouchersError.textContent = `The gateway's vouchers for these channels could not be read: ${describe(err)}`;
        vouchersError.hidden = false;
        return null;
      },
    ),
  ]);
  const first = new Map<Hex, Hex>(); // channel id -> its first deposit's transaction
  for (const l of deposits) if (!first.has(l.args.channelId as Hex)) first.set(l.args.channelId as Hex, l.transactionHash);
  const ids = [...first.keys()];
  const requested = new Map<string, bigint>();
  for (const r of requests) requested.set(r.args.channelId as Hex, r.args.availableAt as bigint);
  const rows = await Promise.all(
    ids.map(async (id) => {
      const [channel, pending, config] = await Promise.all([
        client.readContract({ address: router, abi: routerAbi, functionName: "channels", args: [id] }),
        client.readContract({ address: router, abi: routerAbi, functionName: "pendingWithdrawal", args: [id] }),
        recoverConfig(id, first.get(id)!).catch(() => null),
      ]);
      return { id, channel, pending, config };
    }),
  );
  $("agent-channels-body").replaceChildren(
    ...rows.map(({ id, channel, pending, config }) => {
      const unclaimed = channel.balance - channel.totalClaimed;
      const [pendingAmount, requestedAt] = pending;
      const at =
        requestedAt === 0n
          ? undefined
          : config
            ? requestedAt + BigInt(config.withdrawDelay)
            : requested.get(id);
      const withdrawal =
        requestedAt === 0n
          ? cell("none")
          : cell(
              at !== undefined ? `requested, available ${chainDate(Number(at))}` : "requested",
              `${tokens(pendingAmount.toString())} tokens requested`,
            );
      const actions = el("td", { class: "actions" });
      if (!config) {
        actions.textContent = "config not recoverable (deposited through another contract)";
      } else {
        const label = short(id);
        const amount = el("input", {
          inputmode: "decimal",
          value: tokens(unclaimed.toString()),
          "aria-label": `withdrawal amount (tokens) for channel ${label}`,
          "data-testid": "withdraw-amount",
        });
        const request = el(
          "button",
          { type: "button", "aria-label": `Request withdrawal from channel ${label}` },
          "Request withdrawal",
        );
        request.disabled = unclaimed === 0n;
        request.addEventListener("click", () =>
          act(request, "Requesting…", () => requestWithdrawal(id, config, amount)),
        );
        actions.append(amount, " ", request);
        if (requestedAt !== 0n && at !== undefined) {
          const ready = BigInt(clock.timestamp) >= at;
          const finalize = el(
            "button",
            {
              type: "button",
              "aria-label": `Finalize withdrawal from channel ${label}`,
              title: ready
                ? "available now on the chain's clock"
                : `available ${chainDate(Number(at))}; the chain's clock is at ${chainDate(clock.timestamp)}`,
            },
            "Finalize withdrawal",
          );
          finalize.disabled = !ready;
          finalize.addEventListener("click", () => act(finalize, "Finalizing…", () => finalizeWithdrawal(id, config)));
          actions.append(" ", finalize);
        }
      }
      return el(
        "tr",
        { "data-channel": id, "data-available-at": at?.toString() },
        cell(short(id), id),
        cell(withWei(channel.balance.toString())),
        cell(withWei(channel.totalClaimed.toString())),
        cell(withWei(unclaimed.toString())),
        withdrawal,
        ...voucherCells(served, id),
        actions,
      );
    }),
  );
  $("agent-channels-empty").hidden = ids.length > 0;
}

/** `changed`: what to re-read after an action (the channel table and the token balance). */
export function mountChannels(changed: () => Promise<void>): void {
  onChanged = changed;
  const form = $("channel-deposit-form");
  const button = $<HTMLButtonElement>("channel-deposit-submit");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(button, "Depositing…", depositFromForm);
  });
  const refresh = $<HTMLButtonElement>("channels-refresh");
  refresh.addEventListener("click", () => act(refresh, "Refreshing…", async () => undefined));
}
