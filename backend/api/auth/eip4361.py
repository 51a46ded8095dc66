"""EIP-4361 (Sign-In with Ethereum) messages: the spec's ABNF grammar (on the `abnf` package, importing the
RFC 3986 and RFC 3339 productions it names), parsing into `SiweMessage` and building its text.

Why our own module (README "Sign-in and API keys"): both PyPI implementations (`siwe` 4.4,
`signinwithethereum` 5.0) declare `web3<8` and `eth-account<0.14`, which Cairn's pins contradict, so
installing either leaves `pip check` failing. The grammar is short and normative; verification (EIP-191
recovery, EIP-1271 `isValidSignature`) and every semantic check (domain, URI, chain id, nonce, times) live in
`backend.api.auth.siwe`, where the server decides them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from abnf.grammars import rfc3339, rfc3986
from abnf.grammars.misc import load_grammar_rules
from abnf.parser import ParseError
from abnf.parser import Rule as _Rule

from cairn.core.errors import SiweMalformedError

PREAMBLE = " wants you to sign in with your Ethereum account:"


@load_grammar_rules(
    [
        ("URI", rfc3986.Rule("URI")),
        ("authority", rfc3986.Rule("authority")),
        ("reserved", rfc3986.Rule("reserved")),
        ("unreserved", rfc3986.Rule("unreserved")),
        ("pchar", rfc3986.Rule("pchar")),
        ("date-time", rfc3339.Rule("date-time")),
    ]
)
class Rule(_Rule):
    """EIP-4361's ABNF (the message format section), verbatim but for whitespace; `uri` is RFC 3986's
    `URI` itself (ABNF rule names are case-insensitive)."""

    grammar: ClassVar[list[str] | str] = [
        'sign-in-with-ethereum = [ scheme %s"://" ] domain %s"' + PREAMBLE + '" LF'
        " address LF LF [ statement LF ] LF"
        ' %s"URI: " uri LF'
        ' %s"Version: " version LF'
        ' %s"Chain ID: " chain-id LF'
        ' %s"Nonce: " nonce LF'
        ' %s"Issued At: " issued-at'
        ' [ LF %s"Expiration Time: " expiration-time ]'
        ' [ LF %s"Not Before: " not-before ]'
        ' [ LF %s"Request ID: " request-id ]'
        ' [ LF %s"Resources:" resources ]',
        'scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )',
        "domain = authority",
        'address = "0x" 40*40HEXDIG',
        'statement = *( reserved / unreserved / " " )',
        'version = "1"',
        "chain-id = 1*DIGIT",
        "nonce = 8*( ALPHA / DIGIT )",
        "issued-at = date-time",
        "expiration-time = date-time",
        "not-before = date-time",
        "request-id = *pchar",
        "resources = *( LF resource )",
        'resource = "- " URI',
    ]


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: str
    version: str = "1"
    scheme: str | None = None
    statement: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The message as the wallet shows and signs it (EIP-4361's format)."""
        head = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [head + PREAMBLE, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {self.issued_at}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {self.expiration_time}")
        if self.not_before is not None:
            lines.append(f"Not Before: {self.not_before}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)


# Bounds that keep the parser's work small (the `abnf` package backtracks: about 0.5 ms per character of a
# URI's authority, so a 2 KB URI costs ~1 s); well above real messages (a few hundred characters).
MAX_MESSAGE = 2048
MAX_DOMAIN = 262  # 253 + ":" + port
MAX_URI = 256
MAX_STATEMENT = 512
MAX_RESOURCES = 8
_TAGS = [  # (line prefix, rule, field, required), in the grammar's order after the statement section
    ("URI: ", "URI", "uri", True),
    ("Version: ", "version", "version", True),
    ("Chain ID: ", "chain-id", "chain_id", True),
    ("Nonce: ", "nonce", "nonce", True),
    ("Issued At: ", "issued-at", "issued_at", True),
    ("Expiration Time: ", "expiration-time", "expiration_time", False),
    ("Not Before: ", "not-before", "not_before", False),
    ("Request ID: ", "request-id", "request_id", False),
]


def _bad(what: str, line: int) -> SiweMalformedError:
    return SiweMalformedError(f"not an EIP-4361 message: line {line + 1}: {what}", line=line + 1)


def _rule(name: str, value: str, line: int, limit: int = MAX_URI) -> str:
    if len(value) > limit:
        raise _bad(f"{name} longer than {limit} characters", line)
    try:
        Rule(name).parse_all(value)
    except ParseError:
        raise _bad(f"{value[:40]!r} is not a valid {name}", line) from None
    return value


def parse(text: str) -> SiweMessage:
    """The message's fields, or 422 `siwe_malformed` naming the line and the rule that refused it.

    The grammar is applied line by line: no production contains LF, so the message's lines are exactly the
    grammar's, and each field is parsed with its own rule (bounded in length, see MAX_*)."""
    if len(text) > MAX_MESSAGE:
        raise SiweMalformedError(f"a message longer than {MAX_MESSAGE} characters is refused", size=len(text))
    lines = text.split("\n")
    if not lines[0].endswith(PREAMBLE):
        raise _bad(f"must end with {PREAMBLE.strip()!r}", 0)
    head = lines[0][: -len(PREAMBLE)]
    scheme = None
    if "://" in head:
        scheme, head = head.split("://", 1)
        _rule("scheme", scheme, 0, 32)
    domain = _rule("domain", head, 0, MAX_DOMAIN)
    if len(lines) < 8:
        raise _bad("the message ends early", len(lines) - 1)
    address = _rule("address", lines[1], 1, 42)
    if lines[2] != "":
        raise _bad("an empty line must follow the address", 2)
    statement = None
    i = 3
    if lines[3] != "":
        statement = _rule("statement", lines[3], 3, MAX_STATEMENT)
        i = 4
    if i >= len(lines) or lines[i] != "":
        raise _bad("an empty line must follow the statement", i)
    i += 1
    values: dict[str, str] = {}
    for prefix, rule, name, required in _TAGS:
        if i < len(lines) and lines[i].startswith(prefix):
            values[name] = _rule(rule, lines[i][len(prefix) :], i)
            i += 1
        elif required:
            raise _bad(f"expected {prefix.strip()!r}", i)
    resources: list[str] = []
    if i < len(lines) and lines[i] == "Resources:":
        i += 1
        while i < len(lines) and lines[i].startswith("- ") and len(resources) < MAX_RESOURCES:
            resources.append(_rule("URI", lines[i][2:], i))
            i += 1
    if i != len(lines):
        raise _bad("unexpected text", i)
    return SiweMessage(
        domain=domain, address=address, uri=values["uri"], chain_id=int(values["chain_id"]),
        nonce=values["nonce"], issued_at=values["issued_at"], version=values["version"], scheme=scheme,
        statement=statement, expiration_time=values.get("expiration_time"),
        not_before=values.get("not_before"), request_id=values.get("request_id"), resources=resources,
    )  # fmt: skip


def timestamp(value: str) -> int:
    """Unix seconds of an RFC 3339 `date-time` (the grammar already checked its shape)."""
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise SiweMalformedError(f"{value!r} is not a valid RFC 3339 date-time", value=value) from None
    if moment.tzinfo is None:  # the grammar requires an offset; be safe anyway
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def iso(seconds: int) -> str:
    """RFC 3339 UTC date-time with a `Z` offset, as wallets and the EIP's examples write it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
