/**
 * Sign-In with Ethereum (EIP-4361) through the API: nonce from the server, the message signed with
 * `personal_sign`, the server sets an httpOnly session cookie; sign-out clears it.
 *
 * Times: `Issued At` and `Expiration Time` come from the server (its nonce answer's `issued_at` and
 * `expires_at`, else its HTTP `Date` header), never from the browser's clock.
 */
import { createSiweMessage } from "viem/siwe";
import { getJSON, postJSON, postWithResponse, ApiError } from "../api/client";
import { routes } from "../api/routes";
import { update } from "../state";
import { signer } from "./wallet";

/** `POST /v1/auth/nonce` (backend/api/auth/schemas.py NonceOut). */
interface NonceAnswer {
  nonce: string;
  expires_at: number;
  issued_at?: string;
  domain: string;
  uri: string;
  chain_id: number;
  statement?: string;
}

interface SessionAnswer {
  address: string;
  chain_id: number;
  kind: string;
  expires_at: number;
}

export const STATEMENT = "Sign in to Cairn.";

export async function buildSignInMessage(address: `0x${string}`, chainId: number): Promise<string> {
  const { body, response } = await postWithResponse<NonceAnswer>(routes.authNonce());
  const serverDate = response.headers.get("Date");
  const issuedAt = body.issued_at ? new Date(body.issued_at) : serverDate ? new Date(serverDate) : undefined;
  if (!issuedAt || Number.isNaN(issuedAt.getTime())) {
    throw new Error("The API's nonce answer gave no time to issue the sign-in message at.");
  }
  return createSiweMessage({
    address,
    chainId,
    // the page's own origin, as a wallet checks it (EIP-4361 "domain" binding); the server accepts it only
    // when it is one of its CAIRN_API_SIWE_ORIGINS
    domain: window.location.host,
    nonce: body.nonce,
    uri: window.location.origin,
    version: "1",
    statement: body.statement ?? STATEMENT,
    issuedAt,
    // the nonce's own lifetime, on the server's clock: the message is no good after it anyway
    expirationTime: new Date(body.expires_at * 1000),
  });
}

export async function signIn(): Promise<string> {
  const { account, client } = signer();
  const chainId = client.chain?.id;
  if (chainId === undefined) throw new Error("no chain");
  const message = await buildSignInMessage(account, chainId);
  const signature = await client.signMessage({ account, message });
  const session = await postJSON<SessionAnswer>(routes.authSiwe(), { message, signature });
  update({ session: session.address });
  return session.address;
}

export async function signOut(): Promise<void> {
  try {
    await postJSON(routes.authSignout());
  } catch (err) {
    // a session that already ended (expired, or signed out in another tab) is signed out all the same
    if (!(err instanceof ApiError && err.status === 401)) throw err;
  }
  update({ session: null });
}

/** The signed-in address from the session cookie, or null (not signed in, or no sign-in on this server). */
export async function currentSession(): Promise<string | null> {
  try {
    const me = await getJSON<SessionAnswer>(routes.authSession());
    update({ session: me.address });
    return me.address;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 404)) {
      update({ session: null });
      return null;
    }
    throw err;
  }
}
