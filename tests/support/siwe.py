"""Signing in as a wallet would: ask the API for a nonce, build the EIP-4361 message, `personal_sign` it."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from backend.api.auth import eip4361


def message_for(nonce_answer: dict[str, Any], address: str, **overrides: Any) -> eip4361.SiweMessage:
    """The message a wallet front-end builds from POST /v1/auth/nonce's answer (10 minutes' validity)."""
    now = int(time.time())
    msg = eip4361.SiweMessage(
        domain=nonce_answer["domain"], address=address, uri=nonce_answer["uri"] + "/login",
        chain_id=nonce_answer["chain_id"], nonce=nonce_answer["nonce"], issued_at=eip4361.iso(now),
        statement=nonce_answer["statement"], expiration_time=eip4361.iso(now + 600),
    )  # fmt: skip
    return replace(msg, **overrides)


def sign(key: LocalAccount, text: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=text), key.key).signature).hex()


def sign_in(client: Any, base: str, key: LocalAccount, *, session: str = "bearer", **headers: str) -> Any:
    """POST nonce, sign, POST /v1/auth/siwe with `client` (requests or TestClient); the answer."""
    nonce = client.post(f"{base}/v1/auth/nonce", headers=headers).json()
    text = message_for(nonce, key.address).text()
    body = {"message": text, "signature": sign(key, text), "session": session}
    return client.post(f"{base}/v1/auth/siwe", json=body, headers=headers)
