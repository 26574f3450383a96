"""OpenZeppelin ``StandardMerkleTree`` for payout leaves ``(address account, uint256 amount)``.

Byte-for-byte the tree that npm ``@openzeppelin/merkle-tree`` builds with
``StandardMerkleTree.of(values, ["address", "uint256"])`` (default ``sortLeaves: true``), and the
leaf that ``RewardDistributor.claim`` recomputes on-chain::

    leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))))

The tree is OZ's array layout: ``2n - 1`` nodes, leaf hashes sorted ascending and stored from the
end of the array backwards, ``node[i] = keccak256(sort(node[2i + 1], node[2i + 2]))``. A proof is
the list of siblings from the leaf up to (not including) the root. ``dump()`` / ``load()`` use OZ's
``standard-v1`` JSON format, so the payout table can be opened with the JS library too.

A payout tree has one leaf per account (cumulative amounts), so duplicate accounts are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eth_utils import keccak

LEAF_ENCODING: tuple[str, str] = ("address", "uint256")
FORMAT = "standard-v1"
_UINT256_MAX = 2**256 - 1
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_UPPER_NIBBLES = frozenset("89abcdef")


def _keccak_slow(data: bytes) -> bytes:
    return bytes(keccak(data))


_keccak: Callable[[bytes], bytes]
try:  # safe-pysha3 is ~5x faster than eth-hash's pycryptodome backend; same digest
    import sha3

    def _keccak(data: bytes) -> bytes:
        return bytes(sha3.keccak_256(data).digest())

except ImportError:  # pragma: no cover - depends on the installed extras
    _keccak = _keccak_slow


def checksum_address(account: str) -> str:
    """EIP-55 form of a 0x-prefixed hex address (``eth_utils.to_checksum_address``, 10x faster)."""
    if not isinstance(account, str) or not _ADDRESS.fullmatch(account):
        raise ValueError(f"not an address: {account!r}")
    lower = account[2:].lower()
    digest = _keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(
        [c.upper() if d in _UPPER_NIBBLES else c for c, d in zip(lower, digest, strict=False)]
    )


def encode_leaf(account: str, amount: int) -> bytes:
    """``abi.encode(address, uint256)``: both are static, so 32 + 32 bytes, left-padded."""
    if not isinstance(account, str) or not _ADDRESS.fullmatch(account):
        raise ValueError(f"not an address: {account!r}")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= _UINT256_MAX:
        raise ValueError(f"not a uint256: {amount!r}")
    return bytes.fromhex(account[2:]).rjust(32, b"\0") + amount.to_bytes(32, "big")


def leaf_hash(account: str, amount: int) -> bytes:
    """The double-hashed StandardMerkleTree leaf of ``(account, amount)``."""
    return _keccak(_keccak(encode_leaf(account, amount)))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OZ's commutative node hash: keccak256 of the two children in ascending order."""
    return _keccak(a + b if a < b else b + a)


def _to_bytes32(node: str | bytes) -> bytes:
    raw = (
        bytes.fromhex(node[2:] if node.startswith("0x") else node)
        if isinstance(node, str)
        else node
    )
    if len(raw) != 32:
        raise ValueError("Merkle nodes are 32 bytes")
    return raw


def process_proof(leaf: bytes, proof: Sequence[str | bytes]) -> bytes:
    node = leaf
    for sibling in proof:
        node = hash_pair(node, _to_bytes32(sibling))
    return node


def verify(root: str | bytes, account: str, amount: int, proof: Sequence[str | bytes]) -> bool:
    """Whether ``proof`` proves ``(account, amount)`` under ``root`` (what ``claim`` checks)."""
    return process_proof(leaf_hash(account, amount), proof) == _to_bytes32(root)


def _hex(node: bytes) -> str:
    return "0x" + node.hex()


