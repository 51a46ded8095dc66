// The official x402 JavaScript client (@x402/fetch, @x402/core, @x402/evm 2.27, unmodified) paying Cairn's
// `POST /v1/chat/completions`: the README's JavaScript snippet, run by tests/integration/test_x402_js_client.py.
//
//   node tests/support/x402_js_client.mjs BASE_URL PRIVATE_KEY CHAIN_ID REWARD_TOKEN MAX_AMOUNT MODEL PROMPT
//
// Prints one JSON line: {status, body, paymentResponse} (paymentResponse: the decoded PAYMENT-RESPONSE, or
// null). Exits 0 whatever the HTTP status; 1 (the error on stderr) when the client refuses to pay.
import { x402Client } from "@x402/core/client";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { decodePaymentResponseHeader, wrapFetchWithPayment } from "@x402/fetch";
import { privateKeyToAccount } from "viem/accounts";

const [BASE_URL, KEY, CHAIN_ID, REWARD_TOKEN, MAX_AMOUNT, MODEL, PROMPT] = process.argv.slice(2);
const NETWORK = `eip155:${CHAIN_ID}`;

// --- the README snippet ---
const client = new x402Client();
registerExactEvmScheme(client, { signer: privateKeyToAccount(KEY), networks: [NETWORK] });
client.setSpendControls({ allowedAssets: [
  { network: NETWORK, asset: REWARD_TOKEN, maxAmountPerPayment: MAX_AMOUNT },
] });
const fetchWithPayment = wrapFetchWithPayment(fetch, client);
const resp = await fetchWithPayment(`${BASE_URL}/v1/chat/completions`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: PROMPT }] }),
});
const answer = await resp.json(); // answer.cairn.datasets: the datasets it drew on
const header = resp.headers.get("PAYMENT-RESPONSE");
// --- end of the snippet ---

console.log(JSON.stringify({
  status: resp.status,
  body: answer,
  paymentResponse: header ? decodePaymentResponseHeader(header) : null,
}));
