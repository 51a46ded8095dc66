/**
 * An x402 v2 client for the `exact` EVM scheme, paid from the connected wallet (the official SDK's
 * `x402.mechanisms.evm.exact` client, in the browser): read the 402's `PAYMENT-REQUIRED` header (standard
 * base64 JSON), sign an EIP-3009 `TransferWithAuthorization` with `eth_signTypedData_v4` under the token's
 * EIP-712 domain {name, version, chainId, verifyingContract: asset}, and send it back as `PAYMENT-SIGNATURE`
 * = base64 JSON of the PaymentPayload {x402Version: 2, payload: {authorization, signature}, accepted,
 * resource}. The validity window ends at the chain's clock (GET /health) + `maxTimeoutSeconds`, never the
 * browser's clock.
 */
import { bytesToHex, type Address, type Hex, type WalletClient } from "viem";
import type { ChainClock } from "./clock";

export interface PaymentRequirement {
  scheme: string;
  network: string;
  asset: string;
  payTo: string;
  amount: string;
  maxTimeoutSeconds: number;
  extra?: { name?: string; version?: string; [k: string]: unknown };
}

export interface PaymentRequired {
  x402Version: number;
  error?: string;
  resource?: { url: string; description?: string; mimeType?: string };
  accepts: PaymentRequirement[];
}

export interface SettleResponse {
  success: boolean;
  transaction?: string;
  network?: string;
  payer?: string;
  errorReason?: string;
  [k: string]: unknown;
}

/** The x402 refusal of a payment: the reason code from the PAYMENT-REQUIRED `error` and the problem's detail. */
export class PaymentRefusedError extends Error {
  readonly reason: string;
  constructor(reason: string, detail: string | null) {
    super(`The server refused the payment (${reason})${detail ? `: ${detail}` : ""}.`);
    this.name = "PaymentRefusedError";
    this.reason = reason;
  }
}

/** Standard base64 (with padding) of UTF-8 JSON: every x402 v2 header. */
export function encodeHeader(value: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function decodeHeader<T>(header: string): T {
  const bin = atob(header.trim());
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes)) as T;
}

const TRANSFER_WITH_AUTHORIZATION = [
  { name: "from", type: "address" },
  { name: "to", type: "address" },
  { name: "value", type: "uint256" },
  { name: "validAfter", type: "uint256" },
  { name: "validBefore", type: "uint256" },
  { name: "nonce", type: "bytes32" },
] as const;

/** The `exact` requirement on `chainId` among the server's offers, or an error naming what it offers. */
export function pickExact(required: PaymentRequired, chainId: number): PaymentRequirement {
  const want = `eip155:${chainId}`;
  const found = required.accepts.find((a) => a.scheme === "exact" && a.network === want);
  if (!found) {
    const offered = required.accepts.map((a) => `${a.scheme} on ${a.network}`).join(", ") || "nothing";
    throw new Error(`The server asks for no "exact" payment on ${want} (it offers ${offered}).`);
  }
  if (!found.extra?.name || !found.extra?.version) {
    throw new Error("The server's payment requirement does not name the token's EIP-712 domain.");
  }
  return found;
}

/** Sign the EIP-3009 authorization for `req` and return the PAYMENT-SIGNATURE header value. */
export async function paymentSignature(
  client: WalletClient,
  account: Address,
  required: PaymentRequired,
  req: PaymentRequirement,
  clock: ChainClock,
): Promise<string> {
  const nonce = bytesToHex(crypto.getRandomValues(new Uint8Array(32))) as Hex;
  const authorization = {
    from: account,
    to: req.payTo as Address,
    value: req.amount,
    validAfter: "0",
    validBefore: String(clock.timestamp + req.maxTimeoutSeconds),
    nonce,
  };
  const signature = await client.signTypedData({
    account,
    domain: {
      name: req.extra!.name!,
      version: req.extra!.version!,
      chainId: clock.chainId,
      verifyingContract: req.asset as Address,
    },
    types: { TransferWithAuthorization: TRANSFER_WITH_AUTHORIZATION },
    primaryType: "TransferWithAuthorization",
    message: {
      ...authorization,
      value: BigInt(authorization.value),
      validAfter: 0n,
      validBefore: BigInt(authorization.validBefore),
    },
  });
  return encodeHeader({
    x402Version: 2,
    payload: { authorization, signature },
    accepted: req,
    resource: required.resource,
  });
}
