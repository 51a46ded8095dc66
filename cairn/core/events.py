"""Event specifications built from contract ABIs, and pure log -> row decoders.

Every event of every ABI in the deployment file becomes an `EventSpec`: its topic0, its table name
(`ev_<snake_case name>`), its argument columns and a decoder. Decoding never uses web3.py's event objects:
static non-indexed fields are sliced straight out of the hex `data`, dynamic ones go through `eth_abi`.

Row values are produced in the form the database driver stores directly (so writes need no per-value
conversion): `Uint256` columns hold `int` for PostgreSQL (NUMERIC) and a decimal `str` for SQLite;
addresses, bytes and hashes are `0x`-lowercase text; arrays are JSON text of decimal/hex strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from eth_hash.auto import keccak

# Fixed columns of every event table, in order.
FIXED_COLUMNS: tuple[str, ...] = (
    "block_number",
    "log_index",
    "block_hash",
    "tx_hash",
    "contract",
    "block_time",
)

# Events whose parallel array fields are stored one row per element: event name -> {array field: column}.
# Their tables get an `item_index` column (the element's position) in the primary key after `log_index`, so a
# batch of datasets lands as one row per dataset, indexable like the single-registration table.
EXPLODED_EVENTS: dict[str, dict[str, str]] = {
    "DatasetBatchRegistered": {"contentHashes": "content_hash", "sizes": "size"},
}
ITEM_INDEX = "item_index"

# Column kinds (mapped to SQL types by indexer.schema).
BIGINT = "bigint"
UINT256 = "uint256"
TEXT = "text"
BOOL = "bool"

_INT_RE = re.compile(r"^(u?)int(\d*)$")


def snake_case(name: str) -> str:
    """`DatasetRegistered` -> `dataset_registered`, `contentHash` -> `content_hash`, `ERC20X` -> `erc20_x`."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.replace("__", "_").lower()


def canonical_type(param: dict[str, Any]) -> str:
    """ABI type with tuples expanded, as used in the event signature."""
    typ: str = param["type"]
    if typ.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param.get("components", []))
        return f"({inner}){typ[5:]}"
    return typ


def column_kind(typ: str) -> str:
    """Column kind for an ABI type (see docs/ARCHITECTURE.md, table conventions)."""
    m = _INT_RE.match(typ)
    if m:
        bits = int(m.group(2) or 256)
        if m.group(1) == "u":
            return BIGINT if bits <= 32 else UINT256
        return BIGINT if bits <= 64 else UINT256
    if typ == "bool":
        return BOOL
    return TEXT


@dataclass(frozen=True)
class Column:
    name: str
    abi_type: str
    kind: str
    indexed: bool


@dataclass
class EventSpec:
    """One event signature and how to turn its logs into rows."""

    name: str
    signature: str
    topic0: str
    table: str
    columns: list[Column]
    anonymous: bool = False
    decode_args: Callable[[list[str], str], list[Any]] = field(default=lambda t, d: [], repr=False)
    # whole-row decoder compiled for events whose fields are all static (the hot path), else None
    decode_row: Callable[[dict[str, Any], int], tuple[Any, ...]] | None = field(default=None, repr=False)
    # EXPLODED_EVENTS: positions (in `columns`) of the array columns stored one element per row
    exploded: tuple[int, ...] = ()

    @property
    def key_columns(self) -> list[str]:
        """Primary key: (block_number, log_index), plus item_index for exploded events."""
        return ["block_number", "log_index", ITEM_INDEX] if self.exploded else ["block_number", "log_index"]

    @property
    def column_names(self) -> list[str]:
        extra = [ITEM_INDEX] if self.exploded else []
        return [*FIXED_COLUMNS, *extra, *(c.name for c in self.columns)]


def _hex_to_text(word: str, typ: str) -> str:
    """A 32-byte word (64 hex chars, no 0x) of a static type rendered as TEXT."""
    if typ == "address":
        return "0x" + word[24:64].lower()
    if typ.startswith("bytes") and typ != "bytes":
        n = int(typ[5:])
        return "0x" + word[: 2 * n].lower()
    return "0x" + word.lower()


def _word_converter(typ: str, kind: str, uint_as_str: bool) -> Callable[[str], Any]:
    """Converter from a 64-hex-char word to the stored value, for static types."""
    m = _INT_RE.match(typ)
    if m:
        bits = int(m.group(2) or 256)
        signed = m.group(1) != "u"
        as_str = kind == UINT256 and uint_as_str
        if not signed:
            if as_str:
                return lambda w: str(int(w, 16))
            return lambda w: int(w, 16)
        top = 1 << 255
        full = 1 << 256

        def conv_signed(w: str) -> Any:
            v = int(w, 16)
            if v >= top:
                v -= full
            return str(v) if as_str else v

        _ = bits
        return conv_signed
    if typ == "bool":
        return lambda w: w[-1] != "0"
    return lambda w: _hex_to_text(w, typ)


