/** The app's shared state (the API's health, the connected wallet, the signed-in session) and its listeners. */
import type { Health } from "./api/types";
import type { ProviderDetail } from "./wallet/eip6963";

export interface AppState {
  health: Health | null;
  providers: ProviderDetail[];
  wallet: ProviderDetail | null;
  account: `0x${string}` | null;
  walletChainId: number | null;
  /** the address the API's session cookie is for (SIWE), or null */
  session: string | null;
}

export const state: AppState = {
  health: null,
  providers: [],
  wallet: null,
  account: null,
  walletChainId: null,
  session: null,
};

type Listener = (s: AppState) => void;
const listeners = new Set<Listener>();

export function update(patch: Partial<AppState>): void {
  Object.assign(state, patch);
  for (const f of listeners) f(state);
}

export function subscribe(f: Listener): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

/** The deployment's chain id (from the API), or null before the API answered. */
export const deploymentChainId = (): number | null => state.health?.chain_id ?? null;

export const onRightChain = (): boolean =>
  state.walletChainId !== null && state.walletChainId === deploymentChainId();

/** True when the API's session is for `address` (the connected account): its `/v1/me/*` views then apply. */
export const signedInAs = (address: string | null): boolean =>
  address !== null && state.session !== null && state.session.toLowerCase() === address.toLowerCase();
