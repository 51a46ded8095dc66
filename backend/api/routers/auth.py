"""Sign-In with Ethereum (EIP-4361): nonce, sign-in (cookie or bearer session), the session, sign-out."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response

from backend.api.auth import eip4361, siwe, store
from backend.api.auth.deps import COOKIE, CurrentAccount
from backend.api.auth.schemas import NonceOut, SessionOut, SignIn
from backend.api.deps import ChainDep, EngineDep, SettingsDep
from backend.api.schemas import COMMON, problem_responses
from cairn.core.errors import SiweRejectedError

router = APIRouter(prefix="/v1/auth", tags=["sign-in"])
STATEMENT = "Sign in to Cairn."


@router.post("/nonce", response_model=NonceOut, responses=problem_responses(*COMMON))
def new_nonce(request: Request, settings: SettingsDep, chain: ChainDep, engine: EngineDep) -> dict[str, Any]:
    """A fresh single-use nonce and the domain, URI and chain id the message must name."""
    now = int(time.time())
    nonce, expires = store.issue_nonce(engine, now=now, ttl=settings.api_siwe_nonce_ttl_s)
    origins = settings.siwe_origins()
    host = request.headers.get("host", "").lower()
    origin = next((o for o in origins if urlsplit(o).netloc.lower() == host), origins[0])
    return {
        "nonce": nonce, "expires_at": expires, "issued_at": eip4361.iso(now),
        "domain": urlsplit(origin).netloc, "uri": origin, "chain_id": chain.chain_id, "statement": STATEMENT,
    }  # fmt: skip


@router.post("/siwe", response_model=SessionOut, responses=problem_responses(400, 401, *COMMON))
def sign_in(
    body: SignIn,
    request: Request,
    response: Response,
    settings: SettingsDep,
    chain: ChainDep,
    engine: EngineDep,
) -> dict[str, Any]:
    """Verify the signed EIP-4361 message (domain, URI, chain id, times, nonce, signature: EOA or EIP-1271)
    and open a session: a cookie (`session=cookie`) or a bearer token in the answer (`session=bearer`).

    Each refused check is a 401 whose `code` names it: siwe_domain_mismatch, siwe_uri_mismatch,
    siwe_chain_mismatch, siwe_issued_in_future, siwe_expired, siwe_not_yet_valid, siwe_nonce_unknown,
    siwe_nonce_used, siwe_nonce_expired, siwe_signature_invalid, siwe_address_checksum; a text that is not an
    EIP-4361 message is 422 siwe_malformed."""
    now = int(time.time())
    verified = siwe.verify(
        body.message, body.signature, settings=settings, chain=chain, engine=engine, now=now
    )
    expires = now + settings.api_session_ttl_s
    if verified.expires_at is not None:
        expires = min(expires, verified.expires_at)
    opened = store.open_session(
        engine, nonce=verified.message.nonce, address=verified.address, chain_id=chain.chain_id,
        kind=body.session, now=now, expires_at=expires,
    )  # fmt: skip
    if opened is None:  # another sign-in consumed the nonce between the check and now
        raise SiweRejectedError("siwe_nonce_used", f"the nonce {verified.message.nonce} was used already")
    token, session = opened
    out: dict[str, Any] = {
        "address": verified.address, "chain_id": session.chain_id, "kind": session.kind,
        "expires_at": session.expires_at, "wallet": verified.wallet,
    }  # fmt: skip
    if body.session == "bearer":
        out["token"] = token
    else:
        response.set_cookie(
            COOKIE, token, max_age=max(expires - now, 1), httponly=True, samesite="strict",
            secure=request.url.scheme == "https", path="/",
        )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return out


@router.get("/session", response_model=SessionOut, responses=problem_responses(401, *COMMON))
def get_session(account: CurrentAccount) -> dict[str, Any]:
    """The signed-in account of this cookie or bearer token."""
    s = account.session
    return {"address": account.address, "chain_id": s.chain_id, "kind": s.kind, "expires_at": s.expires_at}


@router.post("/signout", status_code=204, responses=problem_responses(401, *COMMON))
def sign_out(account: CurrentAccount, engine: EngineDep) -> Response:
    """End the session (the token stops working at once) and clear the cookie."""
    store.close_session(engine, account.session.token_hash, now=int(time.time()))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
