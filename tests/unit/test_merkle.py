"""cairn.core.merkle against golden values computed with @openzeppelin/merkle-tree 1.x (npm), once, by hand:

const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const tree = StandardMerkleTree.of(VALUES, ["address", "uint256"]);
console.log(JSON.stringify({root: tree.root, proof0: tree.getProof(0), proof3: tree.getProof(3),
                            dump: tree.dump()}));
"""

from __future__ import annotations

import random

import pytest

from cairn.core import merkle
from cairn.core.errors import InvalidInputError

VALUES = [
    ("0x1111111111111111111111111111111111111111", 5_000_000_000_000_000_000),
    ("0x2222222222222222222222222222222222222222", 2_500_000_000_000_000_000),
    ("0x3333333333333333333333333333333333333333", 1),
    ("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", 2**256 - 1),
    ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", 0),
]
OZ_ROOT = "0x602288815fb279ed45faa2305fe04c414a1d11aaddee54149ace455d52a8b08c"
OZ_PROOF0 = [
    "0x1e9f38adfe54d7cb0472cab51cab2e4ef34cb855b9450464bc8cefee6f1fbe22",
    "0x116e695654baf99c7b4248318529288221fd4d4f67e83465a020a370645244b6",
]
OZ_PROOF3 = [
    "0xb92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc",
    "0xeb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283",
    "0x116e695654baf99c7b4248318529288221fd4d4f67e83465a020a370645244b6",
]
OZ_DUMP = {
    "format": "standard-v1",
    "leafEncoding": ["address", "uint256"],
    "tree": [
        "0x602288815fb279ed45faa2305fe04c414a1d11aaddee54149ace455d52a8b08c",
        "0x9ab03f80b293448c08b79d4847200a4eda5c919e3b60f6fd3ba3bbf50e988f82",
        "0x116e695654baf99c7b4248318529288221fd4d4f67e83465a020a370645244b6",
        "0x1e9f38adfe54d7cb0472cab51cab2e4ef34cb855b9450464bc8cefee6f1fbe22",
        "0xeb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283",
        "0xd1f4cf23a40eba68d7293fec5b4149220933c8fb1ebe12bbd12effdcb867f3ab",
        "0xc3d2e29c8ded2ca4aa700f83273d097a3fb1683f4b5f291a8ee7d74ff26fc6b3",
        "0xb92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc",
        "0x3653d9dedd177519da743e98f74b8abb2fc23cc2591732246279fcc6253211b1",
    ],
    "values": [
        {"value": ["0x1111111111111111111111111111111111111111", "5000000000000000000"], "treeIndex": 4},
        {"value": ["0x2222222222222222222222222222222222222222", "2500000000000000000"], "treeIndex": 7},
        {"value": ["0x3333333333333333333333333333333333333333", "1"], "treeIndex": 6},
        {
            "value": [
                "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
                "115792089237316195423570985008687907853269984665640564039457584007913129639935",
            ],
            "treeIndex": 8,
        },
        {"value": ["0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "0"], "treeIndex": 5},
    ],
}
OZ_SINGLE_ROOT = "0xeb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283"


def test_matches_openzeppelin_golden_tree() -> None:
    tree = merkle.build_tree(VALUES)
    assert tree.root == OZ_ROOT
    assert tree.proof(0) == OZ_PROOF0
    assert tree.proof(3) == OZ_PROOF3
    assert tree.dump() == OZ_DUMP


def test_single_leaf_tree_root_is_the_leaf() -> None:
    tree = merkle.build_tree([VALUES[0]])
    assert tree.root == OZ_SINGLE_ROOT
    assert tree.proof(0) == []
    assert merkle.verify(tree.root, VALUES[0], [])


def test_checksummed_input_gives_same_tree() -> None:
    upper = [("0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", 2**256 - 1), *VALUES[:3]]
    lower = [(a.lower(), n) for a, n in upper]
    assert merkle.build_tree(upper).root == merkle.build_tree(lower).root


def test_every_proof_verifies_and_wrong_ones_fail() -> None:
    rng = random.Random(7)
    values = [("0x" + rng.randbytes(20).hex(), rng.randrange(10**24)) for _ in range(37)]
    tree = merkle.build_tree(values)
    for i, (account, amount) in enumerate(values):
        proof = tree.proof(i)
        assert merkle.verify(tree.root, (account, amount), proof)
        assert tree.proof_for(account.upper().replace("0X", "0x")) == (amount, proof)
        assert not merkle.verify(tree.root, (account, amount + 1), proof)
    assert not merkle.verify(tree.root, values[0], tree.proof(1))


def test_load_round_trip_and_tamper_detection() -> None:
    tree = merkle.build_tree(VALUES)
    loaded = merkle.MerkleTree.load(OZ_DUMP)
    assert loaded.root == tree.root
    assert loaded.proof_for(VALUES[3][0]) == (VALUES[3][1], OZ_PROOF3)
    bad = {**OZ_DUMP, "values": [dict(v) for v in OZ_DUMP["values"]]}  # type: ignore[arg-type]
    bad["values"][0] = {"value": [VALUES[0][0], "5000000000000000001"], "treeIndex": 4}
    with pytest.raises(InvalidInputError):
        merkle.MerkleTree.load(bad)


def test_parallel_leaf_hashing_equals_serial() -> None:
    rng = random.Random(1)
    values = [("0x" + rng.randbytes(20).hex(), rng.randrange(2**128)) for _ in range(3001)]
    assert merkle.build_tree(values, workers=2).root == merkle.build_tree(values, workers=1).root


@pytest.mark.parametrize(
    "leaves",
    [
        [],
        [("0x12", 1)],
        [("0x1111111111111111111111111111111111111111", -1)],
        [("0x1111111111111111111111111111111111111111", 2**256)],
        [("0x" + "11" * 20, 1), ("0x" + "11" * 20, 2)],
    ],
)
def test_rejects_bad_input(leaves: list[tuple[str, int]]) -> None:
    with pytest.raises(InvalidInputError):
        merkle.build_tree(leaves)


def test_keccak_matches_reference() -> None:
    from eth_hash.auto import keccak

    data = bytes(range(64))
    assert merkle.keccak256(data) == keccak(data)
    assert merkle.keccak256(b"") == keccak(b"")


def test_compiled_builder_equals_python_builder() -> None:
    """The C builder (cairn/core/merkle/_merkle_native.c, used by default when a C compiler is present) and
    the Python builder give the same node array and tree indexes, for every shape of the heap and for equal
    leaves."""
    if merkle.native_builder() is None:
        pytest.skip("no C compiler here: build_tree uses the Python builder")
    rng = random.Random(11)
    sizes = [*range(1, 34), 127, 128, 129, 1023, 1024, 1025, 5000]
    for n in sizes:
        amounts = [0, 1, 2**256 - 1, rng.randrange(2**256)]
        values = [("0x" + rng.randbytes(20).hex(), rng.choice(amounts)) for _ in range(n)]
        native = merkle.build_tree(values)
        python = merkle.python_tree(values, 1)
        assert (native.tree, native.tree_index) == (python.tree, python.tree_index), n
    equal = [("0x" + "11" * 20, 5)] * 3 + [("0x" + "22" * 20, 5), ("0x" + "11" * 20, 5)]
    native = merkle.build_tree(equal, allow_duplicates=True)
    python = merkle.python_tree(equal, 1)
    assert (native.tree, native.tree_index) == (python.tree, python.tree_index)


def test_python_builder_when_the_compiled_one_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_MERKLE_NATIVE", "0")
    monkeypatch.setattr(merkle.native, "_native_state", {})
    assert merkle.native_builder() is None
    tree = merkle.build_tree(VALUES)
    assert tree.root == OZ_ROOT
    assert tree.dump() == OZ_DUMP
