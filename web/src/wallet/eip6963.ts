/**
 * EIP-6963 multi-wallet discovery: every installed wallet announces itself (`eip6963:announceProvider`) in
 * answer to `eip6963:requestProvider`; a wallet that only injects `window.ethereum` is used as a fallback.
 */
import type { EIP1193Provider } from "viem";

export interface ProviderInfo {
  uuid: string;
  name: string;
  icon: string;
  rdns: string;
}

export interface ProviderDetail {
  info: ProviderInfo;
  provider: EIP1193Provider;
}

interface AnnounceEvent extends Event {
  detail: ProviderDetail;
}

/** A wallet that injects only `window.ethereum` (from before EIP-6963), or null. */
export function legacyProvider(): ProviderDetail | null {
  const injected = (window as unknown as { ethereum?: EIP1193Provider }).ethereum;
  if (!injected || typeof injected.request !== "function") return null;
  return {
    info: { uuid: "legacy", name: "Browser wallet", icon: "", rdns: "legacy.window.ethereum" },
    provider: injected,
  };
}

export function discoverProviders(onChange: (all: ProviderDetail[]) => void): () => void {
  const found = new Map<string, ProviderDetail>();
  const onAnnounce = (event: Event): void => {
    const detail = (event as AnnounceEvent).detail;
    if (!detail?.info?.uuid || typeof detail.provider?.request !== "function") return;
    found.set(detail.info.uuid, Object.freeze({ info: { ...detail.info }, provider: detail.provider }));
    onChange([...found.values()]);
  };
  window.addEventListener("eip6963:announceProvider", onAnnounce);
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  const fallback = window.setTimeout(() => {
    const legacy = legacyProvider();
    if (found.size === 0 && legacy) {
      found.set("legacy", legacy);
      onChange([...found.values()]);
    }
  }, 500);
  return () => {
    window.removeEventListener("eip6963:announceProvider", onAnnounce);
    window.clearTimeout(fallback);
  };
}
