"""The auth tables (`auth_nonce`, `auth_session`, `api_key`): the one reader and writer of them.

Secrets are never stored: a session token and an API key are 256-bit random strings shown once; the tables
hold their SHA-256. A nonce is consumed by one conditional UPDATE (`used_at IS NULL AND expires_at > now`),
so two sign-ins racing with the same nonce cannot both win, in one process or several."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session as OrmSession

from backend.api.mirror import rows
from backend.models import ApiKey, AuthNonce, AuthSession

NONCES = AuthNonce.__table__  # type: ignore[attr-defined]
SESSIONS = AuthSession.__table__  # type: ignore[attr-defined]
KEYS = ApiKey.__table__  # type: ignore[attr-defined]
KEY_PREFIX = "cairn_"
# What an API key may be allowed to do. epochs:write: close, publish and finalize epochs; payouts:write:
# push payouts (claimForBatch, paid by the publisher).
SCOPES = {
    "epochs:write": "close (compute), publish and finalize reward epochs",
    "payouts:write": "push an accepted epoch's payouts (claimForBatch)",
}


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- nonces -----------------------------------------------------------------------------------------------
def issue_nonce(engine: Engine, *, now: int, ttl: int) -> tuple[str, int]:
    """A fresh nonce (EIP-4361: at least 8 alphanumerics; here 22, 128 bits) and when it expires."""
    nonce = secrets.token_hex(11)  # hex: within the grammar's ALPHA / DIGIT
    with engine.begin() as conn:
        conn.execute(insert(NONCES).values(nonce=nonce, created_at=now, expires_at=now + ttl, used_at=None))
    return nonce, now + ttl


def nonce_state(engine: Engine, nonce: str, *, now: int) -> str:
    """'usable', 'unknown', 'used' or 'expired'."""
    with engine.connect() as conn:
        row = conn.execute(select(NONCES).where(NONCES.c.nonce == nonce)).mappings().first()
    if row is None:
        return "unknown"
    if row["used_at"] is not None:
        return "used"
    return "expired" if int(row["expires_at"]) <= now else "usable"


# --- sessions ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    address: str  # 0x-lowercase
    chain_id: int
    kind: str  # cookie | bearer
    expires_at: int
    token_hash: str


def open_session(
    engine: Engine, *, nonce: str, address: str, chain_id: int, kind: str, now: int, expires_at: int
) -> tuple[str, Session] | None:
    """Consume `nonce` and open a session in one transaction; None if the nonce was used (or expired)
    meanwhile. Returns the token (shown once) and the session."""
    token = secrets.token_urlsafe(32)
    digest = sha256_hex(token)
    with engine.begin() as conn:
        took = conn.execute(
            update(NONCES)
            .where(NONCES.c.nonce == nonce, NONCES.c.used_at.is_(None), NONCES.c.expires_at > now)
            .values(used_at=now)
        )
        if took.rowcount != 1:
            return None
        row = dict(
            token_hash=digest, address=address.lower(), chain_id=chain_id, kind=kind, nonce=nonce,
            created_at=now, expires_at=expires_at, revoked_at=None,
        )  # fmt: skip
        conn.execute(insert(SESSIONS).values(**row))
    return token, Session(address.lower(), chain_id, kind, expires_at, digest)


def session_for(db: OrmSession, token: str, *, now: int) -> Session | None:
    """The live session of `token` (not expired, not signed out), or None: one indexed read on the
    request's own database session (its driver cursor: this runs on every signed-in request)."""
    found = rows(
        db,
        f"SELECT address, chain_id, kind, expires_at, token_hash, revoked_at FROM {SESSIONS.name} "
        "WHERE token_hash = :h",
        {"h": sha256_hex(token)},
    )
    row = found[0] if found else None
    if row is None or row["revoked_at"] is not None or int(row["expires_at"]) <= now:
        return None
    return Session(str(row["address"]), int(row["chain_id"]), str(row["kind"]), int(row["expires_at"]),
                   str(row["token_hash"]))  # fmt: skip


def close_session(engine: Engine, token_hash: str, *, now: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(SESSIONS)
            .where(SESSIONS.c.token_hash == token_hash, SESSIONS.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


# --- API keys ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    key_id: str
    name: str
    scopes: frozenset[str]
    created_at: int
    revoked_at: int | None


def create_key(engine: Engine, *, name: str, scopes: list[str], now: int) -> tuple[str, Key]:
    """A new key `cairn_<id>_<secret>` with these scopes (each one of SCOPES); the key is shown once."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        from cairn.core.errors import InvalidInputError

        raise InvalidInputError(
            f"unknown scope {unknown[0]!r}" if unknown else "an API key needs at least one --scope",
            known=sorted(SCOPES),
        )
    key_id = secrets.token_hex(8)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    scope_text = " ".join(sorted(set(scopes)))
    with engine.begin() as conn:
        row = dict(
            key_id=key_id, key_hash=sha256_hex(secret), name=name, scopes=scope_text, created_at=now,
            last_used_at=None, revoked_at=None,
        )  # fmt: skip
        conn.execute(insert(KEYS).values(**row))
    return secret, Key(key_id, name, frozenset(scope_text.split()), now, None)


def key_for(engine: Engine, secret: str, *, now: int) -> Key | None:
    """The live key `secret` names (hash compared in constant time), or None; records its last use."""
    if not secret.startswith(KEY_PREFIX) or secret.count("_") < 2:
        return None
    key_id = secret[len(KEY_PREFIX) :].split("_", 1)[0]
    with engine.connect() as conn:
        row = conn.execute(select(KEYS).where(KEYS.c.key_id == key_id)).mappings().first()
    if row is None or not hmac.compare_digest(str(row["key_hash"]), sha256_hex(secret)):
        return None
    if row["revoked_at"] is not None:
        return None
    with engine.begin() as conn:
        conn.execute(update(KEYS).where(KEYS.c.key_id == key_id).values(last_used_at=now))
    return _key(row)


def list_keys(engine: Engine) -> list[Key]:
    with engine.connect() as conn:
        return [_key(r) for r in conn.execute(select(KEYS).order_by(KEYS.c.created_at)).mappings()]


def revoke_key(engine: Engine, key_id: str, *, now: int) -> bool:
    with engine.begin() as conn:
        done = conn.execute(
            update(KEYS).where(KEYS.c.key_id == key_id, KEYS.c.revoked_at.is_(None)).values(revoked_at=now)
        )
    return done.rowcount == 1


def _key(row: object) -> Key:
    r = dict(row)  # type: ignore[call-overload]
    return Key(str(r["key_id"]), str(r["name"]), frozenset(str(r["scopes"]).split()), int(r["created_at"]),
               None if r["revoked_at"] is None else int(r["revoked_at"]))  # fmt: skip
