"""EIP-3009 on the gateway's hot path: the TransferWithAuthorization digest under the token's own EIP-712
domain,
ECDSA recovery (low-s only, as OpenZeppelin's ECDSA), and the payer's chain state in one JSON-RPC batch.

Nothing here goes through web3.py's contract objects: the digest is hashed by hand from the domain separator,
which `TokenDomain.load` reads from the token (eip712Domain()) and checks against its DOMAIN_SEPARATOR().
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from coincurve import PublicKey
from eth_utils.crypto import keccak

from cairn.core.errors import ChainUnreachableError

TRANSFER_TYPEHASH = keccak(
    b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,"
    b"bytes32 nonce)"
)
DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
EIP1271_MAGIC = bytes.fromhex("1626ba7e")
_BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)
_AUTH_STATE = bytes.fromhex("e94a0102")  # authorizationState(address,bytes32)
_IS_VALID_SIG = bytes.fromhex("1626ba7e")  # isValidSignature(bytes32,bytes)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _addr_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


@dataclass(frozen=True)
class TokenDomain:
    """The token's EIP-712 domain as the token reports it (x402 requirement `extra: {name, version}`)."""

    name: str
    version: str
    chain_id: int
    token: str  # checksummed
    separator: bytes

    @classmethod
    def load(cls, w3: Any, token: Any) -> TokenDomain:
        """Read eip712Domain() from the token and check the separator we derive against DOMAIN_SEPARATOR()."""
        _, name, version, chain_id, verifying, _, _ = token.functions.eip712Domain().call()
        separator = keccak(
            DOMAIN_TYPEHASH + keccak(name.encode()) + keccak(version.encode()) + _word(int(chain_id))
            + _addr_word(verifying)
        )  # fmt: skip
        on_chain = bytes(token.functions.DOMAIN_SEPARATOR().call())
        if on_chain != separator:
            raise ChainUnreachableError(f"token {token.address} reports an EIP-712 domain it does not use")
        return cls(str(name), str(version), int(chain_id), str(token.address), separator)

    def transfer_digest(
        self, from_: str, to: str, value: int, valid_after: int, valid_before: int, nonce: bytes
    ) -> bytes:
        struct = keccak(
            TRANSFER_TYPEHASH + _addr_word(from_) + _addr_word(to) + _word(value) + _word(valid_after)
            + _word(valid_before) + nonce
        )  # fmt: skip
        return keccak(b"\x19\x01" + self.separator + struct)


def recover(digest: bytes, signature: bytes) -> str | None:
    """The 0x-lowercase address that signed `digest` (65-byte r || s || v), or None if the signature is not a
    canonical one (v not 27/28, s in the upper half: what OpenZeppelin's ECDSA rejects)."""
    if len(signature) != 65:
        return None
    v = signature[64]
    if v in (0, 1):
        v += 27
    s = int.from_bytes(signature[32:64], "big")
    if v not in (27, 28) or s == 0 or s > SECP256K1_HALF_N:
        return None
    try:
        pub = PublicKey.from_signature_and_message(signature[:64] + bytes([v - 27]), digest, hasher=None)
    except ValueError:
        return None
    return "0x" + keccak(pub.format(compressed=False)[1:])[-20:].hex()


@dataclass(frozen=True)
class PayerState:
    """What the chain says about one authorization, read in one batch."""

    chain_time: int  # the latest block's timestamp (the token's clock, not this machine's)
    balance: int
    nonce_used: bool
    has_code: bool


