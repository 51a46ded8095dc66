"""Browser tests: Debian Chromium driven by Playwright (never `playwright install`), the app served by a real
uvicorn, and an injected EIP-1193 test wallet backed by an anvil key.

The wallet is what a browser extension is to the page: an init script announces a provider through EIP-6963
(`eip6963:announceProvider`, answering `eip6963:requestProvider`), and the provider forwards every request to
`TestWallet.handle` on the Python side (`page.expose_function`). There, `eth_signTypedData_v4` and
`personal_sign` are signed with eth-account, `eth_chainId` / `eth_accounts` / `eth_requestAccounts` /
`wallet_switchEthereumChain` are answered from the wallet's own state (so a test can put it on the wrong
network or make it refuse with EIP-1193 code 4001), `eth_sendTransaction` is signed and sent as a raw
transaction, and any other call is forwarded to anvil over JSON-RPC."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots of each view, kept as test artifacts (gitignored with .cairn/; README: "Web app").
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".cairn" / "screenshots"
WALLET_NAME = "Cairn Test Wallet"
WALLET_RDNS = "dev.cairn.testwallet"


class WalletRefusal(Exception):
    """An EIP-1193 ProviderRpcError the wallet answers with."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data  # e.g. a revert's data, passed on as wallets do (viem decodes custom errors from it)


@dataclass
class TestWallet:
    """The Python side of the injected wallet: one anvil account, a chain id of its own, and switches to
    make it refuse signatures or network switches like a person pressing "Reject"."""

    __test__ = False  # not a pytest class

    account: LocalAccount
    rpc_url: str
    chain_id: int
    known_chains: tuple[int, ...] = (1, 31337)
    reject_signatures: bool = False
    reject_switch: bool = False
    connected: bool = False
    calls: list[str] = field(default_factory=list)
    signed: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, method: str, params_json: str) -> str:
        """Called from the page for every provider request: {"result": ...} or {"error": {code, message}}."""
        self.calls.append(method)
        params = json.loads(params_json) if params_json else []
        try:
            return json.dumps({"result": self._answer(method, params)})
        except WalletRefusal as exc:
            error: dict[str, Any] = {"code": exc.code, "message": str(exc)}
            if exc.data is not None:
                error["data"] = exc.data
            return json.dumps({"error": error})

    def _answer(self, method: str, params: list[Any]) -> Any:
        address = self.account.address
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_accounts":
            return [address] if self.connected else []
        if method == "eth_requestAccounts":
            self.connected = True
            return [address]
        if method == "wallet_switchEthereumChain":
            if self.reject_switch:
                raise WalletRefusal(4001, "User rejected the request.")
            wanted = int(params[0]["chainId"], 16)
            if wanted not in self.known_chains:
                raise WalletRefusal(4902, f"Unrecognized chain ID {hex(wanted)}.")
            self.chain_id = wanted
            return None
        if method in ("eth_signTypedData_v4", "personal_sign"):
            if not self.connected:
                raise WalletRefusal(4100, "The requested account has not been authorized by the user.")
            if self.reject_signatures:
                raise WalletRefusal(4001, "User rejected the request.")
            return self._sign(method, params)
        if method == "eth_sendTransaction":
            return self._send(params[0])
        return self._rpc(method, params)

    def _sign(self, method: str, params: list[Any]) -> str:
        if method == "eth_signTypedData_v4":
            who, data = params
            typed = json.loads(data) if isinstance(data, str) else data
            assert who.lower() == self.account.address.lower(), (who, self.account.address)
            sig = Account.sign_typed_data(self.account.key, full_message=typed).signature
            self.signed.append({"method": method, "typed": typed})
        else:
            message_hex, who = params
            assert who.lower() == self.account.address.lower(), (who, self.account.address)
            raw = bytes.fromhex(message_hex.removeprefix("0x"))
            sig = self.account.sign_message(encode_defunct(primitive=raw)).signature
            self.signed.append({"method": method, "message": raw.decode("utf-8", "replace")})
        return "0x" + bytes(sig).hex()

    def _send(self, tx: dict[str, Any]) -> str:
        if self.reject_signatures:
            raise WalletRefusal(4001, "User rejected the request.")
        address = self.account.address
        full = {
            "to": tx.get("to"),
            "data": tx.get("data", "0x"),
            "value": int(tx.get("value", "0x0"), 16),
            "chainId": self.chain_id,
            "nonce": int(self._rpc("eth_getTransactionCount", [address, "pending"]), 16),
        }
        gas = tx.get("gas") or self._rpc(
            "eth_estimateGas", [{"from": address, "to": full["to"], "data": full["data"]}]
        )
        full["gas"] = int(gas, 16)
        full["gasPrice"] = int(self._rpc("eth_gasPrice", []), 16)
        signed = self.account.sign_transaction(full)
        return str(self._rpc("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))

    def _rpc(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        req = urllib.request.Request(self.rpc_url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            e = answer["error"]
            raise WalletRefusal(int(e.get("code", -32603)), str(e["message"]), e.get("data"))
        return answer["result"]


# The page side: an EIP-1193 provider announced through EIP-6963, forwarding to `window.cairnTestWallet`.
INJECTED_WALLET = (
    (Path(__file__).parent / "injected_wallet.js")
    .read_text()
    .replace("__NAME__", WALLET_NAME)
    .replace("__RDNS__", WALLET_RDNS)
)


def install_wallet(page: Any, wallet: TestWallet, *, eip6963: bool = True) -> None:
    """Expose `wallet` to `page` and inject its provider before any page script runs: announced through
    EIP-6963, or (`eip6963=False`) only as `window.ethereum`, as older wallets do."""
    page.expose_function("cairnTestWallet", wallet.handle)
    page.add_init_script(INJECTED_WALLET.replace("__EIP6963__", "true" if eip6963 else "false"))


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