class StandardMerkleTree:
    """A built tree. Build with :meth:`of`; reopen a dump with :meth:`load`."""

    def __init__(self, tree: list[bytes], values: list[tuple[str, int]], tree_indices: list[int]):
        self._tree = tree
        self._values = values
        self._tree_indices = tree_indices
        self._by_account = {account.lower(): i for i, (account, _) in enumerate(values)}
        if len(self._by_account) != len(values):
            raise ValueError("duplicate account in payout tree")

    @classmethod
    def of(cls, values: Iterable[tuple[str, int]]) -> StandardMerkleTree:
        """Build the tree of ``(account, amount)`` pairs; value order is kept for indexing."""
        normalized = [(checksum_address(account), amount) for account, amount in values]
        if not normalized:
            raise ValueError("Expected non-zero number of leaves")
        hashes = [leaf_hash(account, amount) for account, amount in normalized]
        order = sorted(range(len(hashes)), key=hashes.__getitem__)
        n = len(hashes)
        size = 2 * n - 1
        tree: list[bytes] = [b""] * size
        tree_indices = [0] * n
        for leaf_index, value_index in enumerate(order):
            tree_index = size - 1 - leaf_index
            tree[tree_index] = hashes[value_index]
            tree_indices[value_index] = tree_index
        for i in range(size - 1 - n, -1, -1):
            left, right = tree[2 * i + 1], tree[2 * i + 2]
            tree[i] = _keccak(left + right if left < right else right + left)
        return cls(tree, normalized, tree_indices)

    @property
    def root(self) -> str:
        return _hex(self._tree[0])

    @property
    def root_bytes(self) -> bytes:
        return self._tree[0]

    @property
    def values(self) -> list[tuple[str, int]]:
        return list(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def index_of(self, account: str) -> int:
        try:
            return self._by_account[account.lower()]
        except KeyError:
            raise KeyError(f"account not in tree: {account}") from None

    def amount_of(self, account: str) -> int:
        return self._values[self.index_of(account)][1]

    def proof(self, leaf: int | str) -> list[str]:
        """Sibling hashes (0x hex) for a value index or an account."""
        return [_hex(node) for node in self.proof_bytes(leaf)]

    def proof_bytes(self, leaf: int | str) -> list[bytes]:
        index = leaf if isinstance(leaf, int) else self.index_of(leaf)
        if not 0 <= index < len(self._values):
            raise IndexError("Index out of bounds")
        node = self._tree_indices[index]
        proof: list[bytes] = []
        while node > 0:
            proof.append(self._tree[node + 1 if node % 2 else node - 1])
            node = (node - 1) // 2
        return proof

    def verify(self, account: str, amount: int, proof: Sequence[str | bytes]) -> bool:
        return verify(self._tree[0], account, amount, proof)

    def dump(self) -> dict[str, Any]:
        """OZ ``standard-v1`` JSON (amounts as decimal strings, as JS needs for uint256)."""
        return {
            "format": FORMAT,
            "leafEncoding": list(LEAF_ENCODING),
            "tree": [_hex(node) for node in self._tree],
            "values": [
                {"value": [account, str(amount)], "treeIndex": tree_index}
                for (account, amount), tree_index in zip(
                    self._values, self._tree_indices, strict=True
                )
            ],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> StandardMerkleTree:
        """Reopen a dump and check it: every node and every value must match its hashes."""
        if data.get("format") != FORMAT:
            raise ValueError(f"Unknown format {data.get('format')!r}")
        if list(data.get("leafEncoding", [])) != list(LEAF_ENCODING):
            raise ValueError(f"unsupported leaf encoding {data.get('leafEncoding')!r}")
        tree = [_to_bytes32(node) for node in data["tree"]]
        values = [(checksum_address(v["value"][0]), int(v["value"][1])) for v in data["values"]]
        indices = [int(v["treeIndex"]) for v in data["values"]]
        size = len(tree)
        if size == 0 or size != 2 * len(values) - 1:
            raise ValueError("Merkle tree is invalid")
        for i in range(size):
            if 2 * i + 2 < size and tree[i] != hash_pair(tree[2 * i + 1], tree[2 * i + 2]):
                raise ValueError("Merkle tree is invalid")
        for (account, amount), index in zip(values, indices, strict=True):
            if not size // 2 <= index < size or tree[index] != leaf_hash(account, amount):
                raise ValueError("Merkle tree does not contain the expected value")
        return cls(tree, values, indices)
