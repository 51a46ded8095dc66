// The page side of the test wallet (tests/support/browser.py): an EIP-1193 provider announced through
// EIP-6963 like a browser extension, forwarding every request to `window.cairnTestWallet` (Python).
(() => {
  const listeners = {};
  const emit = (event, arg) => (listeners[event] || []).slice().forEach((f) => f(arg));
  const provider = {
    async request({ method, params }) {
      const answer = JSON.parse(await window.cairnTestWallet(method, JSON.stringify(params || [])));
      if (answer.error) {
        const err = new Error(answer.error.message);
        err.code = answer.error.code;
        if (answer.error.data !== undefined) err.data = answer.error.data;
        throw err;
      }
      if (method === "wallet_switchEthereumChain") emit("chainChanged", params[0].chainId);
      if (method === "eth_requestAccounts") emit("connect", { chainId: await provider.request({ method: "eth_chainId" }) });
      return answer.result;
    },
    on(event, f) { (listeners[event] = listeners[event] || []).push(f); return provider; },
    removeListener(event, f) { listeners[event] = (listeners[event] || []).filter((g) => g !== f); return provider; },
  };
  const icon = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 8 8'%3E%3Crect width='8' height='8' fill='%232f6f4f'/%3E%3C/svg%3E";
  const detail = Object.freeze({
    info: Object.freeze({ uuid: "6f1e1c7e-3c55-4a8e-9d1b-ca1a5e7e5701", name: "__NAME__", icon, rdns: "__RDNS__" }),
    provider,
  });
  if (!__EIP6963__) {
    window.ethereum = provider; // a wallet from before EIP-6963
    return;
  }
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
