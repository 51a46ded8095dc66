/**
 * Every API route the web app calls, in one place (adjust here when a route moves).
 *
 * Each is a route of backend/api/routers (the API's OpenAPI document lists them all).
 */

const enc = encodeURIComponent;

export const routes = {
  // health and the chain's clock (chain id, latest block number and timestamp, contracts, epoch clock)
  health: () => "/health",

  // contributors (main)
  datasets: (params: URLSearchParams) => `/v1/datasets?${params}`,
  dataset: (contentHash: string) => `/v1/datasets/${enc(contentHash)}`,
  contribution: (id: string) => `/v1/contributions/${enc(id)}`,
  account: (address: string) => `/v1/accounts/${enc(address)}`,
  registerDatasetTypedData: (params: URLSearchParams) => `/v1/eip712/register-dataset?${params}`,
  relayDataset: () => "/v1/datasets",
  relay: (relayId: string) => `/v1/relays/${enc(relayId)}`,
  relayClaim: () => "/v1/relay/claim", // POST {account}: claimFor, the relayer pays the gas

  // rewards and auditors (main)
  epochs: () => "/v1/epochs",
  epoch: (n: number) => `/v1/epochs/${n}`,
  /** Lorenz curve (101 points) and Gini coefficient of the epoch's rewards, computed by the server */
  distribution: (n: number) => `/v1/epochs/${n}/distribution`,
  proof: (n: number, address: string) => `/v1/epochs/${n}/proofs/${enc(address)}`,
  /** `ref` is the allocation's hash, file name or the `uri` published with its root (a relative path). */
  allocation: (ref: string) => `/v1/allocations/${ref.split("/").map(enc).join("/")}`,
  policy: (policyHash: string) => `/v1/policy/${enc(policyHash)}`,

  // sign-in with Ethereum (EIP-4361, backend/api/routers/auth.py) and the signed-in account's views
  authNonce: () => "/v1/auth/nonce", // POST
  authSiwe: () => "/v1/auth/siwe", // POST {message, signature}
  authSession: () => "/v1/auth/session",
  authSignout: () => "/v1/auth/signout", // POST, 204
  me: () => "/v1/me",
  myContributions: (params: URLSearchParams) => `/v1/me/contributions?${params}`, // limit, cursor (keyset)
  myRewards: () => "/v1/me/rewards",
  myClaims: () => "/v1/me/claims",

  // the content store (content-addressed by SHA-256)
  content: (contentHash: string) => `/v1/content/${enc(contentHash)}`,

  // a validator's review queue: contributions it has not attested yet
  validatorQueue: (address: string) => `/v1/validators/${enc(address)}/queue`,

  // x402 payments of one payer (with its unsettled exposure)
  payments: (payer: string) => `/v1/payments?payer=${enc(payer)}`,
  // the payment channels the gateway has served for a payer: latest voucher, charged total, requests (keyset)
  channels: (params: URLSearchParams) => `/v1/channels?${params}`,

  // OpenAI-compatible inference (backend/api/routers/inference.py); the completion is paid with x402
  models: () => "/v1/models",
  chatCompletions: () => "/v1/chat/completions", // POST; 402 + PAYMENT-REQUIRED until paid

  // the audit report written by `cairn audit`
  auditLatest: () => "/v1/audit/latest",
} as const;

export type Routes = typeof routes;
