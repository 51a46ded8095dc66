/** The deployment's contracts as the API lists them (`GET /health`) and a client reading them through the
 * connected wallet's provider: one owner for every view that reads or sends to a contract. */
import { createPublicClient, custom, type Address } from "viem";
import { state } from "../state";

export function contract(name: string): Address {
  const addr = state.health?.contracts[name];
  if (!addr) throw new Error(`The API does not list a ${name} contract.`);
  return addr as Address;
}

export function reader() {
  if (!state.wallet) throw new Error("Connect a wallet first.");
  return createPublicClient({ transport: custom(state.wallet.provider) });
}
