"""EIP-4361 messages on the spec's ABNF (backend/api/auth/eip4361.py): the EIP's own example parses, every
optional field round-trips, and texts the grammar refuses are 422 `siwe_malformed`."""

from __future__ import annotations

import pytest
from abnf.parser import ParseError

from backend.api.auth import eip4361
from cairn.core.errors import SiweMalformedError

# The example message of EIP-4361 ("Example message", implicit scheme).
EIP_EXAMPLE = """example.com wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ExampleOrg Terms of Service: https://example.com/tos

URI: https://example.com/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""


def test_the_eips_example_parses_into_its_fields_and_back() -> None:
    msg = eip4361.parse(EIP_EXAMPLE)
    assert msg.domain == "example.com" and msg.scheme is None
    assert msg.address == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert msg.statement == "I accept the ExampleOrg Terms of Service: https://example.com/tos"
    assert (msg.uri, msg.version, msg.chain_id, msg.nonce) == (
        "https://example.com/login",
        "1",
        1,
        "32891756",
    )
    assert msg.issued_at == "2021-09-30T16:25:24Z" and msg.expiration_time is None
    assert msg.resources == [
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    ]
    assert msg.text() == EIP_EXAMPLE
    assert eip4361.timestamp(msg.issued_at) == 1633019124


def test_every_optional_field_and_an_explicit_scheme_and_port_round_trip() -> None:
    msg = eip4361.SiweMessage(
        scheme="https", domain="cairn.example:8443", address="0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        uri="https://cairn.example:8443/v1/auth/siwe", chain_id=31337, nonce="a1b2c3d4e5f6",
        issued_at="2026-01-01T00:00:00.250Z", expiration_time="2026-01-01T00:10:00+01:00",
        not_before="2025-12-31T23:59:00Z", request_id="req-42", resources=["https://cairn.example/x"],
    )  # fmt: skip
    assert eip4361.parse(msg.text()) == msg
    no_statement = eip4361.SiweMessage(
        domain="localhost:8000", address=msg.address, uri="http://localhost:8000", chain_id=1,
        nonce="abcdefgh", issued_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    assert "\n\n\nURI:" in no_statement.text()  # the grammar's empty statement section
    assert eip4361.parse(no_statement.text()) == no_statement
    assert eip4361.timestamp("2026-01-01T00:10:00+01:00") == eip4361.timestamp("2025-12-31T23:10:00Z")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Chain ID: 1", "Chain Id: 1"),  # %s: the field names are case-sensitive
        ("Nonce: 32891756", "Nonce: 1234567"),  # fewer than 8 characters
        ("Nonce: 32891756", "Nonce: 3289-1756"),  # not alphanumeric
        ("Version: 1", "Version: 2"),
        ("Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30 16:25:24"),  # not RFC 3339
        ("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756C"),
        ("URI: https://example.com/login", "URI: not a uri"),
        ("I accept", "I\naccept"),  # a statement is one line
    ],
)
def test_texts_outside_the_grammar_are_refused(old: str, new: str) -> None:
    assert old in EIP_EXAMPLE
    with pytest.raises(SiweMalformedError) as err:
        eip4361.parse(EIP_EXAMPLE.replace(old, new))
    assert err.value.http_status == 422 and err.value.code == "siwe_malformed"


def test_the_line_parser_accepts_exactly_what_the_whole_grammar_accepts_on_these_messages() -> None:
    """`parse` applies the grammar per line (no production holds LF); the full `sign-in-with-ethereum` rule
    agrees on the EIP's example, on a message with every field, and on each refused variant above."""
    full = eip4361.Rule("sign-in-with-ethereum")
    assert full.parse_all(EIP_EXAMPLE).value == EIP_EXAMPLE
    for old, new in [("Chain ID: 1", "Chain Id: 1"), ("Version: 1", "Version: 2"), ("I accept", "I\naccept")]:
        with pytest.raises(ParseError):
            full.parse_all(EIP_EXAMPLE.replace(old, new))


def test_hostile_texts_are_refused_fast() -> None:
    """Bounded work per request: oversize texts and fields are refused before the backtracking parser runs
    on them, and the largest accepted message parses in well under a second."""
    import time

    head = "example.com wants you to sign in with your Ethereum account:\n"
    hostile = [
        "a" * 100_000,
        head + "a" * 2000,
        EIP_EXAMPLE.replace("https://example.com/login", "https://" + "a" * 300),
        EIP_EXAMPLE.replace("example.com wants", "a" * 300 + " wants"),
    ]
    for text in hostile:
        start = time.perf_counter()
        with pytest.raises(SiweMalformedError):
            eip4361.parse(text)
        assert time.perf_counter() - start < 0.5
    biggest = (
        EIP_EXAMPLE.split("Resources:")[0]
        + "Resources:"
        + "".join("\n- https://" + "a" * 200 + f".example/{i}" for i in range(6))
    )
    assert len(biggest) < eip4361.MAX_MESSAGE
    start = time.perf_counter()
    assert len(eip4361.parse(biggest).resources) == 6
    assert time.perf_counter() - start < 1.5
