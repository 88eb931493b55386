"""Merkle roots and inclusion proofs."""

from hypothesis import given
from hypothesis import strategies as st

from provenance.merkle import EMPTY_ROOT, leaf_hash, merkle_proof, merkle_root, verify_proof


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=40), st.data())
def test_every_leaf_proves_membership_and_a_changed_leaf_does_not(entries, data):
    leaves = [leaf_hash(e) for e in entries]
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, index)
    assert verify_proof(leaves[index], proof, root)
    assert not verify_proof(leaf_hash(entries[index] + b"x"), proof, root)


def test_root_depends_on_every_leaf_and_order():
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    assert merkle_root(leaves) != merkle_root(leaves[:4])
    assert merkle_root(leaves) != merkle_root(list(reversed(leaves)))
    assert merkle_root([]) == EMPTY_ROOT


def test_inner_node_cannot_pose_as_a_leaf():
    import hashlib

    leaves = [leaf_hash(bytes([i])) for i in range(4)]
    inner = hashlib.sha256(b"\x01" + leaves[0] + leaves[1]).digest()
    # presenting the two child hashes as one entry's data gives a different hash than the node
    assert leaf_hash(leaves[0] + leaves[1]) != inner
    forged = [leaf_hash(leaves[0] + leaves[1]), leaf_hash(leaves[2] + leaves[3])]
    assert merkle_root(forged) != merkle_root(leaves)
