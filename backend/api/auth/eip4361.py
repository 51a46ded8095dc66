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
from abnf.parser import Node, ParseError
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


_FIELDS = {
    "scheme": "scheme",
    "domain": "domain",
    "address": "address",
    "statement": "statement",
    "uri": "uri",
    "URI": "uri",
    "version": "version",
    "chain-id": "chain_id",
    "nonce": "nonce",
    "issued-at": "issued_at",
    "expiration-time": "expiration_time",
    "not-before": "not_before",
    "request-id": "request_id",
}


def parse(text: str) -> SiweMessage:
    """The message's fields, or 422 `siwe_malformed` naming where the grammar stopped."""
    try:
        tree = Rule("sign-in-with-ethereum").parse_all(text)
    except ParseError as exc:
        raise SiweMalformedError(
            f"not an EIP-4361 message: the grammar stops at character {exc.start} "
            f"({text[exc.start : exc.start + 24]!r})",
            position=exc.start,
        ) from None
    values: dict[str, str] = {}
    resources: list[str] = []
    for child in tree.children:
        if child.name in _FIELDS:
            values[_FIELDS[child.name]] = child.value
        elif child.name == "resources":
            resources = [_uri_of(r) for r in child.children if r.name == "resource"]
    if "statement" in values and values["statement"] == "":
        values.pop("statement")
    return SiweMessage(
        domain=values["domain"], address=values["address"], uri=values["uri"],
        chain_id=int(values["chain_id"]), nonce=values["nonce"], issued_at=values["issued_at"],
        version=values["version"], scheme=values.get("scheme"), statement=values.get("statement"),
        expiration_time=values.get("expiration_time"), not_before=values.get("not_before"),
        request_id=values.get("request_id"), resources=resources,
    )  # fmt: skip


def _uri_of(resource: Node) -> str:
    return str(resource.value).removeprefix("- ")


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