def _is_static(typ: str) -> bool:
    return not (typ in ("string", "bytes") or typ.endswith("]") or typ.startswith("("))


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else value
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _decoded_converter(typ: str, kind: str, uint_as_str: bool) -> Callable[[Any], Any]:
    """Converter from an eth_abi-decoded value to the stored value."""
    if typ == "string":
        return lambda v: v
    if typ == "bytes" or (typ.startswith("bytes") and _is_static(typ)):
        return lambda v: "0x" + bytes(v).hex()
    if typ == "address":
        return lambda v: str(v).lower()
    if not _is_static(typ):  # arrays and tuples -> JSON text
        return lambda v: orjson.dumps(_json_value(v)).decode()
    if kind == UINT256 and uint_as_str:
        return lambda v: str(v)
    return lambda v: v


def build_spec(event: dict[str, Any], *, uint_as_str: bool) -> EventSpec:
    """Build the spec (table, columns, decoder) of one ABI event entry."""
    name: str = event["name"]
    inputs: list[dict[str, Any]] = event.get("inputs", [])
    types = [canonical_type(p) for p in inputs]
    signature = f"{name}({','.join(types)})"
    topic0 = "0x" + keccak(signature.encode()).hex()
    columns: list[Column] = []
    used = {*FIXED_COLUMNS, ITEM_INDEX}
    explode = {snake_case(k): v for k, v in EXPLODED_EVENTS.get(name, {}).items()}
    exploded: list[int] = []
    for i, (param, typ) in enumerate(zip(inputs, types, strict=True)):
        pname = param.get("name") or f"arg{i}"
        col = explode.get(snake_case(pname)) or snake_case(pname)
        if col in used:
            col = f"arg_{col}"
        used.add(col)
        indexed = bool(param.get("indexed"))
        # indexed dynamic values are only their keccak hash in the topic
        kind = TEXT if indexed and not _is_static(typ) else column_kind(typ)
        if snake_case(pname) in explode:
            if indexed or not typ.endswith("[]"):
                raise ValueError(f"{name}.{pname}: only non-indexed arrays can be exploded")
            exploded.append(i)
            kind = column_kind(typ[:-2])
        columns.append(Column(col, typ, kind, indexed))
    spec = EventSpec(
        name=name,
        signature=signature,
        topic0=topic0,
        table=f"ev_{snake_case(name)}",
        columns=columns,
        anonymous=bool(event.get("anonymous")),
        exploded=tuple(exploded),
    )
    spec.decode_args = _make_decoder(columns, uint_as_str, exploded=spec.exploded)
    spec.decode_row = None if exploded else _compile_static(columns, uint_as_str)
    return spec


def _make_decoder(
    columns: list[Column], uint_as_str: bool, *, exploded: tuple[int, ...] = ()
) -> Callable[[list[str], str], list[Any]]:
    """`(topics, data) -> column values`; exploded array columns come back as lists of stored values."""
    topic_convs: list[tuple[int, int, Callable[[str], Any]]] = []  # (column position, topic index, conv)
    data_cols = [(pos, c) for pos, c in enumerate(columns) if not c.indexed]
    t = 1
    for pos, c in enumerate(columns):
        if c.indexed:
            if _is_static(c.abi_type):
                topic_convs.append((pos, t, _word_converter(c.abi_type, c.kind, uint_as_str)))
            else:
                topic_convs.append((pos, t, lambda w: "0x" + w.lower()))
            t += 1
    n = len(columns)
    all_static = all(_is_static(c.abi_type) for _, c in data_cols)
    if all_static:
        data_convs = [
            (pos, 2 + 64 * k, _word_converter(c.abi_type, c.kind, uint_as_str))
            for k, (pos, c) in enumerate(data_cols)
        ]

        def decode_static(topics: list[str], data: str) -> list[Any]:
            out: list[Any] = [None] * n
            for pos, ti, conv in topic_convs:
                out[pos] = conv(topics[ti][2:])
            for pos, off, dconv in data_convs:
                out[pos] = dconv(data[off : off + 64])
            return out

        return decode_static

    data_types = [c.abi_type for _, c in data_cols]
    dyn_convs = [
        (pos, _element_list(_decoded_converter(c.abi_type[:-2], c.kind, uint_as_str)))
        if pos in exploded
        else (pos, _decoded_converter(c.abi_type, c.kind, uint_as_str))
        for pos, c in data_cols
    ]

    def decode_dynamic(topics: list[str], data: str) -> list[Any]:
        from eth_abi.abi import decode as abi_decode  # imported on first use: ~0.4 s of start-up

        out: list[Any] = [None] * n
        for pos, ti, conv in topic_convs:
            out[pos] = conv(topics[ti][2:])
        values = abi_decode(data_types, bytes.fromhex(data[2:]))
        for (pos, dconv), v in zip(dyn_convs, values, strict=True):
            out[pos] = dconv(v)
        return out

    return decode_dynamic