class ChainView:
    """The payer's state (latest block time, balance, authorizationState, code) in one JSON-RPC batch over a
    kept-alive HTTP connection, and the EIP-1271 check for contract wallets.

    `cached_state` keeps the hot path free of RPC: the chain's clock is the latest block's timestamp plus the
    time elapsed since it was read (re-read every `clock_ttl` s, so a chain whose clock jumps, like anvil's,
    is followed), and a payer's balance and code are re-read every `state_ttl` s, with the nonce's state
    read along with them. Between reads, a nonce used at the token is caught like a cancellation after
    serving (the settlement fails, the payer is refused, the exposure limit bounds it) and a replay to this
    gateway by the database's unique nonce."""

    def __init__(
        self,
        rpc_url: str,
        token: str,
        *,
        timeout: float = 5.0,
        state_ttl: float = 5.0,
        clock_ttl: float = 1.0,
    ) -> None:
        self.rpc_url = rpc_url
        self.token = token
        self.timeout = timeout
        self.state_ttl = state_ttl
        self.clock_ttl = clock_ttl
        self._session = requests.Session()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # requests.Session is not thread-safe; FastAPI runs us in a pool
        self._clock: tuple[int, float] | None = None  # (block timestamp, monotonic time it was read)
        self._payers: dict[str, tuple[int, bool, float]] = {}  # payer -> (balance, has code, read at)
        self._code: dict[str, tuple[bool, float]] = {}  # payer -> (has code, read at): signers ECDSA missed

    def chain_time(self) -> int:
        clock = self._clock
        if clock is None or time.monotonic() - clock[1] > self.clock_ttl:
            [block] = self._batch([("eth_getBlockByNumber", ["latest", False])])
            clock = (int(block["timestamp"], 16), time.monotonic())
            self._clock = clock
        return clock[0] + int(time.monotonic() - clock[1])

    def clock_lead(self) -> int:
        """Seconds the chain's clock, as last read (no RPC), runs ahead of this machine's (negative: behind);
        0 before the first read."""
        clock = self._clock
        if clock is None:
            return 0
        return clock[0] + int(time.monotonic() - clock[1]) - int(time.time())

    def cached_state(self, payer: str, nonce: bytes) -> PayerState:
        """`payer_state` from the caches when they are fresh (no RPC), else read (and cached) in one batch."""
        hit = self._payers.get(payer)
        if hit is None or time.monotonic() - hit[2] > self.state_ttl:
            return self.payer_state(payer, nonce)
        return PayerState(chain_time=self.chain_time(), balance=hit[0], nonce_used=False, has_code=hit[1])

    def has_code(self, payer: str) -> bool:
        """Whether `payer` is a contract (a wallet that may sign by EIP-1271): one eth_getCode, cached per
        payer like its state (only asked when ECDSA does not recover the payer)."""
        hit = self._payers.get(payer)
        if hit is not None and time.monotonic() - hit[2] <= self.state_ttl:
            return hit[1]
        code = self._code.get(payer)
        if code is None or time.monotonic() - code[1] > self.state_ttl:
            [raw] = self._batch([("eth_getCode", [payer, "latest"])])
            code = (len(str(raw)) > 2, time.monotonic())
            self._code[payer] = code
        return code[0]

    def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        body: list[Any] = [
            {"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in calls
        ]
        try:
            with self._lock:
                resp = self._session.post(self.rpc_url, json=body, timeout=self.timeout)
            answers = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise ChainUnreachableError(f"RPC {self.rpc_url} did not answer: {type(exc).__name__}") from None
        if not isinstance(answers, list):
            raise ChainUnreachableError(f"RPC {self.rpc_url} refused a batch: {str(answers)[:200]}")
        by_id = {a.get("id"): a for a in answers}
        out = []
        for req in body:
            answer = by_id.get(req["id"], {})
            if "error" in answer or "result" not in answer:
                raise ChainUnreachableError(
                    f"RPC {self.rpc_url}: {req['method']} failed: {answer.get('error')}"
                )
            out.append(answer["result"])
        return out

    def payer_state(self, payer: str, nonce: bytes) -> PayerState:
        bal = "0x" + (_BALANCE_OF + _addr_word(payer)).hex()
        used = "0x" + (_AUTH_STATE + _addr_word(payer) + nonce).hex()
        block, balance, state, code = self._batch(
            [
                ("eth_getBlockByNumber", ["latest", False]),
                ("eth_call", [{"to": self.token, "data": bal}, "latest"]),
                ("eth_call", [{"to": self.token, "data": used}, "latest"]),
                ("eth_getCode", [payer, "latest"]),
            ]
        )
        now = time.monotonic()
        result = PayerState(
            chain_time=int(block["timestamp"], 16),
            balance=int(balance, 16),
            nonce_used=int(state, 16) != 0,
            has_code=len(code) > 2,
        )
        self._clock = (result.chain_time, now)
        self._payers[payer] = (result.balance, result.has_code, now)
        return result

    def is_valid_1271(self, wallet: str, digest: bytes, signature: bytes) -> bool:
        """EIP-1271 `isValidSignature(digest, signature)` of a contract wallet (what the token checks)."""
        data = _IS_VALID_SIG + digest + _word(64) + _word(len(signature))
        data += signature + bytes(-len(signature) % 32)
        try:
            [result] = self._batch([("eth_call", [{"to": wallet, "data": "0x" + data.hex()}, "latest"])])
        except ChainUnreachableError:
            return False  # a reverting wallet rejects the signature
        raw = bytes.fromhex(str(result)[2:])
        return len(raw) >= 4 and raw[:4] == EIP1271_MAGIC
