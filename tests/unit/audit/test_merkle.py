"""RFC 9162 tree hashes and proofs, checked against the definition for every small tree."""

from __future__ import annotations

import hashlib

import pytest

from consent_service.audit import merkle

SIZES = range(0, 34)


def mth(entries: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 2.1.1, over the entries themselves."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < len(entries):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(entries[:k]) + mth(entries[k:])).digest()


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(e) for e in entries(n)]


def test_known_values():
    assert merkle.root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()


@pytest.mark.parametrize("n", SIZES)
def test_root_frontier_and_prefix_roots_follow_the_definition(n):
    assert merkle.root(leaves(n)) == mth(entries(n))
    assert len(merkle.frontier(leaves(n))) == bin(n).count("1")
    assert merkle.prefix_roots(leaves(n), range(n + 2)) == {
        m: mth(entries(m)) for m in range(n + 1)
    }


@pytest.mark.parametrize("n", range(1, 34))
def test_every_inclusion_proof_verifies_and_no_wrong_one_does(n):
    tree, top = leaves(n), mth(entries(n))
    for i in range(n):
        proof = merkle.inclusion_proof(tree, i)
        merkle.verify_inclusion(tree[i], i, n, proof, top)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(merkle.leaf_hash(b"forged"), i, n, proof, top)
        if n > 1:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(tree[i], (i + 1) % n, n, proof, top)
        if proof:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(tree[i], i, n, proof[:-1], top)


@pytest.mark.parametrize("n", SIZES)
def test_every_consistency_proof_verifies_and_no_wrong_one_does(n):
    tree = leaves(n)
    for m in range(n + 1):
        proof = merkle.consistency_proof(tree, m)
        merkle.verify_consistency(m, n, mth(entries(m)), mth(entries(n)), proof)
        if 0 < m < n:
            other = [*entries(m - 1), b"rewritten", *entries(n)[m:]]
            with pytest.raises(merkle.ProofError):  # an old head the new tree does not extend
                merkle.verify_consistency(m, n, mth(other[:m]), mth(entries(n)), proof)
            with pytest.raises(merkle.ProofError):  # a new tree that rewrote the past
                merkle.verify_consistency(m, n, mth(entries(m)), mth(other), proof)
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(m, n, mth(entries(m)), mth(entries(n)), proof[:-1])


def test_a_smaller_tree_never_extends_a_larger_one():
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(5, 3, mth(entries(5)), mth(entries(3)), [])