def _element_list(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda values: [conv(v) for v in values]


def _signed(v: int) -> int:
    return v - (1 << 256) if v >> 255 else v


def _static_expr(src: str, off: int, typ: str, kind: str, uint_as_str: bool) -> str:
    """Python expression turning the 64-hex-char word at `src[off:off + 64]` (`src` an expression) into the
    stored value, with a single slice per field."""
    m = _INT_RE.match(typ)
    if m:
        expr = f"int({src}[{off}:{off + 64}], 16)"
        if m.group(1) != "u":
            expr = f"_signed({expr})"
        return f"str({expr})" if kind == UINT256 and uint_as_str else expr
    if typ == "bool":
        return f"{src}[{off + 63}] != '0'"
    if typ == "address":
        return f"'0x' + {src}[{off + 24}:{off + 64}].lower()"
    if typ.startswith("bytes"):
        return f"'0x' + {src}[{off}:{off + 2 * int(typ[5:])}].lower()"
    raise ValueError(typ)


def _compile_static(
    columns: list[Column], uint_as_str: bool
) -> Callable[[dict[str, Any], int], tuple[Any, ...]] | None:
    """Generate `f(log, block_time) -> row` with straight-line hex slicing (no per-field calls)."""
    if not all(_is_static(c.abi_type) for c in columns):
        return None
    exprs = [
        "int(lg['blockNumber'], 16)",
        "int(lg['logIndex'], 16)",
        "lg['blockHash'].lower()",
        "lg['transactionHash'].lower()",
        "lg['address'].lower()",
        "bt",
    ]
    t = 1
    k = 0
    for c in columns:
        if c.indexed:
            src, off = f"t[{t}]", 2
            t += 1
        else:
            src, off = "d", 2 + 64 * k
            k += 1
        exprs.append(_static_expr(src, off, c.abi_type, c.kind, uint_as_str))
    body = ", ".join(exprs)
    code = f"def f(lg, bt):\n    t = lg['topics']\n    d = lg['data']\n    return ({body},)\n"
    namespace: dict[str, Any] = {"_signed": _signed}
    exec(compile(code, "<cairn.core.events decoder>", "exec"), namespace)
    fn: Callable[[dict[str, Any], int], tuple[Any, ...]] = namespace["f"]
    return fn


def specs_from_abis(abis: Iterable[list[dict[str, Any]]], *, uint_as_str: bool) -> dict[str, EventSpec]:
    """All non-anonymous events of the given ABIs, keyed by topic0.

    Events with the same signature share one spec (and table). Two different signatures with the same
    name get distinct tables: the second is suffixed with the first 4 bytes of its topic0.
    """
    by_topic: dict[str, EventSpec] = {}
    tables: dict[str, str] = {}
    for abi in abis:
        for entry in abi:
            if entry.get("type") != "event" or entry.get("anonymous"):
                continue
            spec = build_spec(entry, uint_as_str=uint_as_str)
            if spec.topic0 in by_topic:
                continue
            if spec.table in tables and tables[spec.table] != spec.topic0:
                spec.table = f"{spec.table}_{spec.topic0[2:10]}"
            tables[spec.table] = spec.topic0
            by_topic[spec.topic0] = spec
    return by_topic


def decode_log(spec: EventSpec, log: dict[str, Any], block_time: int) -> tuple[Any, ...]:
    """One raw JSON-RPC log -> one row tuple in `spec.column_names` order (not for exploded events)."""
    if spec.decode_row is not None:
        return spec.decode_row(log, block_time)
    return (*_fixed_values(log, block_time), *spec.decode_args(log["topics"], log["data"]))


def _fixed_values(log: dict[str, Any], block_time: int) -> tuple[Any, ...]:
    """The FIXED_COLUMNS values of a raw log."""
    return (
        int(log["blockNumber"], 16),
        int(log["logIndex"], 16),
        log["blockHash"].lower(),
        log["transactionHash"].lower(),
        log["address"].lower(),
        block_time,
    )


def decode_exploded(spec: EventSpec, log: dict[str, Any], block_time: int) -> list[tuple[Any, ...]]:
    """One raw log of an EXPLODED_EVENTS event -> one row per array element, in `spec.column_names` order.

    The exploded arrays must have equal lengths (the contract checks it); a log breaking that is refused."""
    args = spec.decode_args(log["topics"], log["data"])
    arrays = [args[i] for i in spec.exploded]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"{spec.name} log {log['transactionHash']}:{log['logIndex']} has unequal arrays")
    head = _fixed_values(log, block_time)
    rows = []
    for k in range(n):
        for i in spec.exploded:
            args[i] = arrays[spec.exploded.index(i)][k]
        rows.append((*head, k, *args))
    return rows
