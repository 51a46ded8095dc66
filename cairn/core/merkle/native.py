"""The compiled tree builder (`_merkle_native.c` next to this module): compiled with `cc` once per source
version into the user cache, loaded with ctypes, checked against the Python builder before first use."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any

from cairn.core.merkle.pybuild import python_tree

_NATIVE_SOURCE = Path(__file__).with_name("_merkle_native.c")
_native_lock = threading.Lock()
_native_state: dict[str, Any] = {}


def _native_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cairn"


def _compile_native() -> Path | None:
    """The compiled C builder (compiled once per source version into the user cache); None without cc."""
    source = _NATIVE_SOURCE.read_bytes()
    lib_path = _native_cache_dir() / f"merkle-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if not lib_path.exists():
        cc = shutil.which(os.environ.get("CC", "cc"))
        if cc is None:
            return None
        lib_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib_path.with_suffix(f".{os.getpid()}.tmp")
        cmd = [cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(_NATIVE_SOURCE)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        os.replace(tmp, lib_path)
    return lib_path


def _load_native() -> tuple[Any, Any] | None:
    """(C builder, pycryptodome's keccak library), checked against the Python builder; None if unusable."""
    from Crypto.Hash import keccak as _k

    lib_path = _compile_native()
    if lib_path is None:
        return None
    lib = ctypes.CDLL(str(lib_path))
    lib.cairn_build_tree.argtypes = [ctypes.c_void_p] * 4 + [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.cairn_build_tree.restype = ctypes.c_int
    keccak_lib = ctypes.CDLL(_k._raw_keccak_lib._name)  # type: ignore[attr-defined]
    pair = (lib, keccak_lib)
    probe = [(f"0x{i * 0x1234567:040x}", (i * 7919) << (i * 5)) for i in range(1, 40)] + [(f"0x{0:040x}", 0)]
    got = _run_native(pair, probe)
    want = python_tree(probe, 1)
    if got is None or got != (want.tree, want.tree_index):
        return None
    return pair


def native_builder() -> tuple[Any, Any] | None:
    """The loaded C tree builder, or None (no compiler, `CAIRN_MERKLE_NATIVE=0`, or a failed self-check)."""
    with _native_lock:
        if "lib" not in _native_state:
            lib = None
            if os.environ.get("CAIRN_MERKLE_NATIVE", "1") != "0":
                try:
                    lib = _load_native()
                except (OSError, subprocess.SubprocessError, AttributeError):
                    lib = None
            _native_state["lib"] = lib
        pair: tuple[Any, Any] | None = _native_state["lib"]
        return pair


def _run_native(
    pair: tuple[Any, Any], values: list[tuple[str, int]], encoded: tuple[bytes, bytes] | None = None
) -> tuple[list[bytes], list[int]] | None:
    """(node array, tree index) from the C builder over checked values, with a keccak state of its own.
    `encoded`: the addresses' hex digits and the big-endian amounts, when the check made them already."""
    lib, kl = pair
    count = len(values)
    if encoded is None:
        hex_digits = "".join([a for a, _ in values]).replace("0x", "").encode("ascii")  # checked addresses
        amounts = b"".join([n.to_bytes(32, "big") for _, n in values])
    else:
        hex_digits, amounts = encoded
    nodes = bytearray(32 * (2 * count - 1))
    index = (ctypes.c_int64 * count)()
    state = ctypes.c_void_p()
    if kl.keccak_init(ctypes.byref(state), ctypes.c_size_t(64), ctypes.c_ubyte(24)) != 0:
        return None
    try:
        fns = [ctypes.cast(f, ctypes.c_void_p) for f in (kl.keccak_reset, kl.keccak_absorb, kl.keccak_digest)]
        c_nodes = (ctypes.c_char * len(nodes)).from_buffer(nodes)
        rc = lib.cairn_build_tree(state, *fns, hex_digits, amounts, count, c_nodes, index)
        del c_nodes
    finally:
        kl.keccak_destroy(state)
    if rc != 0:  # pragma: no cover - out of memory in C
        return None
    raw = bytes(nodes)
    del nodes
    tree = [node for (node,) in struct.iter_unpack("32s", raw)]
    tree_index: list[int] = memoryview(index).cast("B").cast("q").tolist()
    return tree, tree_index


def native_tree(
    values: list[tuple[str, int]], encoded: tuple[bytes, bytes] | None = None
) -> tuple[list[bytes], list[int]] | None:
    """(node array, tree index) built by the C builder; None when it is unavailable."""
    pair = native_builder()
    return None if pair is None else _run_native(pair, values, encoded)
