/**
 * The connected EIP-1193 wallet: connect, follow account and chain changes, detect a wrong network and
 * switch to the deployment's chain (`wallet_switchEthereumChain`, adding it when the wallet lacks it), and
 * a viem wallet client for signing.
 */
import { createWalletClient, custom, defineChain, getAddress, type WalletClient } from "viem";
import { state, update, deploymentChainId } from "../state";
import type { ProviderDetail } from "./eip6963";

export class WrongNetworkError extends Error {
  constructor(
    readonly walletChainId: number | null,
    readonly expected: number,
  ) {
    super(
      `Your wallet is on chain ${walletChainId ?? "unknown"}, but this Cairn deployment runs on chain ` +
        `${expected}. Switch the network to continue.`,
    );
    this.name = "WrongNetworkError";
  }
}

export class NotConnectedError extends Error {
  constructor() {
    super("Connect a wallet first.");
    this.name = "NotConnectedError";
  }
}

let unsubscribe: (() => void) | null = null;

const parseChainId = (hex: unknown): number | null =>
  typeof hex === "string" ? Number.parseInt(hex, 16) : typeof hex === "number" ? hex : null;

export async function connect(detail: ProviderDetail): Promise<void> {
  const { provider } = detail;
  const accounts = (await provider.request({ method: "eth_requestAccounts" })) as string[];
  if (!accounts.length) throw new Error(`${detail.info.name} shared no account.`);
  const chainId = parseChainId(await provider.request({ method: "eth_chainId" }));
  unsubscribe?.();
  const onAccounts = (accs: string[]): void => {
    if (!accs.length) disconnect();
    else update({ account: getAddress(accs[0]), session: null });
  };
  const onChain = (hex: string): void => update({ walletChainId: parseChainId(hex) });
  provider.on("accountsChanged", onAccounts);
  provider.on("chainChanged", onChain);
  unsubscribe = () => {
    provider.removeListener("accountsChanged", onAccounts);
    provider.removeListener("chainChanged", onChain);
  };
  update({ wallet: detail, account: getAddress(accounts[0]), walletChainId: chainId });
}

export function disconnect(): void {
  unsubscribe?.();
  unsubscribe = null;
  update({ wallet: null, account: null, walletChainId: null, session: null });
}

/** Ask the wallet to move to the deployment's chain (adding it from the API's RPC URL when unknown). */
export async function switchToDeploymentChain(): Promise<void> {
  const wallet = state.wallet;
  const expected = deploymentChainId();
  if (!wallet) throw new NotConnectedError();
  if (expected === null) throw new Error("The API has not reported its chain yet; retry in a moment.");
  const chainId = `0x${expected.toString(16)}`;
  try {
    await wallet.provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
  } catch (err) {
    if ((err as { code?: number }).code !== 4902 || !state.health) throw err;
    await wallet.provider.request({
      method: "wallet_addEthereumChain",
      params: [
        {
          chainId,
          chainName: `Cairn (chain ${expected})`,
          nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
          rpcUrls: [state.health.rpc_url],
        },
      ],
    });
  }
  update({ walletChainId: parseChainId(await wallet.provider.request({ method: "eth_chainId" })) });
}

/** The connected account and a viem wallet client, once the wallet is on the deployment's chain. */
export function signer(): { account: `0x${string}`; client: WalletClient } {
  const { wallet, account } = state;
  if (!wallet || !account) throw new NotConnectedError();
  const expected = deploymentChainId();
  if (expected === null) throw new Error("The API has not reported its chain yet; retry in a moment.");
  if (state.walletChainId !== expected) throw new WrongNetworkError(state.walletChainId, expected);
  const chain = defineChain({
    id: expected,
    name: `Cairn chain ${expected}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: state.health ? [state.health.rpc_url] : [] } },
  });
  return { account, client: createWalletClient({ account, chain, transport: custom(wallet.provider) }) };
}
