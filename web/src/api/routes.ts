/**
 * Every API route the web app calls, in one place (adjust here when a route moves).
 *
 * Routes marked "planned" belong to APIs built in other branches (SIWE sign-in and /v1/me views, the
 * validator queue, exports, the content store, x402): the views that use them plug in through this module.
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

  // rewards and auditors (main)
  epochs: () => "/v1/epochs",
  epoch: (n: number) => `/v1/epochs/${n}`,
  proof: (n: number, address: string) => `/v1/epochs/${n}/proofs/${enc(address)}`,
  /** `ref` is the allocation's hash, file name or the `uri` published with its root (a relative path). */
  allocation: (ref: string) => `/v1/allocations/${ref.split("/").map(enc).join("/")}`,
  policy: (policyHash: string) => `/v1/policy/${enc(policyHash)}`,

  // sign-in with Ethereum (planned: siwe branch, EIP-4361)
  authNonce: () => "/v1/auth/nonce",
  authSiwe: () => "/v1/auth/siwe",
  authLogout: () => "/v1/auth/logout",
  me: () => "/v1/me",
} as const;

export type Routes = typeof routes;
