/** The header's wallet panel: choose a wallet (EIP-6963), connect, network check and switch, sign in / out. */
import { state, subscribe, onRightChain, deploymentChainId } from "../state";
import { discoverProviders, legacyProvider, type ProviderDetail } from "../wallet/eip6963";
import { connect, disconnect, switchToDeploymentChain } from "../wallet/wallet";
import { currentSession, signIn, signOut } from "../wallet/siwe";
import { short } from "../lib/format";
import { $, busy, el, showError } from "./dom";

function renderChoices(providers: ProviderDetail[]): void {
  const list = $("wallet-choices");
  list.replaceChildren(
    ...providers.map((p) => {
      const button = el("button", { type: "button", class: "wallet-choice", "data-rdns": p.info.rdns });
      if (p.info.icon.startsWith("data:image/")) {
        button.append(el("img", { src: p.info.icon, alt: "", width: "20", height: "20" }));
      }
      button.append(el("span", { text: p.info.name }));
      button.addEventListener("click", () => {
        void busy(button, `Connecting ${p.info.name}…`, $("wallet-error"), async () => {
          await connect(p);
          list.hidden = true;
          await currentSession().catch(() => null); // a session cookie from an earlier sign-in, if any
        });
      });
      return el("li", {}, button);
    }),
  );
}

function render(): void {
  const connected = state.account !== null;
  $("connect-button").hidden = connected;
  $("wallet-connected").hidden = !connected;
  $("wallet-account").textContent = connected ? short(state.account) : "";
  $("wallet-account").title = state.account ?? "";
  $("wallet-name").textContent = state.wallet?.info.name ?? "";
  const wrong = connected && deploymentChainId() !== null && !onRightChain();
  const warning = $("network-warning");
  warning.hidden = !wrong;
  if (wrong) {
    $("network-warning-text").textContent =
      `Wrong network: your wallet is on chain ${state.walletChainId ?? "unknown"}, ` +
      `this Cairn deployment runs on chain ${deploymentChainId()}.`;
  }
  $("signin-button").hidden = !connected || state.session !== null;
  $("signout-button").hidden = state.session === null;
  $("session-status").textContent = state.session ? `Signed in as ${short(state.session)}` : "";
  document.body.dataset.wallet = connected ? (wrong ? "wrong-network" : "connected") : "none";
}

export function mountWalletPanel(): void {
  const error = $("wallet-error");
  $("connect-button").addEventListener("click", () => {
    const list = $("wallet-choices");
    const legacy = state.providers.length === 0 ? legacyProvider() : null;
    if (legacy) {
      state.providers = [legacy];
      renderChoices(state.providers);
    }
    if (state.providers.length === 0) {
      showError(
        error,
        new Error("No browser wallet found. Install an Ethereum wallet extension (EIP-6963), then reload."),
      );
      return;
    }
    showError(error, null);
    list.hidden = !list.hidden;
    if (!list.hidden) list.querySelector("button")?.focus();
  });
  $("disconnect-button").addEventListener("click", () => disconnect());
  const sw = $<HTMLButtonElement>("switch-network");
  sw.addEventListener("click", () => void busy(sw, "Switching…", error, switchToDeploymentChain));
  const si = $<HTMLButtonElement>("signin-button");
  si.addEventListener("click", () => void busy(si, "Signing in…", error, signIn));
  const so = $<HTMLButtonElement>("signout-button");
  so.addEventListener("click", () => void busy(so, "Signing out…", error, signOut));
  discoverProviders((all) => {
    state.providers = all;
    renderChoices(all);
  });
  subscribe(render);
  render();
}
