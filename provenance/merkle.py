"""Merkle trees over dataset manifests.

The root names a snapshot's exact contents; a proof shows one entry belongs to it without the
rest. Leaves and inner nodes are hashed with different prefixes so a node can never pose as a
leaf (the second-preimage weakness of naive Merkle trees).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_LEAF = b"\x00"
_NODE = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"foundry:empty-manifest").hexdigest()


def leaf_hash(canonical_entry: bytes) -> bytes:
    return hashlib.sha256(_LEAF + canonical_entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        current = levels[-1]
        parent = [_node(current[i], current[i + 1]) for i in range(0, len(current) - 1, 2)]
        if len(current) % 2:
            parent.append(current[-1])  # an odd node is carried up unchanged
        levels.append(parent)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> str:
    """Hex root of already-hashed leaves, in the order given (callers sort canonically)."""
    if not leaves:
        return EMPTY_ROOT
    return _levels(leaves)[-1][0].hex()


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[tuple[str, str]]:
    """Sibling hashes from leaf ``index`` up to the root, each tagged with its side."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    proof = []
    for level in _levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(("left" if sibling < index else "right", level[sibling].hex()))
        index //= 2
    return proof


def verify_proof(leaf: bytes, proof: Sequence[tuple[str, str]], root: str) -> bool:
    current = leaf
    for side, sibling_hex in proof:
        sibling = bytes.fromhex(sibling_hex)
        current = _node(sibling, current) if side == "left" else _node(current, sibling)
    return current.hex() == root
