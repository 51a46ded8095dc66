/**
 * Cairn web app: one page, hash-routed views. Read-only views work without a wallet; the contributor view
 * needs one. A view is a `<section data-view="name">` in index.html plus an entry in `VIEWS`.
 */
import { loadAgent, mountAgent } from "./views/agent";
import { loadAuditor, mountAuditor } from "./views/auditor";
import { loadContributions, mountContribute } from "./views/contribute";
import { loadHealth, mountOverview } from "./views/overview";
import { loadRewards, mountRewards } from "./views/rewards";
import { loadValidator } from "./views/validate";
import { mountWalletPanel } from "./ui/walletPanel";
import { describe } from "./ui/errors";
import { state, subscribe } from "./state";
import { $ } from "./ui/dom";

interface View {
  title: string;
  /** called each time the view is shown */
  show: () => Promise<void>;
}

const overview = mountOverview();
mountAuditor();
mountContribute();
mountRewards();
mountAgent();

const VIEWS: Record<string, View> = {
  overview: { title: "Overview", show: overview.refresh },
  contribute: {
    title: "Contribute",
    show: async () => {
      await Promise.all([loadContributions(state.account), loadRewards(state.account)]);
    },
  },
  validate: { title: "Validate", show: loadValidator },
  agent: { title: "Agent", show: loadAgent },
  auditor: { title: "Auditor", show: loadAuditor },
};

function current(): string {
  const name = window.location.hash.replace(/^#\/?/, "");
  return name in VIEWS ? name : "overview";
}

async function route(): Promise<void> {
  const name = current();
  for (const section of document.querySelectorAll<HTMLElement>("main [data-view]")) {
    section.hidden = section.dataset.view !== name;
  }
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a[data-nav]")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `Cairn · ${VIEWS[name].title}`;
  document.body.dataset.view = name;
  try {
    await VIEWS[name].show();
  } catch (err) {
    const box = $("app-error");
    box.textContent = describe(err);
    box.hidden = false;
  }
}

window.addEventListener("hashchange", () => void route());
window.addEventListener("unhandledrejection", (ev) => {
  const box = $("app-error");
  box.textContent = describe(ev.reason);
  box.hidden = false;
});

let lastAccount: string | null = null;
let lastChain: number | null = null;
let lastSession: string | null = null;
subscribe((s) => {
  // a new account, network or session (signing in switches the contributor view to /v1/me/*)
  if (s.account !== lastAccount || s.walletChainId !== lastChain || s.session !== lastSession) {
    lastAccount = s.account;
    lastChain = s.walletChainId;
    lastSession = s.session;
    if (["contribute", "validate", "agent"].includes(current())) void VIEWS[current()].show();
  }
  $("contribute-needs-wallet").hidden = s.account !== null;
});

async function boot(): Promise<void> {
  $("app-missing").hidden = true;
  mountWalletPanel();
  await loadHealth();
  await route();
  document.body.dataset.loaded = "true";
  window.setInterval(() => void loadHealth(), 10_000);
}

void boot();
