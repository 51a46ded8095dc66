/** Every error shown to a person: a readable sentence, whatever threw it (API, wallet, viem, the browser). */
import { ApiError, ApiUnreachableError } from "../api/client";
import { NotConnectedError, WrongNetworkError } from "../wallet/wallet";

/** EIP-1193 provider error codes (and JSON-RPC's -32002 "request already pending", MetaMask's). */
const WALLET_CODES: Record<number, string> = {
  4001: "You rejected the request in your wallet: nothing was signed or sent.",
  4100: "The wallet has not authorised this site: connect it again.",
  4200: "Your wallet does not support this request.",
  4900: "Your wallet is disconnected from every network.",
  4901: "Your wallet is not connected to the requested network.",
  4902: "Your wallet does not know this network yet.",
  [-32002]: "Your wallet already has a request open: finish or dismiss it in the wallet, then retry.",
};

function* causes(err: unknown): Generator<unknown> {
  let cur: unknown = err;
  for (let i = 0; cur && i < 10; i += 1) {
    yield cur;
    cur = (cur as { cause?: unknown }).cause;
  }
}

export function walletCode(err: unknown): number | null {
  for (const e of causes(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "number" && code in WALLET_CODES) return code;
    if ((e as { name?: string }).name === "UserRejectedRequestError") return 4001;
  }
  return null;
}

export function describe(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 404 && err.path.startsWith("/v1/auth")) {
      return "Sign-in with Ethereum is not available on this server yet.";
    }
    return err.message;
  }
  if (err instanceof ApiUnreachableError || err instanceof WrongNetworkError || err instanceof NotConnectedError) {
    return err.message;
  }
  const code = walletCode(err);
  if (code !== null) return WALLET_CODES[code];
  for (const e of causes(err)) {
    // a contract's custom error decoded by viem (its ABI lists it): name it, e.g. "… reverted: NotReady(…)."
    const reverted = e as { name?: string; shortMessage?: string; data?: { errorName?: string; args?: unknown } };
    const name = reverted.data?.errorName;
    if (reverted.name === "ContractFunctionRevertedError" && name && name !== "Error" && name !== "Panic") {
      const args = Array.isArray(reverted.data?.args) ? reverted.data.args.map(String).join(", ") : "";
      return `${(reverted.shortMessage ?? "The contract call reverted.").replace(/\.$/, "")}: ${name}(${args}).`;
    }
  }
  for (const e of causes(err)) {
    const short = (e as { shortMessage?: unknown }).shortMessage;
    if (typeof short === "string" && short) return short;
  }
  if (err instanceof Error && err.message) return err.message;
  return "Something went wrong, and the error gave no message.";
}
