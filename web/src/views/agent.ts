/**
 * Agent view: the connected account as a paying agent. Its RewardToken balance (read from the chain), its
 * x402 payments from `GET /v1/payments?payer=` (status, settlement transaction, the server's unsettled
 * exposure for it) with the spend per model (a table, and a chart of each model's cumulative spend over the
 * payments' times), and its payment channels on the PaymentRouter: found from the
 * router's `ChannelDeposited` logs for this payer and read with `channels(id)` (balance, claimed by the
 * gateway, unclaimed, a pending withdrawal) and, from `GET /v1/channels?payer=`, the latest voucher's cumulative
 * ceiling, the charged total and the paid requests the gateway holds for each, with the payer's deposit and
 * withdrawal actions (views/channels.ts).
 * The "try the model" box asks `POST /v1/chat/completions` and pays its 402 with x402 (`exact`, an EIP-3009
 * authorization signed by the wallet: lib/x402.ts), then shows the answer, the datasets it drew on
 * (`cairn.datasets`), the price paid and the decoded PAYMENT-RESPONSE.
 */
import uPlot from "uplot";
import { parseAbi, type Address } from "viem";
import { ApiError, getJSON } from "../api/client";
import { chainClock } from "../lib/clock";
import {
  decodeHeader, paymentSignature, pickExact, PaymentRefusedError,
  type PaymentRequired, type SettleResponse,
} from "../lib/x402";
import { signer } from "../wallet/wallet";
import { contract, reader } from "../wallet/contracts";
import { routes } from "../api/routes";
import type { PaymentList } from "../api/types";
import { chainDate, short, tokens, withWei } from "../lib/format";
import { $, cell, el, showError } from "../ui/dom";
import { describe } from "../ui/errors";
import { state } from "../state";
import { loadChannels, mountChannels } from "./channels";

const tokenAbi = parseAbi(["function balanceOf(address account) view returns (uint256)"]);


const COLOURS = ["#2f6f4f", "#8a4f9e", "#c2662d", "#2d6fc2", "#9e2f4f"];
let spendChart: uPlot | null = null;

/** Each model's cumulative spend (tokens) at each payment's time: one stepped line per model. */
function drawSpend(payments: PaymentList["payments"]): void {
  const target = $("agent-spend-chart");
  spendChart?.destroy();
  spendChart = null;
  target.replaceChildren();
  const counted = payments.filter((p) => p.status !== "failed").sort((a, b) => a.created_at - b.created_at);
  const models = [...new Set(counted.map((p) => p.model_id))];
  const running = new Map<string, bigint>(models.map((m) => [m, 0n]));
  // start from nothing spent, just before the first payment
  const times: number[] = counted.length ? [counted[0].created_at - 1] : [];
  const series: number[][] = models.map(() => (counted.length ? [0] : []));
  for (const p of counted) {
    running.set(p.model_id, running.get(p.model_id)! + BigInt(p.amount));
    const last = times.length - 1;
    if (last < 0 || times[last] !== p.created_at) {
      times.push(p.created_at);
      models.forEach((m, i) => series[i].push(Number(running.get(m)! / 10n ** 12n) / 1e6));
    } else {
      models.forEach((m, i) => (series[i][last] = Number(running.get(m)! / 10n ** 12n) / 1e6));
    }
  }
  target.dataset.series = models
    .map((m) => `${m}:${tokens(running.get(m)!.toString())}`)
    .join(",");
  target.setAttribute(
    "aria-label",
    models.length
      ? `Spend per model over time: ${models.map((m) => `${short(m)} ${tokens(running.get(m)!.toString())} tokens`).join(", ")}`
      : "Spend per model over time: no payment yet",
  );
  if (!models.length) {
    target.textContent = "No payment yet.";
    return;
  }
  spendChart = new uPlot(
    {
      width: Math.max(240, Math.min(560, target.clientWidth || 560)),
      height: 200,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: [
        { label: "time (UTC)" },
        ...models.map((m, i) => ({
          label: short(m),
          stroke: COLOURS[i % COLOURS.length],
          width: 2,
          paths: uPlot.paths.stepped!({ align: 1 }),
        })),
      ],
      axes: [{}, { label: "tokens spent", size: 70 }],
      scales: {
        x: {
          time: true,
          range: (_u, min, max) => {
            const pad = Math.max(60, (max - min) * 0.05);
            return [min - pad, max + pad];
          },
        },
        y: { range: (_u, _min, max) => [0, Math.max(max, 1e-6) * 1.1] },
      },
    },
    [times, ...series],
    target,
  );
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
  drawSpend(list.payments);
  const e = list.exposure;
  $("agent-exposure").textContent = e
    ? `${withWei(e.unsettled)} served but not settled yet (limit ${tokens(e.limit)})` +
      (e.failed ? `; ${e.failed} failed settlement(s) of ${tokens(e.failed_amount)} tokens` : "") +
      (e.refused ? ": the server refuses new payments from this account until they settle." : ".")
    : "—";
}

/** The RewardToken balance of `address` read from the chain and shown (`data-wei` holds it exactly). */
async function refreshBalance(address: Address): Promise<bigint> {
  const b = await reader().readContract({
    address: contract("RewardToken"), abi: tokenAbi, functionName: "balanceOf", args: [address],
  });
  $("agent-balance").textContent = withWei(b.toString());
  $("agent-balance").dataset.wei = b.toString();
  return b;
}

let balancePoll = 0;

/** After a paid answer the payment settles later (the API's settler): re-read the balance every 2 s until
 * it changes from `before`, for at most two minutes. */
