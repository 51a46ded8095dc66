/**
 * Sign-In with Ethereum (EIP-4361) through the API: nonce from the server, the message signed with
 * `personal_sign`, the server sets an httpOnly session cookie; sign-out clears it.
 *
 * Times: `Issued At` (and `Expiration Time` when the server gives one) come from the server (its nonce
 * answer's `issued_at`/`expiration_time`, else its HTTP `Date` header), never from the browser's clock.
 */
import { createSiweMessage } from "viem/siwe";
import { getJSON, getWithResponse, postJSON, ApiError } from "../api/client";
import { routes } from "../api/routes";
import { update } from "../state";
import { signer } from "./wallet";

interface NonceAnswer {
  nonce: string;
  issued_at?: string;
  expiration_time?: string;
  domain?: string;
  statement?: string;
}

export const STATEMENT = "Sign in to Cairn.";

export async function buildSignInMessage(address: `0x${string}`, chainId: number): Promise<string> {
  const { body, response } = await getWithResponse<NonceAnswer>(routes.authNonce());
  const serverDate = response.headers.get("Date");
  const issuedAt = body.issued_at ? new Date(body.issued_at) : serverDate ? new Date(serverDate) : undefined;
  if (!issuedAt || Number.isNaN(issuedAt.getTime())) {
    throw new Error("The API's nonce answer gave no time to issue the sign-in message at.");
  }
  return createSiweMessage({
    address,
    chainId,
    domain: body.domain ?? window.location.host,
    nonce: body.nonce,
    uri: window.location.origin,
    version: "1",
    statement: body.statement ?? STATEMENT,
    issuedAt,
    expirationTime: body.expiration_time ? new Date(body.expiration_time) : undefined,
  });
}

export async function signIn(): Promise<string> {
  const { account, client } = signer();
  const chainId = client.chain?.id;
  if (chainId === undefined) throw new Error("no chain");
  const message = await buildSignInMessage(account, chainId);
  const signature = await client.signMessage({ account, message });
  await postJSON(routes.authSiwe(), { message, signature });
  const me = await getJSON<{ address: string }>(routes.me());
  update({ session: me.address });
  return me.address;
}

export async function signOut(): Promise<void> {
  await postJSON(routes.authLogout());
  update({ session: null });
}

/** The signed-in address from the session cookie, or null (not signed in, or no sign-in on this server). */
export async function currentSession(): Promise<string | null> {
  try {
    const me = await getJSON<{ address: string }>(routes.me());
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
