"""keccak256 through pycryptodome's compiled Keccak, called directly with ctypes and one reused state per
thread (about 4x faster than `keccak.new(...)` per call), and the double hash of a leaf."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

Hasher = Callable[[bytes], bytes]


# --- keccak256 ---------------------------------------------------------------------------------------
def _make_fast_hashers() -> tuple[Hasher, Hasher] | None:
    """keccak256 and the double keccak256 of a leaf over pycryptodome's raw library with one state; None if
    the library is unusable."""
    try:
        from Crypto.Hash import keccak as _k

        lib = ctypes.CDLL(_k._raw_keccak_lib._name)  # type: ignore[attr-defined]
        state = ctypes.c_void_p()
        if lib.keccak_init(ctypes.byref(state), ctypes.c_size_t(64), ctypes.c_ubyte(24)) != 0:
            return None
        # No argtypes: every argument is passed as a ready ctypes object (pointer, size_t, ubyte) or as bytes
        # (char *), which skips ctypes' per-call conversions (~1.4x the hashes per second).
        reset = lib.keccak_reset
        absorb = lib.keccak_absorb
        digest = lib.keccak_digest
        out = ctypes.create_string_buffer(32)
        s = ctypes.c_void_p(state.value)
        sizes = {n: ctypes.c_size_t(n) for n in range(129)}
        n32 = ctypes.c_size_t(32)
        pad = ctypes.c_ubyte(1)

        def keccak_fast(data: bytes) -> bytes:
            size = sizes.get(len(data))
            if size is None:
                size = ctypes.c_size_t(len(data))
            reset(s)
            absorb(s, data, size)
            digest(s, out, n32, pad)
            return out.raw

        def keccak_twice(data: bytes) -> bytes:
            """keccak256(keccak256(data)); the inner digest is absorbed from the output buffer."""
            keccak_fast(data)
            reset(s)
            absorb(s, out, n32)
            digest(s, out, n32, pad)
            return out.raw

        if keccak_fast(b"") != bytes.fromhex(
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        ) or keccak_twice(b"") != keccak_fast(keccak_fast(b"")):
            return None
        return keccak_fast, keccak_twice
    except Exception:  # pragma: no cover - exotic builds of pycryptodome
        return None


def _slow_keccak(data: bytes) -> bytes:
    from Crypto.Hash import keccak as _k

    return _k.new(data=data, digest_bits=256).digest()


_local = threading.local()


def _slow_twice(data: bytes) -> bytes:
    return _slow_keccak(_slow_keccak(data))


def _hashers() -> tuple[Hasher, Hasher]:
    pair: tuple[Hasher, Hasher] | None = getattr(_local, "h", None)
    if pair is None:
        pair = _make_fast_hashers() or (_slow_keccak, _slow_twice)
        _local.h = pair
    return pair


def hasher() -> Hasher:
    """This thread's keccak256 function (the fast one holds a state, so one per thread)."""
    return _hashers()[0]


def leaf_hasher() -> Hasher:
    """This thread's keccak256(keccak256(x)) function (the leaf hash of an encoded value)."""
    return _hashers()[1]


def keccak256(data: bytes) -> bytes:
    return hasher()(data)