function pollBalance(address: Address, before: bigint): void {
  const mine = ++balancePoll;
  const until = Date.now() + 120_000;
  const tick = async (): Promise<void> => {
    if (mine !== balancePoll || state.account?.toLowerCase() !== address.toLowerCase()) return;
    const b = await refreshBalance(address).catch(() => before);
    if (b !== before) {
      void loadPayments(address).catch(() => undefined);
      return;
    }
    if (Date.now() < until) window.setTimeout(() => void tick(), 2000);
  };
  window.setTimeout(() => void tick(), 1000);
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
    await loadModels().catch((err) => showError($("try-error"), err));
    await loadPayments(address);
    if (state.walletChainId === state.health?.chain_id) {
      await refreshBalance(address);
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

interface ModelCard {
  id: string;
  cairn: { model_id: string; price: string };
}
interface Completion {
  choices: { message: { content: string } }[];
  cairn: { model_id: string; datasets: { id: string; score: number }[] };
}

async function loadModels(): Promise<void> {
  const select = $("try-model") as HTMLSelectElement;
  const list = await getJSON<{ data: ModelCard[] }>(routes.models());
  const keep = select.value;
  select.replaceChildren(
    ...list.data.map((m) =>
      el("option", { value: m.id, "data-price": m.cairn.price }, `${m.id} (${tokens(m.cairn.price)} tokens)`),
    ),
  );
  if (list.data.some((m) => m.id === keep)) select.value = keep;
  ($("try-submit") as HTMLButtonElement).disabled = list.data.length === 0;
  $("try-no-model").hidden = list.data.length > 0;
}

async function post(body: unknown, payment?: string): Promise<Response> {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Accept: "application/json, application/problem+json",
  };
  if (payment) headers["PAYMENT-SIGNATURE"] = payment;
  return fetch(routes.chatCompletions(), { method: "POST", headers, body: JSON.stringify(body) });
}

async function problem(res: Response): Promise<ApiError> {
  let detail = `${res.status} ${res.statusText}`;
  let code = `http_${res.status}`;
  try {
    const p = (await res.json()) as { detail?: string; code?: string };
    if (p.detail) detail = p.detail;
    if (p.code) code = p.code;
  } catch {
    /* not problem+json: keep the status line */
  }
  return new ApiError(detail, res.status, code, routes.chatCompletions());
}

function required(res: Response): PaymentRequired {
  const header = res.headers.get("PAYMENT-REQUIRED");
  if (!header) throw new Error("The server answered 402 without a PAYMENT-REQUIRED header.");
  return decodeHeader<PaymentRequired>(header);
}

/** Ask the model, paying its 402 from the wallet; show the answer, datasets, price and settlement. */
async function tryModel(): Promise<void> {
  const out = $("try-result");
  const error = $("try-error");
  const status = $("try-status");
  const button = $("try-submit") as HTMLButtonElement;
  showError(error, null);
  out.hidden = true;
  button.disabled = true;
  try {
    const { account, client } = signer();
    const body = {
      model: ($("try-model") as HTMLSelectElement).value,
      messages: [{ role: "user", content: ($("try-question") as HTMLTextAreaElement).value }],
    };
    status.textContent = "Asking the model…";
    let res = await post(body);
    let price: string | null = null;
    if (res.status === 402) {
      const asked = required(res);
      const clock = await chainClock();
      const req = pickExact(asked, clock.chainId);
      price = req.amount;
      status.textContent = `The model costs ${tokens(req.amount)} tokens: sign the payment in your wallet…`;
      const header = await paymentSignature(client, account, asked, req, clock);
      status.textContent = "Paid; waiting for the answer…";
      res = await post(body, header);
      if (res.status === 402) {
        const reason = required(res).error ?? "no reason given";
        throw new PaymentRefusedError(reason, (await problem(res)).message);
      }
    }
    if (!res.ok) throw await problem(res);
    const answer = (await res.json()) as Completion;
    const settle = res.headers.get("PAYMENT-RESPONSE");
    $("try-answer").textContent = answer.choices[0]?.message.content ?? "";
    $("try-datasets").replaceChildren(
      ...answer.cairn.datasets.map((d) =>
        el("li", { "data-dataset": d.id }, el("code", { title: d.id }, short(d.id)), ` (score ${d.score.toFixed(3)})`),
      ),
    );
    $("try-datasets-empty").hidden = answer.cairn.datasets.length > 0;
    const paid = $("try-price");
    paid.textContent = price === null ? "nothing (free)" : withWei(price);
    paid.dataset.wei = price ?? "0";
    const receipt = $("try-receipt");
    if (settle) {
      const s = decodeHeader<SettleResponse>(settle);
      receipt.textContent =
        `${s.success ? "accepted" : `not accepted (${s.errorReason ?? "no reason"})`}` +
        (s.transaction ? `, transaction ${s.transaction}` : ", settlement on chain pending") +
        (s.payer ? `, payer ${s.payer}` : "");
      receipt.dataset.response = JSON.stringify(s);
    } else {
      receipt.textContent = "none (no payment was asked)";
      delete receipt.dataset.response;
    }
    out.hidden = false;
    status.textContent = "Answered.";
    void loadPayments(account).catch((err) => showError($("agent-error"), err));
    if (price !== null && state.walletChainId === state.health?.chain_id) {
      const shown = $("agent-balance").dataset.wei;
      pollBalance(account, shown !== undefined ? BigInt(shown) : await refreshBalance(account));
    }
  } catch (err) {
    status.textContent = "";
    showError(error, err);
    error.dataset.message = describe(err);
  } finally {
    button.disabled = false;
  }
}

export function mountAgent(): void {
  mountChannels(async () => {
    const address = state.account;
    if (!address) return;
    await Promise.all([refreshBalance(address), loadChannels(address)]);
  });
  $("try-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void tryModel();
  });
}
