"""The Merkle tree of RFC 9162 (Certificate Transparency 2.0), section 2.1: tree hashes,
inclusion and consistency proofs and their verification. Pure functions over leaf hashes.

Leaf hash  = SHA-256(0x00 || entry);  node hash = SHA-256(0x01 || left || right);
MTH({})    = SHA-256("");  MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of
two below n. A *frontier* (compact range [0, n)) is the list of the perfect subtrees n's binary
digits name, largest first: enough to append a leaf and to give the root in O(log n)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify (or does not fit the sizes it claims to be for)."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes."""
    return frontier_root(frontier(leaves))


def subtree_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end])."""
    return root(leaves[start:end])


# ---------------------------------------------------------------------------- the frontier
def frontier_append(nodes: Sequence[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The frontier of size + 1 leaves, from the frontier of `size` leaves and the new leaf."""
    out = list(nodes)
    h = leaf
    while size & 1:
        h = node_hash(out.pop(), h)
        size >>= 1
    out.append(h)
    return out


def frontier(leaves: Iterable[bytes]) -> list[bytes]:
    nodes: list[bytes] = []
    for size, leaf in enumerate(leaves):
        nodes = frontier_append(nodes, size, leaf)
    return nodes


def frontier_root(nodes: Sequence[bytes]) -> bytes:
    """The root of the tree whose frontier this is (folded from the right, as MTH splits)."""
    if not nodes:
        return EMPTY_ROOT
    h = nodes[-1]
    for node in reversed(nodes[:-1]):
        h = node_hash(node, h)
    return h


def prefix_roots(leaves: Iterable[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """MTH of every requested prefix, in one pass over the leaves (sizes beyond the leaves are
    left out)."""
    wanted = set(sizes)
    out = {0: EMPTY_ROOT} if 0 in wanted else {}
    nodes: list[bytes] = []
    for size, leaf in enumerate(leaves):
        nodes = frontier_append(nodes, size, leaf)
        if size + 1 in wanted:
            out[size + 1] = frontier_root(nodes)
    return out


# ---------------------------------------------------------------------------- proofs
def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 2.1.3.1): proves leaf `index` is in the tree of all `leaves`."""
    if not 0 <= index < len(leaves):
        raise ProofError(f"no leaf {index} in a tree of {len(leaves)}")
    return _path(leaves, index, 0, len(leaves))


def _path(leaves: Sequence[bytes], m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(leaves, m, start, start + k), subtree_root(leaves, start + k, end)]
    return [*_path(leaves, m - k, start + k, end), subtree_root(leaves, start, start + k)]


def consistency_proof(leaves: Sequence[bytes], first: int) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 2.1.4.1): proves the tree of the first `first` leaves is a prefix
    of the tree of all `leaves`. Empty when first is 0 or the whole tree."""
    if not 0 <= first <= len(leaves):
        raise ProofError(f"cannot prove size {first} against a tree of {len(leaves)}")
    if first in (0, len(leaves)):
        return []
    return _subproof(leaves, first, 0, len(leaves), True)


def _subproof(leaves: Sequence[bytes], m: int, start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [subtree_root(leaves, start, end)]
    k = _split(n)
    if m <= k:
        return [
            *_subproof(leaves, m, start, start + k, whole),
            subtree_root(leaves, start + k, end),
        ]
    return [
        *_subproof(leaves, m - k, start + k, end, False),
        subtree_root(leaves, start, start + k),
    ]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """RFC 9162 2.1.3.2; raises ProofError unless the proof leads from the leaf to the root."""
    if not 0 <= index < size:
        raise ProofError("leaf index outside the tree")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof too short")
    if r != expected_root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2; raises ProofError unless the tree of size `first` with `first_root` is a
    prefix of the tree of size `second` with `second_root`."""
    if first < 0 or second < first:
        raise ProofError(f"a tree of {second} cannot extend one of {first}")
    if first == second:
        if proof or first_root != second_root:
            raise ProofError("same size, different roots")
        return
    if first == 0:  # the empty tree is a prefix of every tree
        if proof or first_root != EMPTY_ROOT:
            raise ProofError("the empty tree has the empty root and needs no proof")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is itself a node of the proof
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof too short")
    if fr != first_root or sr != second_root:
        raise ProofError("the trees are not consistent")
